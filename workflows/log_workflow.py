"""LogWorkflow: the durable lifecycle of one job's log (DESIGN §3).

Wait for the final part (or the force timeout, read on the database's clock), wait out the
quiet period, aggregate, archive, verify (archiving again with backoff on a mismatch, up to
a limit, then `verify_failed` and no purge), wait out the purge delay, purge, and keep the
run open for a grace window. A part that arrives meanwhile (the ingest signals the first
part, the final part and every part stored after it) sends the log through the pipeline
again before anything is purged; after purge, the merge starts from the verified archive.
A run started by a late part after an earlier run closed reads the log's state from the
database first. Updates replace the content (PUT /logs), force an aggregation or a
re-archive. Empty logs are archived as empty objects (see activities/archive.py).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from datetime import timedelta
from typing import NoReturn

from temporalio import workflow

# Passed through: imported once per worker, not re-imported by the sandbox for every run
# (that costs milliseconds per log). They keep no state of their own at module level.
with workflow.unsafe.imports_passed_through():
    from activities.models import LogSnapshot, ReplaceResult
    from workflows.models import (
        QUERY_STATUS,
        SIGNAL_PARTS,
        UPDATE_FORCE_AGGREGATE,
        UPDATE_REARCHIVE,
        UPDATE_REPLACE,
        WORKFLOW_TYPE,
        ForceAggregateInput,
        LifecycleResult,
        LogState,
        LogWorkflowInput,
        LogWorkflowState,
        PartsSignal,
        RearchiveInput,
        ReplaceContentInput,
        ReplaceContentResult,
    )
    from workflows.steps import Steps, requested
    from workflows.visibility import Visibility

# How long an update waits for the pipeline before answering with where it stands.
UPDATE_WAIT = timedelta(seconds=20)
FINAL_PART, FORCE_TIMEOUT, REQUEST = "final part", "force timeout", "request"


def _now_ms() -> int:
    return int(workflow.now().timestamp() * 1000)


@workflow.defn(name=WORKFLOW_TYPE)
class LogWorkflow:
    """One job's log, from its first part to a verified archive and a purged database row."""

    @workflow.init
    def __init__(self, inp: LogWorkflowInput) -> None:
        self._job_id = inp.job_id
        self._t = inp.timings
        self._s = inp.state or LogWorkflowState(last_part_at_ms=_now_ms())
        self._known = set(self._s.known_numbers)
        self._signals = 0  # this run's; the server refuses the 10,001st
        self._shown = Visibility(inp.job_id, self._s)
        self._steps = Steps(inp.job_id, inp.timings, self._s, self._shown)

    # --- messages ---------------------------------------------------------------------------

    @workflow.signal(name=SIGNAL_PARTS)
    def parts(self, signal: PartsSignal) -> None:
        """Part transitions: new numbers move the quiet deadline; resent ones change nothing."""
        self._signals += 1
        if signal.job_id != self._job_id:
            workflow.logger.warning("ignoring parts of job %d sent to this log", signal.job_id)
            return
        fresh = False
        for ref in signal.refs:
            if ref.final:
                self._s.final_number = max(ref.number, self._s.final_number or ref.number)
            if ref.number in self._known:
                continue
            self._known.add(ref.number)
            self._s.known_numbers.append(ref.number)
            self._s.parts_signalled += 1
            self._s.bytes_signalled += ref.size
            fresh = True
        if fresh:
            self._s.revision += 1
            self._s.last_part_at_ms = _now_ms()

    @workflow.query(name=QUERY_STATUS)
    def status(self) -> LogWorkflowState:
        """Everything the run knows (the state carried through continue-as-new)."""
        return self._s

    @workflow.update(name=UPDATE_REPLACE)
    async def replace_content(self, inp: ReplaceContentInput) -> ReplaceContentResult:
        """PUT /logs/:job_id: replace (or clear) the content; answers once it is archived."""
        await workflow.wait_condition(lambda: self._s.loaded)
        done = await self._steps.replace(inp, self._replaced)
        if inp.upload_id is None:
            return ReplaceContentResult(done.log_id, archived=False)
        rounds = self._s.archive_rounds
        await self._wait_for(
            lambda: self._archived(done.content_version) or self._gave_up(rounds),
            "wait for the new content's archive",
        )
        return ReplaceContentResult(done.log_id, archived=self._archived(done.content_version))

    @replace_content.validator
    def _validate_replace(self, inp: ReplaceContentInput) -> None:
        if inp.removed_by is not None and inp.removed_by < 1:
            raise ValueError(f"removed_by must be a user id, got {inp.removed_by}")
        if inp.upload_id is not None and not inp.checksum_ok():
            raise ValueError("an upload needs the hex SHA-256 of its content")

    @workflow.update(name=UPDATE_FORCE_AGGREGATE)
    async def force_aggregate(self, inp: ForceAggregateInput) -> LifecycleResult:
        """Aggregate now, without waiting for the final part or the quiet period."""
        await workflow.wait_condition(lambda: self._s.loaded)
        before = self._s.aggregations
        self._s.forced = True
        await self._wait_for(lambda: self._s.aggregations > before, "wait for the aggregation")
        return self._result()

    @force_aggregate.validator
    def _validate_force(self, inp: ForceAggregateInput) -> None:
        if len(inp.reason) > 200:
            raise ValueError("reason: at most 200 characters")

    @workflow.update(name=UPDATE_REARCHIVE)
    async def rearchive(self, inp: RearchiveInput) -> LifecycleResult:
        """Archive and verify again (e.g. after verify_failed), with a fresh attempt budget."""
        await workflow.wait_condition(lambda: self._s.loaded)
        before = self._s.archive_rounds
        self._s.rearchive = self._s.forced = True
        self._s.mismatches = 0
        await self._wait_for(lambda: self._s.archive_rounds > before, "wait for the archive")
        return self._result()

    @rearchive.validator
    def _validate_rearchive(self, inp: RearchiveInput) -> None:
        if len(inp.reason) > 200:
            raise ValueError("reason: at most 200 characters")
        if self._s.loaded and self._s.content_version == 0:
            raise ValueError("nothing to archive: no part has been aggregated yet")

    # --- the lifecycle ----------------------------------------------------------------------

    @workflow.run
    async def run(self, inp: LogWorkflowInput) -> LogWorkflowState:
        """Drive the log until it is purged (or cleared) and nothing new arrives."""
        if not self._s.loaded:
            # A fresh run reads the log first: a late part must not wait hours for a final.
            self._adopt(await self._steps.inspect("read the log's state from the database"))
            self._s.loaded = True
        while True:
            if await self._await_due():
                if not await self._settle():
                    continue
                if await self._linger():
                    continue
            if await self._quiesce():
                return self._s

    async def _await_due(self) -> bool:
        """Wait for the final part (or the force timeout), then the quiet period."""
        while not requested(self._s):
            if self._s.final_number is not None:
                if self._remaining_ms(self._t.quiet_period_ms) > 0:
                    self._shown.set(LogState.QUIET)
                    await self._until_deadline(
                        self._t.quiet_period_ms, "quiet period", lambda: requested(self._s)
                    )
                self._s.trigger = REQUEST if requested(self._s) else FINAL_PART
                return True
            self._shown.set(LogState.DONE if self._s.purged else LogState.STREAMING)
            if await self._until_deadline(
                self._t.force_after_ms, "force timeout", self._final_or_requested
            ):
                verdict = await self._check_force()
                if verdict is not None:
                    return verdict
        self._s.trigger = REQUEST
        return True

    async def _until_deadline(self, span_ms: int, summary: str, until: Callable[[], bool]) -> bool:
        """True once `span_ms` passed since the newest part; False as soon as `until()`.

        One timer per deadline: a part arriving meanwhile moves the deadline, and the timer is
        re-armed only when it fires (not once per part).
        """
        while not until():
            remaining = self._remaining_ms(span_ms)
            if remaining <= 0:
                return True
            try:
                await workflow.wait_condition(
                    lambda: until() or self._continue_due(),
                    timeout=timedelta(milliseconds=remaining),
                    timeout_summary=summary,
                )
            except TimeoutError:
                continue
            if not until():
                await self._continue_as_new()
        return False

    def _remaining_ms(self, span_ms: int) -> int:
        """Time left until `span_ms` after the newest part."""
        return self._s.last_part_at_ms + span_ms - _now_ms()

    async def _check_force(self) -> bool | None:
        """The force timer fired: None to wait on, True to aggregate, False if nothing is left."""
        self._s.force_checks += 1
        snapshot = await self._steps.inspect("force timeout: read the newest part's age")
        self._adopt(snapshot)
        if self._s.final_number is not None:
            return None
        age = snapshot.newest_part_age_ms
        if age is not None and age < self._t.force_after_ms:
            return None  # parts are still coming: the deadline moved with the newest one
        if snapshot.pending_parts == 0:
            self._s.settled_revision = self._s.revision
            return False
        self._s.trigger = FORCE_TIMEOUT
        return True

    async def _settle(self) -> bool:
        """Aggregate, archive until verified, purge; False when the log changed meanwhile."""
        revision = self._s.revision
        self._s.forced = False
        aggregated = await self._steps.aggregate()
        if not aggregated.has_content:
            self._s.archive_rounds += 1
            self._shown.set(LogState.REMOVED if aggregated.removed else LogState.CLEARED)
            return self._settled(revision)
        outcome = await self._steps.ensure_archived(aggregated, revision)
        self._s.archive_rounds += 1
        if outcome == "failed":
            # Never purge an unverified log: wait for an operator's update or a new part,
            # either of which earns a fresh set of attempts.
            await workflow.wait_condition(
                lambda: self._s.revision != revision or requested(self._s)
            )
            self._s.mismatches = 0
            return False
        if outcome == "stale" or self._s.revision != revision or requested(self._s):
            return False
        if not await self._steps.purge_delay(revision) or not await self._steps.purge():
            return False
        return self._settled(revision)

    def _settled(self, revision: int) -> bool:
        """Close the pipeline at `revision`, unless a part or a request came in meanwhile."""
        if self._s.revision != revision or requested(self._s):
            return False
        self._s.settled_revision = revision
        self._s.mismatches = 0
        # Purged parts are gone from the database: a signal for one of their numbers now
        # means a newly stored part (a redelivery), which the next aggregation sorts out.
        self._known.clear()
        self._s.known_numbers = []
        return True

    async def _linger(self) -> bool:
        """The grace window after purge; True when there is more to do."""
        if self._has_work():
            return True
        if self._s.final_number is None and self._s.trigger == FORCE_TIMEOUT:
            # Forced without a final part: unsignalled parts may still come; restart the clock.
            self._s.last_part_at_ms = _now_ms()
            return True
        if self._t.grace_period_ms <= 0:
            return False
        try:
            await workflow.wait_condition(
                lambda: self._has_work() or self._continue_due(),
                timeout=timedelta(milliseconds=self._t.grace_period_ms),
                timeout_summary="late-part grace window",
            )
        except TimeoutError:
            return False
        if not self._has_work():
            await self._continue_as_new()
        return True

    async def _quiesce(self) -> bool:
        """True when the run may end: no update handler is running and nothing is left."""
        await workflow.wait_condition(lambda: workflow.all_handlers_finished() or self._has_work())
        return not self._has_work()

    # --- state ------------------------------------------------------------------------------

    def _adopt(self, snapshot: LogSnapshot) -> None:
        """Take what the database knows: final number, archive state, newest part's time."""
        s = self._s
        s.log_id = snapshot.log_id
        if snapshot.final_number is not None:
            s.final_number = max(snapshot.final_number, s.final_number or 0)
        s.content_version = max(s.content_version, snapshot.content_version)
        if snapshot.verified_version is not None:
            s.verified_version = snapshot.verified_version
        s.purged = snapshot.purged
        if snapshot.newest_part_age_ms is not None:
            s.last_part_at_ms = max(s.last_part_at_ms, _now_ms() - snapshot.newest_part_age_ms)

    def _replaced(self, done: ReplaceResult) -> None:
        """After PUT /logs: the parts are gone, a restarted job streams from part 0 again."""
        s = self._s
        s.log_id, s.content_version = done.log_id, done.content_version
        s.final_number = None
        self._known.clear()
        s.known_numbers = []
        s.revision += 1
        s.forced = True
        s.purged = False
        s.mismatches = 0

    async def _wait_for(self, done: Callable[[], bool], summary: str) -> None:
        """Wait (bounded) for the pipeline to reach `done`; the caller reports where it is."""
        with contextlib.suppress(TimeoutError):
            await workflow.wait_condition(done, timeout=UPDATE_WAIT, timeout_summary=summary)

    def _gave_up(self, rounds: int) -> bool:
        """An archive round finished after `rounds` and ended in verify_failed."""
        return self._s.archive_rounds > rounds and self._s.state == LogState.VERIFY_FAILED

    def _archived(self, version: int) -> bool:
        return self._s.verified_version is not None and self._s.verified_version >= version

    def _result(self) -> LifecycleResult:
        archived = self._archived(self._s.content_version) and self._s.content_version > 0
        return LifecycleResult(self._s.state, self._s.content_version, archived)

    def _final_or_requested(self) -> bool:
        return self._s.final_number is not None or requested(self._s)

    def _has_work(self) -> bool:
        return requested(self._s) or self._s.revision != self._s.settled_revision

    def _continue_due(self) -> bool:
        return (
            workflow.info().is_continue_as_new_suggested()
            or self._signals >= self._t.max_signals_per_run
        )

    async def _continue_as_new(self) -> NoReturn:
        """Start a fresh history with the whole state; handlers finish first."""
        await workflow.wait_condition(workflow.all_handlers_finished)
        self._s.known_numbers = sorted(self._known)
        workflow.continue_as_new(LogWorkflowInput(self._job_id, self._t, self._s))
