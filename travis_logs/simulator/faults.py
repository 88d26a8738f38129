"""Fault injection: what brokers and workers do to a job's stream in real life, on request."""

from __future__ import annotations

import random
from dataclasses import dataclass, replace

from travis_logs.simulator.manifest import FaultCounts
from travis_logs.simulator.messages import Message, PartMessage, poison_messages

DUPLICATE_REACH = 5  # a re-delivery arrives within this many messages of the original


@dataclass(frozen=True)
class FaultOptions:
    """Which faults to inject per job; all off by default."""

    duplicates: float = 0.0  # share of messages sent twice (at-least-once delivery)
    reorder_window: int = 0  # shuffle messages within windows of this size (parallel consumers)
    late_parts: int = 0  # content parts held back until after the final part
    late_delay_s: float = 0.0  # how long after the final part the late ones arrive
    poison: int = 0  # messages that are not log parts

    @property
    def any(self) -> bool:
        return bool(self.duplicates or self.reorder_window > 1 or self.late_parts or self.poison)


@dataclass(frozen=True)
class Scheduled:
    """A message and when to send it, in seconds after the job's first message."""

    at_s: float
    message: Message


def inject(
    schedule: list[Scheduled], rng: random.Random, options: FaultOptions
) -> tuple[list[Scheduled], FaultCounts]:
    """Apply the requested faults to one job's in-order schedule."""
    on_time, late = _hold_back(schedule, rng, options)
    on_time, reordered = _reorder(on_time, rng, options.reorder_window)
    entries, duplicates = _duplicate(on_time + late, rng, options.duplicates)
    entries, poison = _poison(entries, rng, options.poison)
    return entries, FaultCounts(duplicates, reordered, len(late), poison)


def _hold_back(
    schedule: list[Scheduled], rng: random.Random, options: FaultOptions
) -> tuple[list[Scheduled], list[Scheduled]]:
    """Pick content parts to send after the final part, `late_delay_s` after it."""
    content = [
        i
        for i, e in enumerate(schedule)
        if isinstance(e.message, PartMessage) and not e.message.part.final
    ]
    chosen = set(rng.sample(content, min(options.late_parts, len(content))))
    on_time = [e for i, e in enumerate(schedule) if i not in chosen]
    end = max((e.at_s for e in on_time), default=0.0) + options.late_delay_s
    late = [replace(schedule[i], at_s=end) for i in sorted(chosen)]
    return on_time, late


def _reorder(
    entries: list[Scheduled], rng: random.Random, window: int
) -> tuple[list[Scheduled], int]:
    """Shuffle messages within each window; send times stay where they were."""
    if window < 2:
        return entries, 0
    result: list[Scheduled] = []
    moved = 0
    for start in range(0, len(entries), window):
        block = entries[start : start + window]
        messages = [e.message for e in block]
        rng.shuffle(messages)
        moved += sum(m is not e.message for m, e in zip(messages, block, strict=True))
        result.extend(Scheduled(e.at_s, m) for e, m in zip(block, messages, strict=True))
    return result, moved


def _duplicate(
    entries: list[Scheduled], rng: random.Random, share: float
) -> tuple[list[Scheduled], int]:
    """Send some messages again, a few messages later, as a redelivery would."""
    keyed = [((i, 0), e) for i, e in enumerate(entries)]
    copies = [
        ((i + rng.randint(1, DUPLICATE_REACH), 1), e)
        for i, e in enumerate(entries)
        if rng.random() < share
    ]
    merged = sorted(keyed + copies, key=lambda item: item[0])
    return [e for _, e in merged], len(copies)


def _poison(
    entries: list[Scheduled], rng: random.Random, count: int
) -> tuple[list[Scheduled], int]:
    """Slip messages that are not log parts in between the real ones."""
    parts = [e.message for e in entries if isinstance(e.message, PartMessage)]
    if count == 0 or not parts:
        return entries, 0
    numbers = sorted({m.part.number for m in parts})
    result = list(entries)
    for message in poison_messages(parts[0].job_id, numbers, rng, count):
        index = rng.randint(0, len(result))
        at_s = result[index - 1].at_s if index else 0.0
        result.insert(index, Scheduled(at_s, message))
    return result, count
