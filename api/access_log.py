"""Access log lines without query strings: `?token=` and friends must not reach the logs."""

from __future__ import annotations

import logging

from travis_logs.bounded import bounded

ACCESS_LOGGER = "uvicorn.access"


class StripQuery(logging.Filter):
    """Cuts the query off the path of uvicorn's access records (`%s - "%s %s HTTP/%s" %d`)."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple) and len(args) == 5 and isinstance(args[2], str):
            # A client chooses its method and path: both are cut to a bounded length.
            method, path = bounded(args[1], 16), bounded(args[2].partition("?")[0])
            record.args = (args[0], method, path, args[3], args[4])
        return True


def install() -> None:
    """Add the filter to uvicorn's access logger once; it stays through uvicorn's dictConfig."""
    logger = logging.getLogger(ACCESS_LOGGER)
    if not any(isinstance(f, StripQuery) for f in logger.filters):
        logger.addFilter(StripQuery())
