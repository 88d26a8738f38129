"""The capacity bench's load: C jobs at every moment, starting and ending spread out."""

from __future__ import annotations

from bench.capacity import PART_S, RAMP_S, plan_slots

C, RUN_S, JOB_S = 300, 120.0, 60.0


def ends(end_together: bool = False) -> list[float]:
    """When each job sends its final part."""
    slots = plan_slots(C, RUN_S, JOB_S, 1, 50, end_together=end_together)
    return [start + (parts - 1) * PART_S for s in slots for _, start, parts in s.jobs]


def test_the_last_jobs_end_as_spread_out_as_the_others() -> None:
    last_second = [t for t in ends() if RUN_S - 1 <= t < RUN_S]
    # Steady: 300 jobs of 60 s end at 5 a second; cut at the level's end, all 300 would.
    assert len(last_second) <= 2 * C / JOB_S
    assert max(ends()) > RUN_S + JOB_S / 2


def test_end_together_is_the_burst_of_every_slot_s_final_part() -> None:
    assert sum(RUN_S - 1 <= t <= RUN_S for t in ends(end_together=True)) >= C


def test_slots_start_one_after_the_other_and_then_keep_c_jobs_streaming() -> None:
    slots = plan_slots(C, RUN_S, JOB_S, 1, 50)
    firsts = sorted(s.jobs[0][1] for s in slots)
    assert firsts[0] == 0 and firsts[-1] < RAMP_S
    assert len(set(firsts)) == C
    for s in slots:  # each job follows the one before without a gap (a job has 2 parts or more)
        for (_, start, parts), (_, following, _) in zip(s.jobs, s.jobs[1:], strict=False):
            assert following - (start + parts * PART_S) <= PART_S
