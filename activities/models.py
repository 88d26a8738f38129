"""Inputs and results of the lifecycle activities (one dataclass in, one out).

Activities find a log by its job id (`logs.job_id` is unique). Content never crosses this
boundary: the activities read it from PostgreSQL and S3 themselves.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Generic, TypeVar

In = TypeVar("In")
Out = TypeVar("Out")


@dataclass(frozen=True)
class ActivityRef(Generic[In, Out]):
    """An activity as a workflow calls it: by registered name, so the workflow imports no I/O."""

    name: str
    result_type: type[Out]


@dataclass
class InspectInput:
    job_id: int


@dataclass
class RedactionRecord:
    """An applied redaction as the `status` query shows it: the audit row, without any secret."""

    redaction_id: int
    requested_by: str
    reason: str
    applied_at_ms: int
    occurrences: int
    string_sha256: list[str] = field(default_factory=list)
    content_version: int | None = None  # the version it wrote; None: it changed nothing


@dataclass
class LogSnapshot:
    """The log's row as the workflow needs it, with the database's own clock for part ages."""

    log_id: int | None  # None: no row for the job (yet)
    final_number: int | None = None
    newest_part_age_ms: int | None = None  # None: no parts stored
    pending_parts: int = 0  # stored parts the log's content does not hold yet
    content_version: int = 0
    verified_version: int | None = None  # content version of the verified archive
    purged: bool = False
    redactions: list[RedactionRecord] = field(default_factory=list)  # the newest, oldest first


@dataclass
class AggregateInput:
    job_id: int


@dataclass
class AggregateResult:
    """What the log holds after merging its new parts."""

    log_id: int | None
    content_version: int = 0
    has_content: bool = False  # False: no content, no archive, no parts (cleared or empty row)
    removed: bool = False  # removed_by is set
    size: int = 0  # bytes of the merged log (when it changed or is in the database)
    parts: int = 0  # parts the log holds
    merged: int = 0  # parts this call merged in
    duplicates: int = 0  # stored parts whose numbers the log holds already (purge deletes them)
    from_archive: bool = False  # the merge started from the archive: the log had been purged
    verified_version: int | None = None
    # Part numbers missing between 0 and the final part, as [first, last] ranges.
    missing: list[list[int]] = field(default_factory=list)
    # Past LOGS_MAX_BYTES: what the marker line says was left out (0: the log is whole).
    elided_bytes: int = 0
    elided_parts: int = 0


@dataclass
class ArchiveInput:
    job_id: int
    # Write even when the object's metadata says it holds this version: after a failed
    # verification the bytes are not what the metadata claims.
    rewrite: bool = False


@dataclass
class ArchiveResult:
    """The object now at jobs/<job_id>/log.txt, as written (or found already written)."""

    content_version: int
    size: int
    sha256: str
    uploaded: bool  # False: the object held exactly this version already
    # The index beside it is this version's: written by this round (S3 checked the PUT's
    # SHA-256) or read and found right. Verify then reads only the log.
    index_checked: bool = False


@dataclass
class VerifyInput:
    job_id: int
    content_version: int
    size: int
    sha256: str
    index_checked: bool = False  # ArchiveResult.index_checked: the index needs no read


@dataclass
class VerifyResult:
    verified: bool
    size: int | None = None  # what was read back; None when there is no object
    sha256: str | None = None
    reason: str = ""  # why it does not match
    # Why the index beside the log was rebuilt from the bytes read back (stale, damaged,
    # missing); empty when it was the log's.
    index_rebuilt: str = ""


@dataclass
class PurgeInput:
    job_id: int
    content_version: int  # the verified version; anything else is not purged


@dataclass
class PurgeResult:
    purged: bool
    parts_deleted: int = 0
    reason: str = ""  # why nothing was purged


@dataclass
class ReplaceInput:
    """PUT /logs/:job_id as the replace update applies it; request_id makes a retry a no-op."""

    job_id: int
    upload_id: int | None  # a `log_uploads` row; None clears the content
    sha256: str | None
    removed_by: int | None
    request_id: str


@dataclass
class ReplaceResult:
    log_id: int
    content_version: int


@dataclass
class RemoveArchiveInput:
    job_id: int
    content_version: int  # the cleared version; the archive columns are reset only for it


@dataclass
class RemoveArchiveResult:
    removed: bool


@dataclass
class RedactLogInput:
    """Apply redaction `redaction_id` (a `log_redactions` row: the strings are in the DB)."""

    job_id: int
    redaction_id: int


@dataclass
class RedactLogResult:
    """What the redaction did: `changed` False means no new content version was written."""

    log_id: int
    content_version: int
    changed: bool
    occurrences: int
    string_sha256: list[str]
    requested_by: str
    reason: str
    applied_at_ms: int


INSPECT_LOG: ActivityRef[InspectInput, LogSnapshot] = ActivityRef("inspect_log", LogSnapshot)
AGGREGATE_LOG: ActivityRef[AggregateInput, AggregateResult] = ActivityRef(
    "aggregate_log", AggregateResult
)
ARCHIVE_LOG: ActivityRef[ArchiveInput, ArchiveResult] = ActivityRef("archive_log", ArchiveResult)
VERIFY_ARCHIVE: ActivityRef[VerifyInput, VerifyResult] = ActivityRef("verify_archive", VerifyResult)
PURGE_LOG: ActivityRef[PurgeInput, PurgeResult] = ActivityRef("purge_log", PurgeResult)
REPLACE_CONTENT: ActivityRef[ReplaceInput, ReplaceResult] = ActivityRef(
    "replace_content", ReplaceResult
)
REMOVE_ARCHIVE: ActivityRef[RemoveArchiveInput, RemoveArchiveResult] = ActivityRef(
    "remove_archive", RemoveArchiveResult
)
REDACT_LOG: ActivityRef[RedactLogInput, RedactLogResult] = ActivityRef(
    "redact_log", RedactLogResult
)
