"""What an operator sees of a log's workflow: search attributes and the current details."""

from __future__ import annotations

from typing import Any

from temporalio import workflow
from temporalio.common import SearchAttributeUpdate

with workflow.unsafe.imports_passed_through():
    from workflows.models import (
        ARCHIVE_ATTEMPTS,
        JOB_ID,
        LOG_STATE,
        LogWorkflowState,
    )


class Visibility:
    """Publishes `LogState`, `ArchiveAttempts` and `JobId`, and a markdown summary for the UI."""

    def __init__(self, job_id: int, state: LogWorkflowState) -> None:
        self._job_id = job_id
        self._s = state
        self._shown: tuple[str, int] | None = None  # last upserted (state, attempts)

    def set(self, state: str) -> None:
        self._s.state = state
        self.show()

    def show(self) -> None:
        """Upsert only what changed (each upsert is a history event); details every time."""
        shown = (self._s.state, self._s.archive_attempts)
        if shown != self._shown:
            updates: list[SearchAttributeUpdate[Any]] = [
                LOG_STATE.value_set(shown[0]),
                ARCHIVE_ATTEMPTS.value_set(shown[1]),
            ]
            if self._shown is None:  # the run's first upsert: JobId rides along
                updates.append(JOB_ID.value_set(self._job_id))
            workflow.upsert_search_attributes(updates)
            self._shown = shown
        workflow.set_current_details(self._details())

    def _details(self) -> str:
        s = self._s
        lines = [
            f"**{s.state}** · job {self._job_id} · final part {s.final_number}",
            f"content v{s.content_version}: {s.content_parts} parts, {s.content_bytes} bytes",
            f"archive attempts {s.archive_attempts}, verified v{s.verified_version}",
        ]
        if s.last_error:
            lines.append(f"last error: {s.last_error}")
        return "\n\n".join(lines)
