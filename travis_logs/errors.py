"""The project's exceptions.

LogsError
 ├── ConfigError       a setting is missing, malformed or points at nothing
 ├── InvalidLogPart    a message that cannot be a log part (goes to the dead-letter queue)
 ├── ArchiveMismatch   the archived object differs from what was aggregated
 ├── ArchiveMissing    a purged log's archive is not in S3
 └── S3Timeout         an S3 request did not finish within its deadline (retryable)
"""

from __future__ import annotations


class LogsError(Exception):
    """Base of every error this project raises on purpose."""


class ConfigError(LogsError):
    """A setting is missing, malformed or points at nothing; the message names it."""


class InvalidLogPart(LogsError):
    """A message that cannot be a log part; `reason` goes into the dead-letter header."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class ArchiveMismatch(LogsError):
    """The archived object's size or checksum differs from what was aggregated."""


class ArchiveMissing(LogsError):
    """A purged log's archive is not in S3: the log's text is nowhere."""


class S3Timeout(LogsError):
    """An S3 request did not finish within its deadline; it was abandoned with its connection."""
