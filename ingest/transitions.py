"""Which newly stored parts a log's workflow must hear of: pure rules, no I/O.

Only what the insert reports as new is a transition: the first part of a job (its `logs`
row was created by this batch, or held no parts and no final part: emptied by a purge
after a forced aggregation, or by PUT /logs for a restarted job), a final part, and any
part stored once the log has a final part. So a job costs its workflow 2-3 signals
whatever its length, and a redelivered duplicate none. The first part's signal `opens` the
log: its run starts asleep, and the final part's signal wakes it (workflows/client.py).
When the batch `created` the row, the signal says so, and the run skips reading the row.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from workflows.models import PartRef, PartsSignal


class StoredRow(Protocol):
    """A row the insert returned (`log_id`, `number`, `final`, `size`): an asyncpg Record."""

    def __getitem__(self, key: str, /) -> Any: ...


@dataclass(frozen=True, slots=True)
class KnownLog:
    """A job's `logs` row as the batch found (or created) it, before its parts were stored."""

    id: int
    job_id: int
    final_number: int | None
    # No part stored before this batch: its first new part starts the log's stream.
    empty: bool
    # Literal strings of the job's redactions: masked in its parts before they are stored.
    secrets: tuple[str, ...] = ()
    # This batch created the row (LogWorkflow then skips its first read of it).
    created: bool = False


def transitions(rows: Sequence[StoredRow], logs: dict[int, KnownLog]) -> list[PartsSignal]:
    """One signal per job whose new rows include a transition, carrying only those refs.

    `logs` maps each row's `log_id` to its log.
    """
    new_by_log: dict[int, list[StoredRow]] = {}
    for r in rows:
        new_by_log.setdefault(r["log_id"], []).append(r)
    signals = []
    for log_id, new in new_by_log.items():
        lg = logs[log_id]
        refs = _transition_refs(lg, sorted(new, key=lambda r: r["number"]))
        if refs:
            opens = _opens(lg, refs)
            signals.append(PartsSignal(lg.job_id, refs, opens=opens, created=lg.created))
    return signals


def _opens(lg: KnownLog, refs: list[PartRef]) -> bool:
    """The first part of a log whose final part is not known yet: nothing to do until it is."""
    return lg.empty and lg.final_number is None and not any(r.final for r in refs)


def _transition_refs(lg: KnownLog, new: list[StoredRow]) -> list[PartRef]:
    if lg.final_number is not None:
        return [_ref(r) for r in new]  # every part after the final one is late news
    finals = [r["number"] for r in new if r["final"]]
    # Parts numbered after a final part of the same batch are late too.
    after = min(finals) if finals else None
    picked = [r for r in new if r["final"] or (after is not None and r["number"] > after)]
    if lg.empty and (not picked or picked[0] is not new[0]):
        picked.insert(0, new[0])  # the first part starts the workflow
    return [_ref(r) for r in picked]


def _ref(r: StoredRow) -> PartRef:
    return PartRef(number=r["number"], size=r["size"] or 0, final=r["final"])
