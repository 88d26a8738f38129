"""What an operator sees of a log's workflow: search attributes and the current details."""

from __future__ import annotations

from typing import Any

from temporalio import workflow
from temporalio.common import SearchAttributeUpdate

with workflow.unsafe.imports_passed_through():
    from travis_logs.completeness import compact
    from workflows import state as st
    from workflows.models import (
        ARCHIVE_ATTEMPTS,
        JOB_ID,
        LOG_INCOMPLETE,
        LOG_STATE,
        LogWorkflowState,
        searchable,
    )


class Visibility:
    """Shows the log's step in the details and, where a run rests, in `LogState`.

    It reads the log's state and writes none: what it remembers is what it last upserted.
    The run's start set `JobId` and `LogState` already (signal- and update-with-start, and
    continue-as-new, carry them), so an upsert, a history event and a visibility write
    each, happens only when the searchable state changes; `ArchiveAttempts` rides along.
    """

    def __init__(self, job_id: int) -> None:
        self._job_id = job_id
        started = workflow.info().typed_search_attributes
        self._searched = started.get(LOG_STATE)
        self._job_shown = started.get(JOB_ID) is not None
        self._incomplete = bool(started.get(LOG_INCOMPLETE))

    def show(self, s: LogWorkflowState) -> None:
        """The current details, and `LogState` when the step is searchable and new."""
        searched = searchable(s.state)
        if searched is not None and searched != self._searched:
            updates: list[SearchAttributeUpdate[Any]] = [
                LOG_STATE.value_set(searched),
                ARCHIVE_ATTEMPTS.value_set(s.stats.archive_attempts),
            ]
            if not self._job_shown:  # a run started without them (an older client)
                updates.append(JOB_ID.value_set(self._job_id))
                self._job_shown = True
            workflow.upsert_search_attributes(updates)
            self._searched = searched
        workflow.set_current_details(self._details(s))

    def flag_incomplete(self, s: LogWorkflowState) -> None:
        """`LogIncomplete`, upserted only when it changes: a complete log never spends one."""
        incomplete = st.incomplete(s)
        if incomplete != self._incomplete:
            workflow.upsert_search_attributes([LOG_INCOMPLETE.value_set(incomplete)])
            self._incomplete = incomplete
            workflow.set_current_details(self._details(s))

    def _details(self, s: LogWorkflowState) -> str:
        stats = s.stats
        lines = [
            f"**{s.state}** · job {self._job_id} · final part {s.final_number}",
            f"content v{s.content_version}: {stats.content_parts} parts, "
            f"{stats.content_bytes} bytes",
            f"archive attempts {stats.archive_attempts}, verified v{s.verified_version}",
        ]
        if stats.elided_parts:
            lines.append(
                f"truncated (LOGS_MAX_BYTES): {stats.elided_bytes} bytes in "
                f"{stats.elided_parts} parts left out between head and tail"
            )
        if s.missing_parts:
            lines.append(f"incomplete: parts {compact(s.missing_parts)} missing")
        if stats.last_error:
            lines.append(f"last error: {stats.last_error}")
        return "\n\n".join(lines)
