"""LogWorkflow: the durable lifecycle of one job's log (DESIGN §3).

`run` is one loop over `Phase`; each phase method returns the next, and the phase is part
of the state, so a run that continued as new resumes where it was. Every change to the
state is a function in workflows/state.py; every activity call is a wrapper in
workflows/log_activities.py, made under the workflow's lock; every wait goes through
`_wait`, the one place that continues as new.

```mermaid
stateDiagram-v2
    [*] --> LOAD: final part ends the first part's start delay, or the delay ends, or an update
    LOAD --> WAIT: log row read (final number, archive, newest part's age), unless new
    WAIT --> SETTLE: final part + quiet period passed / sweeper, parts left / request
    WAIT --> CLOSE: sweeper, every stored part already in the content
    SETTLE --> WAIT: a part or request came in (window 1: during aggregate/upload)
    SETTLE --> HOLD: verify failed max times (verify_failed, never purged)
    SETTLE --> LINGER: purged (done), or cleared / removed
    HOLD --> WAIT: new part or rearchive
    LINGER --> WAIT: a part arrived in the purge's workflow task (window 2)
    LINGER --> CLOSE: at once; an incomplete log after its grace window
    CLOSE --> WAIT: part or request while update handlers finish
    CLOSE --> [*]
    note right of LOAD: window 3, after the run closed: a new run reads the row first
```

The happy path is two workflow tasks: the final part's (arm the quiet timer; a run whose row
existed before its first part reads the row first) and the quiet timer's firing, in which
aggregate, upload, verify and purge run as local activities one after the other. The run
sleeps from the first part on: the ingest starts it with a start delay (workflows/client.py
`start_delay`), which the final part's signal-with-start or an update ends; when the delay
runs out first, the log may be silent, and LOAD asks for a force check. The upload's first
attempt is local; when it fails it goes on as a regular, heartbeating activity
(`archiving`), whose attempts and last error the UI shows. A part that arrives during that
last task is delivered when the task completes: the run's completion is refused, and the
part is merged by the same run (window 2). No timer waits for silent logs: the sweeper
(workflows/reconcile.py) signals `force_check` to the runs whose newest part is older than
LOGS_FORCE_AFTER_S.

Steps shown while settling: aggregating, uploading, archiving (the upload retrying),
verifying, rearchive_backoff (a mismatch: archive again after a doubling backoff), archived
(purge delay), purging. A re-archive of a purged log reads its archive back against the
recorded checksum: the archive is the only copy, so it is never rewritten from itself
(activities/archive.py). Empty logs are archived as empty objects (see activities/archive.py).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from datetime import timedelta
from enum import Enum
from typing import NoReturn, TypeVar

from temporalio import workflow
from temporalio.common import VersioningBehavior
from temporalio.exceptions import ActivityError, ApplicationError, FailureError
from temporalio.exceptions import TimeoutError as ActivityTimeout

# Passed through: imported once per worker, not re-imported by the sandbox for every run
# (that costs milliseconds per log). They keep no state of their own at module level.
with workflow.unsafe.imports_passed_through():
    from activities.models import AggregateResult, ArchiveResult
    from workflows import state as st
    from workflows.lifecycle_metrics import LifecycleMetrics
    from workflows.lifecycle_metrics import Phase as Milestone
    from workflows.log_activities import LogActivities
    from workflows.models import (
        QUERY_STATUS,
        SIGNAL_FORCE_CHECK,
        SIGNAL_PARTS,
        UPDATE_FORCE_AGGREGATE,
        UPDATE_REARCHIVE,
        UPDATE_REDACT,
        UPDATE_REPLACE,
        WORKFLOW_TYPE,
        ForceAggregateInput,
        ForceCheckSignal,
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
    from workflows.visibility import Visibility

R = TypeVar("R")

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


# How a failed activity surfaces: a local activity's failure may come unwrapped.
FAILED = (ActivityError, ApplicationError, ActivityTimeout)


def _cause(err: FailureError) -> FailureError:
    """The activity's own failure, without the ActivityError around it."""
    inner = err.cause if isinstance(err, ActivityError) else None
    return inner if isinstance(inner, FailureError) else err


