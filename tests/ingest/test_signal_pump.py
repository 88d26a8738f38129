"""The signal pump: batches' signals go out in the background, bounded; no server needed."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import cast

from ingest.outbox import PendingSignal, SignalPump, SignalSender
from workflows.models import PartRef, PartsSignal


class HeldSender:
    """Stands in for SignalSender: each delivery waits until the test lets it through."""

    def __init__(self) -> None:
        self.started: list[list[int]] = []
        self.done: list[list[int]] = []
        self.gate = asyncio.Event()

    async def deliver(self, pending: Sequence[PendingSignal], *, patient: bool = True) -> int:
        jobs = [p.signal.job_id for p in pending]
        self.started.append(jobs)
        await self.gate.wait()
        self.done.append(jobs)
        return len(pending)


def signals(*jobs: int) -> list[PendingSignal]:
    return [PendingSignal((job,), PartsSignal(job, [PartRef(0, 10, False)])) for job in jobs]


def pump(sender: HeldSender, limit: int) -> SignalPump:
    return SignalPump(cast(SignalSender, sender), limit)


async def test_a_batch_does_not_wait_for_the_signals_of_the_one_before() -> None:
    sender = HeldSender()
    p = pump(sender, limit=10)
    await p.send(signals(1, 2))
    await asyncio.wait_for(p.send(signals(3)), 1)  # Temporal has not answered the first
    await asyncio.sleep(0)
    assert sender.started == [[1, 2], [3]]
    assert p.on_way == 3
    sender.gate.set()
    await p.close(timeout=5)
    assert sorted(sender.done) == [[1, 2], [3]]
    assert p.on_way == 0


async def test_past_the_limit_the_next_batch_waits_until_signals_are_accepted() -> None:
    sender = HeldSender()
    p = pump(sender, limit=3)
    await p.send(signals(1, 2))
    third = asyncio.create_task(p.send(signals(3, 4)))
    await asyncio.sleep(0.05)
    assert not third.done()  # 2 on their way + 2 would pass 3: Temporal slow or down
    sender.gate.set()
    await asyncio.wait_for(third, 5)
    await p.close(timeout=5)
    assert sorted(sender.done) == [[1, 2], [3, 4]]


async def test_a_batch_larger_than_the_limit_still_goes_alone() -> None:
    sender = HeldSender()
    p = pump(sender, limit=2)
    await asyncio.wait_for(p.send(signals(1, 2, 3)), 1)
    sender.gate.set()
    await p.close(timeout=5)
    assert sender.done == [[1, 2, 3]]


async def test_close_leaves_what_is_not_accepted_in_time_to_the_outbox() -> None:
    sender = HeldSender()
    p = pump(sender, limit=10)
    await p.send(signals(1))
    await p.close(timeout=0.01)  # never let through: cancelled, its outbox row stays
    assert sender.started == [[1]]
    assert sender.done == []
    assert p.on_way == 0
