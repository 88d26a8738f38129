"""The log's activities, as LogWorkflow calls them: options and summary, no state, no lock.

Each method runs one activity and returns its result; the workflow decides what to do with
it (workflows/state.py) and holds the lock that keeps its pipeline and its update handlers
from working on the log at the same time.
"""

from __future__ import annotations

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
# The upload's first attempt runs in the workflow task; each S3 request has its own deadline
# (travis_logs/transfer.py), and one that takes longer than this goes on as an activity.
LOCAL_UPLOAD_TIMEOUT = timedelta(minutes=1)
ONCE = RetryPolicy(maximum_attempts=1)


class LogActivities:
    """Inspect, aggregate, archive, verify, purge, replace, redact: one log's activities."""

    def __init__(self, job_id: int, timings: LogTimings) -> None:
        self._job_id = job_id
        self._beat = timedelta(milliseconds=timings.heartbeat_timeout_ms)

    async def inspect(self, summary: str) -> LogSnapshot:
        """The log's row, read by a local activity (one query: no task round trip)."""
        return await self._local(INSPECT_LOG, InspectInput(self._job_id), summary, INSPECT_TIMEOUT)

    async def aggregate(self, *, from_archive: bool, summary: str) -> AggregateResult:
        """Merge new parts; a local activity (one transaction) unless the archive is read."""
        inp = AggregateInput(self._job_id)
        if from_archive:  # the merge starts from the archive: an S3 read, heartbeating
            return await self._execute(AGGREGATE_LOG, inp, summary, AGGREGATE_TIMEOUT)
        return await self._local(AGGREGATE_LOG, inp, summary)

    async def upload(self, *, rewrite: bool, summary: str) -> ArchiveResult:
        """The upload's first attempt, in the workflow task: raises ActivityError when it
        fails (then `archive` goes on as an activity) or is refused."""
        inp = ArchiveInput(self._job_id, rewrite=rewrite)
        result: ArchiveResult = await workflow.execute_local_activity(
            ARCHIVE_LOG.name,
            inp,
            result_type=ArchiveResult,
            start_to_close_timeout=LOCAL_UPLOAD_TIMEOUT,
            retry_policy=ONCE,
            summary=summary,
        )
        return result

    async def archive(self, *, rewrite: bool, summary: str) -> ArchiveResult:
        """Upload the content to S3, heartbeating, retried until it works (each attempt and
        its error visible on the pending activity); raises ActivityError when refused."""
        inp = ArchiveInput(self._job_id, rewrite=rewrite)
        return await self._execute(ARCHIVE_LOG, inp, summary, TRANSFER_TIMEOUT, self._beat)

    async def verify(self, archived: ArchiveResult, summary: str) -> VerifyResult:
        """Read the object back and compare its size and SHA-256, as a local activity.

        Each S3 request has its deadline (travis_logs/transfer.py); a worker dying meanwhile
        times out the workflow task, and the next worker runs the read again: it changes
        nothing but the verdict and, when the index object is missing or describes another
        text, the index, rebuilt from the bytes it reads (writing it twice writes the same).
        """
        inp = VerifyInput(
            self._job_id,
            archived.content_version,
            archived.size,
            archived.sha256,
            archived.index_checked,
        )
        return await self._local(VERIFY_ARCHIVE, inp, summary, TRANSFER_TIMEOUT)

    async def purge(self, version: int, summary: str) -> PurgeResult:
        return await self._local(PURGE_LOG, PurgeInput(self._job_id, version), summary)

    async def replace(self, inp: ReplaceContentInput) -> ReplaceResult:
        """PUT /logs: replace (or clear) the content."""
        request = ReplaceInput(
            self._job_id, inp.upload_id, inp.sha256, inp.removed_by, str(workflow.uuid4())
        )
        return await self._execute(REPLACE_CONTENT, request, "replace the content (PUT /logs)")

    async def remove_archive(self, content_version: int) -> None:
        """A cleared log's archive goes too."""
        removal = RemoveArchiveInput(self._job_id, content_version)
        await self._execute(REMOVE_ARCHIVE, removal, "delete the cleared log's archive")

    async def redact(self, redaction_id: int) -> RedactLogResult:
        """Mask a redaction's strings and ranges (heartbeating: a purged log's archive is read)."""
        inp = RedactLogInput(self._job_id, redaction_id)
        return await self._execute(
            REDACT_LOG, inp, f"redact #{redaction_id}", TRANSFER_TIMEOUT, self._beat
        )

    async def _local(
        self, ref: ActivityRef[P, R], arg: P, summary: str, timeout: timedelta = DB_TIMEOUT
    ) -> R:
        """A step in the workflow task: one history event instead of six, no task round trip."""
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
