"""LogWorkflow: the durable lifecycle of one job's log (DESIGN §3).

`run` is one loop over `Phase`; each phase method returns the next, and the phase is part
of the state, so a run that continued as new resumes where it was. Every change to the
state is a function in workflows/state.py; every activity call is a wrapper in
workflows/steps.py; every wait goes through `_wait`, the one place that continues as new.

```mermaid
stateDiagram-v2
    [*] --> LOAD: first part (signal-with-start) or PUT (update-with-start)
    LOAD --> WAIT: log row read (final number, archive, newest part's age)
    WAIT --> SETTLE: final part + quiet period passed / force timeout, parts left / request
    WAIT --> CLOSE: force timeout, every stored part already in the content
    SETTLE --> WAIT: a part or request came in (window 1: during aggregate/upload)
    SETTLE --> HOLD: verify failed max times (verify_failed, never purged)
    SETTLE --> LINGER: purged (done), or cleared / removed
    HOLD --> WAIT: new part or rearchive
    LINGER --> WAIT: late part in the grace window (window 2: after purge, run open)
    LINGER --> CLOSE: grace window passed
    CLOSE --> WAIT: part or request while update handlers finish
    CLOSE --> [*]
    note right of LOAD: window 3, after the run closed: a new run reads the row first
```

Steps shown while settling: aggregating, archiving, verifying, rearchive_backoff (a
mismatch: archive again after a doubling backoff), archived (purge delay), purging.
Verify and purge are local activities in the task that took the upload's result: a part
arriving meanwhile is seen in LINGER (window 2). A re-archive of a purged log reads its
archive back against the recorded checksum: the archive is the only copy, so it is never
rewritten from itself (activities/archive.py). Empty logs are archived as empty objects (see
activities/archive.py).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from datetime import timedelta
from enum import Enum
from typing import NoReturn

from temporalio import workflow
from temporalio.common import VersioningBehavior
from temporalio.exceptions import ActivityError

# Passed through: imported once per worker, not re-imported by the sandbox for every run
# (that costs milliseconds per log). They keep no state of their own at module level.
with workflow.unsafe.imports_passed_through():
    from activities.models import AggregateResult, ReplaceResult
    from workflows import state as st
    from workflows.models import (
        QUERY_STATUS,
        SIGNAL_PARTS,
        UPDATE_FORCE_AGGREGATE,
        UPDATE_REARCHIVE,
        UPDATE_REDACT,
        UPDATE_REPLACE,
        WORKFLOW_TYPE,
        ForceAggregateInput,
        LifecycleResult,
        LogState,
        LogWorkflowInput,
        LogWorkflowState,
        PartsSignal,
        Phase,
        RearchiveInput,
        RedactInput,
        RedactResult,
        ReplaceContentInput,
        ReplaceContentResult,
        RequestKind,
        Ticket,
        Trigger,
    )
    from workflows.steps import Steps
    from workflows.visibility import Visibility

# How long an update waits for the pipeline before answering with where it stands.
UPDATE_WAIT = timedelta(seconds=20)


class Wake(Enum):
    """How a wait ended."""

    READY = "ready"  # its condition holds
    DEADLINE = "deadline"  # its deadline passed first


class Archived(Enum):
    """How a round's archive step ended."""

    VERIFIED = "verified"
    FAILED = "failed"  # max attempts: verify_failed
    STALE = "stale"  # a mismatch, and the log changed meanwhile: start the round again


def _now_ms() -> int:
    return int(workflow.now().timestamp() * 1000)


