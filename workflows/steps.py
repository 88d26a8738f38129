"""The lifecycle's activity calls for one log: options, summary and the lock, no state.

Each method runs one activity and returns its result; the workflow decides what to do with
it (workflows/state.py). A lock keeps the pipeline and the update handlers from working on
the log at the same time.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import timedelta
from typing import TypeVar

from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from activities.models import (
        AGGREGATE_LOG,
        ARCHIVE_LOG,
        INSPECT_LOG,
        PURGE_LOG,
        REDACT_LOG,
        REMOVE_ARCHIVE,
        REPLACE_CONTENT,
        VERIFY_ARCHIVE,
        ActivityRef,
        AggregateInput,
        AggregateResult,
        ArchiveInput,
        ArchiveResult,
        InspectInput,
        LogSnapshot,
        PurgeInput,
        PurgeResult,
        RedactLogInput,
        RedactLogResult,
        RemoveArchiveInput,
        ReplaceInput,
        ReplaceResult,
        VerifyInput,
        VerifyResult,
    )
    from workflows.models import LogTimings, ReplaceContentInput

P = TypeVar("P")
R = TypeVar("R")

# Database and S3 outages retry without limit: giving up would leave a log half-done, and
# the attempt count on the pending activity shows the trouble in the UI.
RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    backoff_coefficient=2,
    maximum_interval=timedelta(minutes=1),
)
DB_TIMEOUT = timedelta(minutes=2)
AGGREGATE_TIMEOUT = timedelta(minutes=10)
TRANSFER_TIMEOUT = timedelta(minutes=30)
INSPECT_TIMEOUT = timedelta(seconds=30)


class Steps:
    """Inspect, aggregate, archive, verify, purge, replace: one log's activity calls."""

    def __init__(self, job_id: int, timings: LogTimings) -> None:
        self._job_id = job_id
        self._beat = timedelta(milliseconds=timings.heartbeat_timeout_ms)
        self._lock = asyncio.Lock()

    async def inspect(self, summary: str) -> LogSnapshot:
        """The log's row, read by a local activity (one query: no task round trip)."""
        return await self._local(INSPECT_LOG, InspectInput(self._job_id), summary, INSPECT_TIMEOUT)

    async def aggregate(self, *, from_archive: bool, summary: str) -> AggregateResult:
        """Merge new parts; a local activity (one transaction) unless the archive is read."""
        inp = AggregateInput(self._job_id)
        if from_archive:  # the merge starts from the archive: an S3 read, heartbeating
            async with self._lock:
                return await self._execute(AGGREGATE_LOG, inp, summary, AGGREGATE_TIMEOUT)
        return await self._local(AGGREGATE_LOG, inp, summary)

    async def archive(self, *, rewrite: bool, summary: str) -> ArchiveResult:
        """Upload the content to S3 (heartbeating); raises ActivityError when refused."""
        async with self._lock:
            inp = ArchiveInput(self._job_id, rewrite=rewrite)
            return await self._execute(ARCHIVE_LOG, inp, summary, TRANSFER_TIMEOUT, self._beat)

    async def verify(self, archived: ArchiveResult, summary: str) -> VerifyResult:
        """Read the object back and compare its size and SHA-256, as a local activity.

        It runs in the workflow task that took the archive's result, so verify and purge
        cost no task round trip, no activity task and no heartbeat. Each S3 request has its
        deadline (travis_logs/transfer.py); a worker dying meanwhile times out the workflow
        task, and the next worker runs the read again (it changes nothing but the verdict).
        """
        inp = VerifyInput(self._job_id, archived.content_version, archived.size, archived.sha256)
        return await self._local(VERIFY_ARCHIVE, inp, summary, TRANSFER_TIMEOUT)

    async def purge(self, version: int, summary: str) -> PurgeResult:
        return await self._local(PURGE_LOG, PurgeInput(self._job_id, version), summary)

    async def replace(
        self, inp: ReplaceContentInput, replaced: Callable[[ReplaceResult], None]
    ) -> ReplaceResult:
        """PUT /logs: replace the content and, when cleared, delete the archive, as one step."""
        request = ReplaceInput(
            self._job_id, inp.upload_id, inp.sha256, inp.removed_by, str(workflow.uuid4())
        )
        async with self._lock:  # no archive may slip in between the two
            done = await self._execute(REPLACE_CONTENT, request, "replace the content (PUT /logs)")
            replaced(done)
            if inp.clears:
                removal = RemoveArchiveInput(self._job_id, done.content_version)
                await self._execute(REMOVE_ARCHIVE, removal, "delete the cleared log's archive")
        return done

    async def redact(self, redaction_id: int) -> RedactLogResult:
        """Mask a redaction's strings and ranges (heartbeating: a purged log's archive is read)."""
        inp = RedactLogInput(self._job_id, redaction_id)
        async with self._lock:
            return await self._execute(
                REDACT_LOG, inp, f"redact #{redaction_id}", TRANSFER_TIMEOUT, self._beat
            )

    async def _local(
        self, ref: ActivityRef[P, R], arg: P, summary: str, timeout: timedelta = DB_TIMEOUT
    ) -> R:
        """A step that is one database transaction, as a local activity under the lock.

        Local activities cost one history event instead of six and no task round trip;
        uploads and reads from the archive stay regular activities, heartbeating and
        visible while pending (verify's read-back follows the upload at once: local too).
        """
        async with self._lock:
            result: R = await workflow.execute_local_activity(
                ref.name,
                arg,
                result_type=ref.result_type,
                start_to_close_timeout=timeout,
                retry_policy=RETRY,
                summary=summary,
            )
            return result

    async def _execute(
        self,
        ref: ActivityRef[P, R],
        arg: P,
        summary: str,
        timeout: timedelta = DB_TIMEOUT,
        beat: timedelta | None = None,
    ) -> R:
        result: R = await workflow.execute_activity(
            ref.name,
            arg,
            result_type=ref.result_type,
            start_to_close_timeout=timeout,
            heartbeat_timeout=beat,
            retry_policy=RETRY,
            summary=summary,
        )
        return result
