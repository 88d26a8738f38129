"""The lifecycle's steps for one log: each activity call, under one lock, with its options.

The workflow decides when; these run the aggregate, archive, verify, purge and replace
activities and record their outcome in the shared state. A lock keeps the pipeline and the
update handlers from working on the log at the same time.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import timedelta
from typing import TypeVar

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError

from workflows.visibility import Visibility

with workflow.unsafe.imports_passed_through():
    from activities.models import (
        AGGREGATE_LOG,
        ARCHIVE_LOG,
        INSPECT_LOG,
        PURGE_LOG,
        REMOVE_ARCHIVE,
        REPLACE_CONTENT,
        VERIFY_ARCHIVE,
        ActivityRef,
        AggregateInput,
        AggregateResult,
        ArchiveInput,
        InspectInput,
        LogSnapshot,
        PurgeInput,
        RemoveArchiveInput,
        ReplaceInput,
        ReplaceResult,
        VerifyInput,
    )
    from workflows.models import (
        LogState,
        LogTimings,
        LogWorkflowState,
        ReplaceContentInput,
    )

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


def requested(s: LogWorkflowState) -> bool:
    """An update asked for work that does not wait for parts or timers."""
    return s.forced or s.rearchive


class Steps:
    """Aggregate, archive until verified, purge, replace: one log's activity calls."""

    def __init__(
        self, job_id: int, timings: LogTimings, state: LogWorkflowState, shown: Visibility
    ) -> None:
        self._job_id = job_id
        self._t = timings
        self._s = state
        self._shown = shown
        self._lock = asyncio.Lock()

    async def inspect(self, summary: str) -> LogSnapshot:
        """The log's row, read by a local activity (one query: no task round trip)."""
        snapshot: LogSnapshot = await workflow.execute_local_activity(
            INSPECT_LOG.name,
            InspectInput(self._job_id),
            result_type=INSPECT_LOG.result_type,
            start_to_close_timeout=INSPECT_TIMEOUT,
            retry_policy=RETRY,
            summary=summary,
        )
        return snapshot

    async def aggregate(self) -> AggregateResult:
        """Merge new parts; a local activity (one transaction) unless the archive is read."""
        self._shown.set(LogState.AGGREGATING)
        summary = f"aggregate: merge new parts into content v{self._s.content_version}"
        inp = AggregateInput(self._job_id)
        if self._s.purged:  # the merge starts from the archive: an S3 read, heartbeating
            result = await self._run(AGGREGATE_LOG, inp, summary=summary, timeout=AGGREGATE_TIMEOUT)
        else:
            result = await self._local(AGGREGATE_LOG, inp, summary)
        s = self._s
        s.aggregations += 1
        s.log_id, s.content_version = result.log_id, result.content_version
        s.content_bytes, s.content_parts = result.size, result.parts
        if result.merged:
            s.purged = False
        if result.verified_version is not None and s.verified_version is None:
            s.verified_version = result.verified_version
        return result

    async def ensure_archived(self, aggregated: AggregateResult, revision: int) -> str:
        """'verified', 'failed' (gave up: verify_failed) or 'stale' (the log changed)."""
        rewrite, self._s.rearchive = self._s.rearchive, False
        if not rewrite and self._s.verified_version == aggregated.content_version:
            return "verified"
        while self._s.mismatches < self._t.max_archive_attempts:
            if await self._archive_once(rewrite):
                return "verified"
            self._s.mismatches += 1
            if self._s.revision != revision:
                return "stale"
            if self._s.mismatches >= self._t.max_archive_attempts:
                break
            await self._backoff()
        self._shown.set(LogState.VERIFY_FAILED)
        return "failed"

    async def _backoff(self) -> None:
        """Wait before archiving again: the backoff doubles with every mismatch."""
        self._shown.set(LogState.REARCHIVE_BACKOFF)
        backoff = self._t.rearchive_backoff_ms * 2 ** (self._s.mismatches - 1)
        await workflow.sleep(
            timedelta(milliseconds=backoff),
            summary=f"re-archive backoff #{self._s.mismatches} ({backoff} ms)",
        )

    async def _archive_once(self, rewrite: bool) -> bool:
        """One archive and read-back; False (with last_error set) when it does not match."""
        self._s.archive_attempts += 1
        attempt = self._s.archive_attempts
        self._shown.set(LogState.ARCHIVING)
        try:
            archived = await self._run(
                ARCHIVE_LOG,
                ArchiveInput(self._job_id, rewrite=self._s.mismatches > 0 or rewrite),
                summary=f"archive #{attempt}: upload v{self._s.content_version} to S3",
                timeout=TRANSFER_TIMEOUT,
                heartbeat=True,
            )
        except ActivityError as err:  # refused for good, e.g. S3 holds a newer version
            self._s.last_error = str(err.cause or err)
            return False
        self._shown.set(LogState.VERIFYING)
        verified = await self._run(
            VERIFY_ARCHIVE,
            VerifyInput(self._job_id, archived.content_version, archived.size, archived.sha256),
            summary=f"verify #{attempt}: read back, compare size and SHA-256",
            timeout=TRANSFER_TIMEOUT,
            heartbeat=True,
        )
        if not verified.verified:
            self._s.last_error = f"archive #{attempt}: {verified.reason}"
            return False
        self._s.verified_version = archived.content_version
        return True

    async def purge_delay(self, revision: int) -> bool:
        """Wait LOGS_PURGE_DELAY_S; False when a part or a request arrived meanwhile."""
        if self._t.purge_delay_ms <= 0:
            return True
        self._shown.set(LogState.ARCHIVED)
        try:
            await workflow.wait_condition(
                lambda: self._s.revision != revision or requested(self._s),
                timeout=timedelta(milliseconds=self._t.purge_delay_ms),
                timeout_summary="purge delay",
            )
        except TimeoutError:
            return True
        return False

    async def purge(self) -> bool:
        """Purge the verified version; False (archive again) when the database disagrees."""
        self._shown.set(LogState.PURGING)
        version = self._s.verified_version or 0
        result = await self._local(
            PURGE_LOG,
            PurgeInput(self._job_id, version),
            f"purge v{version}: NULL the content, delete the archived parts",
        )
        if not result.purged:
            self._s.last_error = f"purge refused: {result.reason}"
            self._s.mismatches += 1
            self._s.rearchive = True
            return False
        self._s.purged = True
        self._shown.set(LogState.DONE)
        return True

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
            if inp.upload_id is None:
                removal = RemoveArchiveInput(self._job_id, done.content_version)
                await self._execute(REMOVE_ARCHIVE, removal, "delete the cleared log's archive")
        return done

    async def _run(
        self,
        ref: ActivityRef[P, R],
        arg: P,
        *,
        summary: str,
        timeout: timedelta = DB_TIMEOUT,
        heartbeat: bool = False,
    ) -> R:
        """One pipeline step: an activity under the log's lock, retried until it succeeds."""
        beat = timedelta(milliseconds=self._t.heartbeat_timeout_ms) if heartbeat else None
        async with self._lock:
            return await self._execute(ref, arg, summary, timeout, beat)

    async def _local(self, ref: ActivityRef[P, R], arg: P, summary: str) -> R:
        """A step that is one database transaction, as a local activity under the lock.

        Local activities cost one history event instead of six and no task round trip;
        S3 transfers stay regular activities, heartbeating and visible while pending.
        """
        async with self._lock:
            result: R = await workflow.execute_local_activity(
                ref.name,
                arg,
                result_type=ref.result_type,
                start_to_close_timeout=DB_TIMEOUT,
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