# Unsandboxed: the sandbox costs every run a fresh module environment and every signal a
# slower payload decode (a storm of resent parts then overruns the 2 s deadlock check).
# What it guards against is guarded here by the import contract (workflow modules import
# nothing that does I/O) and by replaying the recorded histories.
@workflow.defn(name=WORKFLOW_TYPE, versioning_behavior=VersioningBehavior.PINNED, sandboxed=False)
class LogWorkflow:
    """One job's log, from its first part to a verified archive and a purged database row."""

    @workflow.init
    def __init__(self, inp: LogWorkflowInput) -> None:
        self._job_id = inp.job_id
        self._t = inp.timings
        self._s = inp.state or LogWorkflowState(last_part_at_ms=_now_ms())
        self._signals = 0  # this run's; the server refuses the 10,001st
        self._lapsing: tuple[int, asyncio.Future[None]] | None = None  # (fires at, timer)
        self._shown = Visibility(inp.job_id, self._s)
        self._steps = Steps(inp.job_id, inp.timings)
        self._phases: dict[Phase, Callable[[], Awaitable[Phase]]] = {
            Phase.LOAD: self._load,
            Phase.WAIT: self._wait_due,
            Phase.SETTLE: self._settle,
            Phase.HOLD: self._hold,
            Phase.LINGER: self._linger,
            Phase.CLOSE: self._close,
        }

    # --- messages ---------------------------------------------------------------------------

    @workflow.signal(name=SIGNAL_PARTS)
    def parts(self, signal: PartsSignal) -> None:
        """Part transitions: new numbers move the quiet deadline; resent ones change nothing."""
        self._signals += 1
        if signal.job_id != self._job_id:
            workflow.logger.warning("ignoring parts of job %d sent to this log", signal.job_id)
            return
        now_ms = _now_ms()
        st.on_parts(self._s, signal.refs, now_ms)
        st.on_part_milestones(self._s, signal.refs, now_ms)

    @workflow.query(name=QUERY_STATUS)
    def status(self) -> LogWorkflowState:
        """Everything the run knows (the state carried through continue-as-new)."""
        return self._s

    @workflow.update(name=UPDATE_REPLACE)
    async def replace_content(self, inp: ReplaceContentInput) -> ReplaceContentResult:
        """PUT /logs/:job_id: replace (or clear) the content; answers once it is archived."""
        await workflow.wait_condition(self._loaded)
        tickets: list[Ticket] = []

        def replaced(done: ReplaceResult) -> None:
            tickets.append(st.on_replaced(self._s, done))
            st.on_milestone(self._s, "replaced", _now_ms())

        done = await self._steps.replace(inp, replaced)
        if inp.clears:
            return ReplaceContentResult(done.log_id, archived=False)
        await self._answer(tickets[0], "wait for the new content's archive")
        return ReplaceContentResult(done.log_id, st.is_verified(self._s, done.content_version))

    @replace_content.validator
    def _validate_replace(self, inp: ReplaceContentInput) -> None:
        inp.validate()

    @workflow.update(name=UPDATE_FORCE_AGGREGATE)
    async def force_aggregate(self, inp: ForceAggregateInput) -> LifecycleResult:
        """Aggregate now, without waiting for the final part or the quiet period."""
        return await self._request(RequestKind.AGGREGATE, "wait for the aggregation")

    @force_aggregate.validator
    def _validate_force(self, inp: ForceAggregateInput) -> None:
        if len(inp.reason) > 200:
            raise ValueError("reason: at most 200 characters")

    @workflow.update(name=UPDATE_REARCHIVE)
    async def rearchive(self, inp: RearchiveInput) -> LifecycleResult:
        """Archive and verify again (e.g. after verify_failed), with a fresh attempt budget."""
        return await self._request(RequestKind.REARCHIVE, "wait for the archive")

    @rearchive.validator
    def _validate_rearchive(self, inp: RearchiveInput) -> None:
        if len(inp.reason) > 200:
            raise ValueError("reason: at most 200 characters")
        if self._loaded() and self._s.content_version == 0:
            raise ValueError("nothing to archive: no part has been aggregated yet")

    @workflow.update(name=UPDATE_REDACT)
    async def redact(self, inp: RedactInput) -> RedactResult:
        """Mask leaked secrets; answers once the redacted version is archived and verified."""
        await workflow.wait_condition(self._loaded)
        done = await self._steps.redact(inp.redaction_id)
        ticket = st.on_redacted(self._s, inp.redaction_id, done)
        served = ticket is None or await self._answer(ticket, "wait for the redacted archive")
        archived = st.is_verified(self._s, done.content_version)
        return RedactResult(
            inp.redaction_id, done.occurrences, done.changed, done.content_version, archived, served
        )

    @redact.validator
    def _validate_redact(self, inp: RedactInput) -> None:
        inp.validate()

    async def _request(self, kind: RequestKind, summary: str) -> LifecycleResult:
        """Queue a request and answer when the round that took it has finished."""
        await workflow.wait_condition(self._loaded)
        ticket = st.request(self._s, kind)
        served = await self._answer(ticket, summary)
        s = self._s
        archived = s.content_version > 0 and st.is_verified(s, s.content_version)
        return LifecycleResult(s.state, s.content_version, archived, served)

    async def _answer(self, ticket: Ticket, summary: str) -> bool:
        """Wait (bounded) for the ticket to be served; False when the wait ran out."""
        with contextlib.suppress(TimeoutError):
            await workflow.wait_condition(
                lambda: st.is_served(self._s, ticket), timeout=UPDATE_WAIT, timeout_summary=summary
            )
        return st.is_served(self._s, ticket)

    def _loaded(self) -> bool:
        return self._s.phase is not Phase.LOAD

    # --- the lifecycle ----------------------------------------------------------------------

    @workflow.run
    async def run(self, inp: LogWorkflowInput) -> LogWorkflowState:
        """Drive the log through its phases until it is settled and nothing new arrives."""
        while self._s.phase is not Phase.END:
            st.enter(self._s, await self._phases[self._s.phase]())
        return self._s

    async def _load(self) -> Phase:
        """A fresh run reads the log first: a late part must not wait hours for a final."""
        snapshot = await self._steps.inspect("read the log's state from the database")
        st.adopt(self._s, snapshot, _now_ms())
        return Phase.WAIT

    async def _wait_due(self) -> Phase:
        """Wait for the final part (or the force timeout, or a request), then the quiet period."""
        s = self._s
        while not st.requested(s):
            if s.final_number is not None:
                return await self._quiet()
            self._shown.show(LogState.DONE if s.purged else LogState.STREAMING)
            if (
                await self._wait(
                    lambda: s.final_number is not None or st.requested(s),
                    "force timeout",
                    lambda: st.deadline_ms(s, self._t.force_after_ms),
                    lapse=True,
                )
                is Wake.READY
            ):
                continue
            snapshot = await self._steps.inspect("force timeout: read the newest part's age")
            verdict = st.on_force_check(s, snapshot, _now_ms(), self._t.force_after_ms)
            if verdict is st.ForceVerdict.AGGREGATE:
                return st.due(s, Trigger.FORCE_TIMEOUT)
            if verdict is st.ForceVerdict.NOTHING_LEFT:
                return Phase.CLOSE
        return st.due(s, Trigger.REQUEST)

    async def _quiet(self) -> Phase:
        """The final part is known: the quiet period, which a later part moves."""
        s = self._s

        def quiet_end() -> int:
            return st.deadline_ms(s, self._t.quiet_period_ms)

        # Whether to wait is decided without the clock: right after a local activity (the
        # LOAD read) `workflow.now()` can differ between the first run and a replay (the
        # result may land in the next workflow task), so a branch on it could issue other
        # commands on replay. With a quiet period there is always its timer, at least 1 ms.
        if self._t.quiet_period_ms > 0:
            self._shown.show(LogState.QUIET)
            await self._wait(lambda: st.requested(s), "quiet period", quiet_end, timer=True)
        return st.due(s, Trigger.REQUEST if st.requested(s) else Trigger.FINAL_PART)

    async def _settle(self) -> Phase:
        """Aggregate, archive until verified, purge; back to WAIT when the log changed."""
        s = self._s
        revision = s.revision
        rewrite = st.take_requests(s)
        aggregated = await self._aggregate()
        if not aggregated.has_content:
            self._shown.show(LogState.REMOVED if aggregated.removed else LogState.CLEARED)
            st.serve(s)
            return self._settled(revision)
        verdict = await self._ensure_archived(aggregated, revision, rewrite)
        if verdict is Archived.STALE:
            st.requeue(s)
            return Phase.WAIT
        st.serve(s)
        if verdict is Archived.FAILED:
            self._shown.show(LogState.VERIFY_FAILED)
            return Phase.HOLD
        if st.changed(s, revision) or not await self._purge_delay(revision):
            return Phase.WAIT
        if not await self._purge():
            return Phase.WAIT
        return self._settled(revision)

    def _settled(self, revision: int) -> Phase:
        """Close the round at `revision`, unless a part or a request came in meanwhile."""
        if st.changed(self._s, revision):
            return Phase.WAIT
        st.on_settled(self._s, revision)
        return Phase.LINGER

    async def _aggregate(self) -> AggregateResult:
        self._shown.show(LogState.AGGREGATING)
        result = await self._steps.aggregate(
            from_archive=self._s.purged,
            summary=f"aggregate: merge new parts into content v{self._s.content_version}",
        )
        st.on_aggregated(self._s, result)
        st.on_milestone(self._s, "aggregated", _now_ms())
        self._shown.flag_incomplete(st.on_completeness(self._s, result))
        return result

    async def _ensure_archived(
        self, aggregated: AggregateResult, revision: int, rewrite: bool
    ) -> Archived:
        """Archive and verify, again after a doubling backoff on a mismatch, up to the limit."""
        s = self._s
        if not rewrite and s.verified_version == aggregated.content_version:
            return Archived.VERIFIED
        while s.mismatches < self._t.max_archive_attempts:
            if await self._archive_once(rewrite or s.mismatches > 0):
                return Archived.VERIFIED
            if s.revision != revision:
                return Archived.STALE
            if s.mismatches < self._t.max_archive_attempts:
                await self._backoff()
        return Archived.FAILED

    async def _archive_once(self, rewrite: bool) -> bool:
        """One archive and read-back; False (a mismatch recorded) when it does not match."""
        s = self._s
        attempt = st.on_archive_started(s)
        self._shown.show(LogState.ARCHIVING)
        try:
            archived = await self._steps.archive(
                rewrite=rewrite, summary=f"archive #{attempt}: upload v{s.content_version} to S3"
            )
        except ActivityError as err:  # refused for good, e.g. S3 holds a newer version
            st.on_mismatch(s, str(err.cause or err))
            return False
        st.on_milestone(s, "archived", _now_ms())
        self._shown.show(LogState.VERIFYING)
        verified = await self._steps.verify(
            archived, f"verify #{attempt}: read back, compare size and SHA-256"
        )
        if not verified.verified:
            st.on_mismatch(s, f"archive #{attempt}: {verified.reason}")
            return False
        st.on_verified(s, archived.content_version, _now_ms(), self._t.purge_delay_ms)
        st.on_milestone(s, "verified", _now_ms())
        return True

    async def _backoff(self) -> None:
        """Wait before archiving again: the backoff doubles with every mismatch."""
        self._shown.show(LogState.REARCHIVE_BACKOFF)
        backoff = self._t.rearchive_backoff_ms * 2 ** (self._s.mismatches - 1)
        until = _now_ms() + backoff
        summary = f"re-archive backoff #{self._s.mismatches} ({backoff} ms)"
        await self._wait(lambda: False, summary, lambda: until)

    async def _purge_delay(self, revision: int) -> bool:
        """Wait LOGS_PURGE_DELAY_S; False when a part or a request arrived meanwhile."""
        if self._t.purge_delay_ms <= 0:
            return True
        self._shown.show(LogState.ARCHIVED)
        due = st.purge_due_ms(self._s, _now_ms(), self._t.purge_delay_ms)
        wake = await self._wait(lambda: st.changed(self._s, revision), "purge delay", lambda: due)
        return wake is Wake.DEADLINE

    async def _purge(self) -> bool:
        """Purge the verified version; False (archive again) when the database disagrees."""
        self._shown.show(LogState.PURGING)
        version = self._s.verified_version or 0
        result = await self._steps.purge(
            version, f"purge v{version}: NULL the content, delete the archived parts"
        )
        if not st.on_purged(self._s, result):
            return False
        st.on_milestone(self._s, "purged", _now_ms())
        self._shown.show(LogState.DONE)
        return True

    async def _hold(self) -> Phase:
        """verify_failed: never purge an unverified log; a new part or a request retries."""
        s = self._s
        revision = s.revision
        await self._wait(
            lambda: st.changed(s, revision), "verify_failed: wait for a part or a request"
        )
        st.on_retry(s)
        return Phase.WAIT

    async def _linger(self) -> Phase:
        """The grace window after purge, for late parts."""
        s = self._s
        if st.has_work(s) or st.on_forced_without_final(s, _now_ms()):
            return Phase.WAIT
        grace = st.grace_ms(s, self._t.grace_period_ms, self._t.incomplete_grace_ms)
        if grace <= 0:
            return Phase.CLOSE
        until = _now_ms() + grace
        wake = await self._wait(lambda: st.has_work(s), "late-part grace window", lambda: until)
        return Phase.WAIT if wake is Wake.READY else Phase.CLOSE

    async def _close(self) -> Phase:
        """End once no update handler is running, unless work came in meanwhile."""
        await workflow.wait_condition(
            lambda: workflow.all_handlers_finished() or st.has_work(self._s)
        )
        return Phase.WAIT if st.has_work(self._s) else Phase.END

    # --- the one wait -----------------------------------------------------------------------

    async def _wait(
        self,
        ready: Callable[[], bool],
        summary: str,
        deadline: Callable[[], int] | None = None,
        *,
        lapse: bool = False,
        timer: bool = False,
    ) -> Wake:
        """Until `ready()` or the (movable) deadline; continues as new when that is due.

        One timer per deadline: a part arriving meanwhile moves the deadline, and the timer is
        re-armed only when it fires (not once per part). With `lapse`, a timer that is no
        longer needed is left to lapse instead of cancelled: cancelling costs a history
        event, and a run usually ends long before the force timeout would fire. With
        `timer`, the first pass arms its timer (at least 1 ms) even when the deadline has
        passed, so whether the timer exists never depends on the clock.
        """
        first = timer
        while not ready():
            remaining = None if deadline is None else deadline() - _now_ms()
            if remaining is not None and first:
                remaining = max(remaining, 1)
            first = False
            if remaining is not None and remaining <= 0:
                return Wake.DEADLINE
            if self._continue_due():
                await self._continue_as_new(ready)
            elif remaining is not None and lapse:
                await self._until_fired(ready, self._lapsing_timer(remaining, summary))
            else:
                with contextlib.suppress(TimeoutError):
                    await workflow.wait_condition(
                        lambda: ready() or self._continue_due(),
                        timeout=None if remaining is None else timedelta(milliseconds=remaining),
                        timeout_summary=summary if remaining is not None else None,
                    )
        return Wake.READY

    async def _until_fired(self, ready: Callable[[], bool], timer: asyncio.Future[None]) -> None:
        await workflow.wait_condition(lambda: ready() or self._continue_due() or timer.done())

    def _lapsing_timer(self, remaining_ms: int, summary: str) -> asyncio.Future[None]:
        """The pending timer if it fires no later than needed, else a new one."""
        fire_at = _now_ms() + remaining_ms
        pending = self._lapsing
        if pending is not None and not pending[1].done() and pending[0] <= fire_at:
            return pending[1]
        timer = asyncio.ensure_future(
            workflow.sleep(timedelta(milliseconds=remaining_ms), summary=summary)
        )
        self._lapsing = (fire_at, timer)
        return timer

    def _continue_due(self) -> bool:
        """Time for a fresh history, unless a request is in flight (its update is waiting)."""
        if self._s.pending or self._s.taken:
            return False
        return (
            workflow.info().is_continue_as_new_suggested()
            or self._signals >= self._t.max_signals_per_run
        )

    async def _continue_as_new(self, ready: Callable[[], bool]) -> None:
        """Start a fresh history with the whole state once update handlers have finished;
        returns when `ready()` (or a request) comes first."""
        await workflow.wait_condition(
            lambda: workflow.all_handlers_finished() or ready() or not self._continue_due()
        )
        if workflow.all_handlers_finished() and self._continue_due() and not ready():
            self._continue(self._s)

    def _continue(self, s: LogWorkflowState) -> NoReturn:
        workflow.continue_as_new(LogWorkflowInput(self._job_id, self._t, s))