def _refused(err: FailureError) -> bool:
    """The activity refused for good (e.g. S3 holds a newer version): no retry helps."""
    cause = _cause(err)
    return isinstance(cause, ApplicationError) and cause.non_retryable


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
        self._row_created = False  # a signal said its batch created the log's row
        self._shown = Visibility(inp.job_id)
        self._metrics = LifecycleMetrics()
        self._activities = LogActivities(inp.job_id, inp.timings)
        # One activity on the log at a time: the pipeline's, or an update handler's.
        self._lock = asyncio.Lock()
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
        self._row_created = self._row_created or signal.created
        now_ms = _now_ms()
        st.on_parts(self._s, signal.refs, now_ms)
        st.on_part_milestones(self._s, signal.refs, now_ms)
        self._metrics.part(final=any(ref.final for ref in signal.refs))

    @workflow.signal(name=SIGNAL_FORCE_CHECK)
    def force_check(self, signal: ForceCheckSignal) -> None:
        """The sweeper found the log silent: read its row and decide (WAIT only)."""
        self._signals += 1
        if signal.job_id == self._job_id:
            st.on_force_wake(self._s)

    @workflow.query(name=QUERY_STATUS)
    def status(self) -> LogWorkflowState:
        """Everything the run knows (the state carried through continue-as-new)."""
        return self._s

    @workflow.update(name=UPDATE_REPLACE)
    async def replace_content(self, inp: ReplaceContentInput) -> ReplaceContentResult:
        """PUT /logs/:job_id: replace (or clear) the content; answers once it is archived."""
        await workflow.wait_condition(self._loaded)
        async with self._lock:  # no archive may slip in between the replace and the removal
            done = await self._activities.replace(inp)
            st.on_replaced(self._s, done)
            st.on_milestone(self._s, "replaced", _now_ms())
            ticket = st.newest_ticket(self._s)
            if inp.clears:
                await self._activities.remove_archive(done.content_version)
        if inp.clears:
            return ReplaceContentResult(done.log_id, archived=False)
        await self._answer(ticket, "wait for the new content's archive")
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
        done = await self._locked(self._activities.redact(inp.redaction_id))
        st.on_redacted(self._s, inp.redaction_id, done)
        served = not done.changed or await self._answer(
            st.newest_ticket(self._s), "wait for the redacted archive"
        )
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
        st.request(self._s, kind)
        served = await self._answer(st.newest_ticket(self._s), summary)
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
        """A fresh run reads the log first: a late part must not wait hours for a final.

        Not when its first part's batch created the row: the row then holds no archive, no
        purge and no redaction, a final part comes with its own signal, and the aggregation
        reads the row anyway. Histories recorded before the `created` flag carry no such
        signal, so they replay with the read."""
        if not self._row_created:
            snapshot = await self._locked(
                self._activities.inspect("read the log's state from the database")
            )
            st.adopt(self._s, snapshot, _now_ms())
        if self._woke_at_start_delay() and self._s.final_number is None:
            st.on_force_wake(self._s)  # no final part in LOGS_FORCE_AFTER_S: silent?
        return Phase.WAIT

    def _woke_at_start_delay(self) -> bool:
        """The run's first task came when its start delay ran out, not by a signal-with-start
        or an update (workflows/client.py `start_delay`). Both times are in the history."""
        info = workflow.info()
        slept = info.start_time - info.workflow_start_time
        return slept >= timedelta(milliseconds=self._t.force_after_ms)

    async def _wait_due(self) -> Phase:
        """Wait for the final part (or a request, or the sweeper), then the quiet period."""
        s = self._s
        while not st.requested(s):
            if s.final_number is not None:
                return await self._quiet()
            if s.force_check:
                verdict = await self._force_check()
                if verdict is st.ForceVerdict.AGGREGATE:
                    return self._due(Trigger.FORCE_TIMEOUT)
                if verdict is st.ForceVerdict.NOTHING_LEFT:
                    st.on_nothing_left(s)
                    return Phase.CLOSE
                continue
            self._step(LogState.DONE if s.purged else LogState.STREAMING)
            await self._wait(
                lambda: s.final_number is not None or st.requested(s) or s.force_check,
                "wait for the final part",
            )
        return self._due(Trigger.REQUEST)

    async def _force_check(self) -> st.ForceVerdict:
        """The sweeper's wake: the log's row, read again, says whether it went silent."""
        summary = "force check: read the newest part's age"
        snapshot = await self._locked(self._activities.inspect(summary))
        st.on_force_check(self._s, snapshot, _now_ms())
        return st.force_verdict(self._s, snapshot, self._t.force_after_ms)

    async def _quiet(self) -> Phase:
        """The final part is known: the quiet period, which a later part moves."""
        s = self._s
        if self._t.quiet_period_ms > 0:
            self._step(LogState.QUIET)
            quiet = self._t.quiet_period_ms
            await self._wait(
                lambda: st.requested(s), "quiet period", lambda: st.deadline_ms(s, quiet)
            )
        return self._due(Trigger.REQUEST if st.requested(s) else Trigger.FINAL_PART)

    def _due(self, trigger: Trigger) -> Phase:
        st.on_due(self._s, trigger)
        return Phase.SETTLE

    async def _settle(self) -> Phase:
        """Aggregate, archive until verified, purge; back to WAIT when the log changed."""
        s = self._s
        revision = s.revision
        st.take_requests(s)
        rewrite = st.rewrite_taken(s)
        aggregated = await self._aggregate()
        if not aggregated.has_content:
            self._step(LogState.REMOVED if aggregated.removed else LogState.CLEARED)
            st.serve(s)
            return self._settled(revision)
        verdict = await self._ensure_archived(aggregated, revision, rewrite)
        if verdict is Archived.STALE:
            st.requeue(s)
            return Phase.WAIT
        st.serve(s)
        if verdict is Archived.FAILED:
            self._metrics.gave_up()
            self._step(LogState.VERIFY_FAILED)
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
        self._step(LogState.AGGREGATING)
        summary = f"aggregate: merge new parts into content v{self._s.content_version}"
        result = await self._locked(
            self._activities.aggregate(from_archive=self._s.purged, summary=summary)
        )
        st.on_aggregated(self._s, result)
        st.on_milestone(self._s, "aggregated", _now_ms())
        self._metrics.phase(Milestone.AGGREGATED)
        st.on_completeness(self._s, result)
        self._shown.flag_incomplete(self._s)
        return result

    async def _ensure_archived(
        self, aggregated: AggregateResult, revision: int, rewrite: bool
    ) -> Archived:
        """Archive and verify, again after a doubling backoff on a mismatch, up to the limit."""
        s, most = self._s, self._t.max_archive_attempts
        if not rewrite and s.verified_version == aggregated.content_version:
            return Archived.VERIFIED
        while not st.gave_up(s, most):
            if await self._archive_once(rewrite or s.mismatches > 0):
                return Archived.VERIFIED
            if s.revision != revision:
                return Archived.STALE
            if not st.gave_up(s, most):
                await self._backoff()
        return Archived.FAILED

    async def _archive_once(self, rewrite: bool) -> bool:
        """One archive and read-back; False (a mismatch recorded) when it does not match."""
        s = self._s
        st.on_archive_started(s)
        self._metrics.attempted()
        attempt = s.stats.archive_attempts
        try:
            archived = await self._upload(rewrite, attempt)
        except FAILED as err:  # refused for good, e.g. S3 holds a newer version
            self._mismatch(str(_cause(err)))
            return False
        st.on_milestone(s, "archived", _now_ms())
        self._metrics.phase(Milestone.ARCHIVED)
        self._step(LogState.VERIFYING)
        summary = f"verify #{attempt}: read back, compare size and SHA-256"
        verified = await self._locked(self._activities.verify(archived, summary))
        if not verified.verified:
            self._mismatch(f"archive #{attempt}: {verified.reason}")
            return False
        st.on_verified(s, archived.content_version, _now_ms(), self._t.purge_delay_ms)
        st.on_milestone(s, "verified", _now_ms())
        self._metrics.phase(Milestone.VERIFIED)
        return True

    async def _upload(self, rewrite: bool, attempt: int) -> ArchiveResult:
        """The first attempt in this workflow task; when it fails, on as an activity that
        retries, heartbeats and shows its attempts and error. A refusal ends it either way."""
        summary = f"archive #{attempt}: upload v{self._s.content_version} to S3"
        self._step(LogState.UPLOADING)
        async with self._lock:
            try:
                return await self._activities.upload(rewrite=rewrite, summary=summary)
            except FAILED as err:
                if _refused(err):
                    raise
                st.on_upload_failed(self._s, str(_cause(err)))
            self._step(LogState.ARCHIVING)
            return await self._activities.archive(rewrite=rewrite, summary=f"{summary}, again")

    def _mismatch(self, error: str) -> None:
        st.on_mismatch(self._s, error)
        self._metrics.verify_failure()

    async def _backoff(self) -> None:
        """Wait before archiving again: the backoff doubles with every mismatch."""
        self._step(LogState.REARCHIVE_BACKOFF)
        backoff = self._t.rearchive_backoff_ms * 2 ** (self._s.mismatches - 1)
        until = _now_ms() + backoff
        summary = f"re-archive backoff #{self._s.mismatches} ({backoff} ms)"
        await self._wait(lambda: False, summary, lambda: until)

    async def _purge_delay(self, revision: int) -> bool:
        """Wait LOGS_PURGE_DELAY_S; False when a part or a request arrived meanwhile."""
        if self._t.purge_delay_ms <= 0:
            return True
        self._step(LogState.ARCHIVED)
        due = st.purge_due_ms(self._s, _now_ms(), self._t.purge_delay_ms)
        wake = await self._wait(lambda: st.changed(self._s, revision), "purge delay", lambda: due)
        return wake is Wake.DEADLINE

    async def _purge(self) -> bool:
        """Purge the verified version; False (archive again) when the database disagrees."""
        self._step(LogState.PURGING)
        version = self._s.verified_version or 0
        summary = f"purge v{version}: NULL the content, delete the archived parts"
        result = await self._locked(self._activities.purge(version, summary))
        st.on_purged(self._s, result)
        if not result.purged:
            self._metrics.verify_failure()
            return False
        st.on_milestone(self._s, "purged", _now_ms())
        self._metrics.purged()
        self._step(LogState.DONE)
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
        """Done: close at once, unless parts are missing (their grace window).

        A later part starts a new run, which reads the row first (window 3); parts stored
        without a signal after a forced round are the sweeper's (workflows/reconcile.py)."""
        s = self._s
        if st.has_work(s):
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

    def _step(self, step: LogState) -> None:
        st.on_step(self._s, step)
        self._shown.show(self._s)

    async def _locked(self, call: Awaitable[R]) -> R:
        """`call` (an activity) while no other activity works on the log."""
        async with self._lock:
            return await call

    # --- the one wait -----------------------------------------------------------------------

    async def _wait(
        self, ready: Callable[[], bool], summary: str, deadline: Callable[[], int] | None = None
    ) -> Wake:
        """Until `ready()` or the deadline, which a part may move; continues as new when due.

        A deadline's first pass always arms its timer (at least 1 ms): right after a local
        activity `workflow.now()` differs between a run and its replay, so whether a timer
        exists must not depend on the clock. The timer re-arms only when it fires.
        """
        first = True
        while not ready():
            if self._continue_due():
                await self._continue_as_new(ready)
                continue
            timeout = None
            if deadline is not None:
                remaining = deadline() - _now_ms()
                if remaining <= 0 and not first:
                    return Wake.DEADLINE
                timeout, first = timedelta(milliseconds=max(remaining, 1)), False
            with contextlib.suppress(TimeoutError):
                await workflow.wait_condition(
                    lambda: ready() or self._continue_due(),
                    timeout=timeout,
                    timeout_summary=summary,
                )
        return Wake.READY

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
