"""Process logging: readable lines by default, one JSON object a line with LOG_FORMAT=json.

JSON lines carry `job_id` and `workflow_id` where they apply: from `extra={"job_id": ...}`,
or from the context Temporal's `workflow.logger` and `activity.logger` attach to records.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from typing import Any

from stamina.instrumentation import set_on_retry_hooks

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def _workflow_id(record: logging.LogRecord) -> str | None:
    for attr in ("temporal_workflow", "temporal_activity"):
        context = getattr(record, attr, None)
        if isinstance(context, dict) and context.get("workflow_id"):
            return str(context["workflow_id"])
    wf = getattr(record, "workflow_id", None)
    return str(wf) if wf else None


def _job_id(record: logging.LogRecord, workflow_id: str | None) -> int | None:
    job = getattr(record, "job_id", None)
    if isinstance(job, int):
        return job
    if workflow_id and workflow_id.startswith("log-") and workflow_id[4:].isdigit():
        return int(workflow_id[4:])
    return None


class JsonFormatter(logging.Formatter):
    """One JSON object per record: time, level, logger, message, job_id, workflow_id."""

    def format(self, record: logging.LogRecord) -> str:
        workflow_id = _workflow_id(record)
        out: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        job_id = _job_id(record, workflow_id)
        if job_id is not None:
            out["job_id"] = job_id
        if workflow_id is not None:
            out["workflow_id"] = workflow_id
        if record.exc_info:
            out["exception"] = self.formatException(record.exc_info)
        return json.dumps(out, ensure_ascii=False)


def configure_logging(level: str = "INFO", log_format: str = "text") -> None:
    """Configure the root logger once, in the entry point."""
    handler = logging.StreamHandler()
    handler.setFormatter(
        JsonFormatter() if log_format == "json" else logging.Formatter(TEXT_FORMAT)
    )
    logging.basicConfig(level=level.upper(), handlers=[handler], force=True)
    # Each retry loop logs its retries with what it knows (the job, the attempt); stamina's
    # own hooks would add a line without it, and a Prometheus counter labelled by retry
    # number, which grows without bound for the loops that wait out an outage.
    set_on_retry_hooks([])
