"""The Pusher publisher's counters, and a log that does not flood while Pusher is down."""

from __future__ import annotations

import logging
import time

from prometheus_client import Counter, Histogram

EVENTS = Counter(
    "travis_logs_pusher_events",
    "Log parts handled by the Pusher publisher, by outcome "
    "(sent, failed, skipped: nobody watches, dropped: queue full, too_large).",
    ["outcome"],
)
ERRORS = Counter("travis_logs_pusher_errors", "Failed Pusher calls, by error type.", ["error"])
REQUEST_SECONDS = Histogram(
    "travis_logs_pusher_request_seconds", "Duration of one trigger_batch call."
)


class RateLimitedLog:
    """Logs the first failure, then at most one summary per interval (no log floods)."""

    def __init__(self, logger: logging.Logger, interval_s: float = 10.0) -> None:
        self._log = logger
        self._interval_s = interval_s
        self._next = 0.0
        self._suppressed = 0

    def warning(self, message: str, *args: object) -> None:
        now = time.monotonic()
        if now < self._next:
            self._suppressed += 1
            return
        suffix = f" ({self._suppressed} similar since the last report)" if self._suppressed else ""
        self._log.warning(message + suffix, *args)
        self._next, self._suppressed = now + self._interval_s, 0
