"""One log kept in memory, behind activities named as the real ones (no PostgreSQL, no S3).

For the time-skipping tests of LogWorkflow's paths: the workflow calls its activities by
name, so these stand in for them the way temporalio's samples test workflows. Each method
keeps the real activity's contract (what activities/models.py says), not its I/O. A hook
runs after a named activity, where a test stores and signals a late part.
"""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from temporalio import activity

from activities.models import (
    AGGREGATE_LOG,
    ARCHIVE_LOG,
    INSPECT_LOG,
    PURGE_LOG,
    VERIFY_ARCHIVE,
    AggregateInput,
    AggregateResult,
    ArchiveInput,
    ArchiveResult,
    InspectInput,
    LogSnapshot,
    PurgeInput,
    PurgeResult,
    VerifyInput,
    VerifyResult,
)

Hook = Callable[[], Awaitable[None]]


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


@dataclass
class FakeLog:
    """Stored parts, the merged content, the archive, and what each activity did."""

    stored: dict[int, str] = field(default_factory=dict)  # parts not merged yet
    merged: dict[int, str] = field(default_factory=dict)
    final_number: int | None = None
    version: int = 0
    archive: tuple[int, str] | None = None  # (content version, text)
    verified_version: int | None = None
    purged: bool = False
    newest_part_age_ms: int = 0
    corrupt_archives: int = 0  # the next this many uploads land damaged
    calls: list[str] = field(default_factory=list)
    hooks: dict[str, list[Hook]] = field(default_factory=dict)

    def store(self, parts: dict[int, str], final: int | None = None) -> None:
        """As the ingest stores parts (a final number only grows)."""
        self.stored.update(parts)
        if final is not None:
            self.final_number = max(final, self.final_number or final)

    def after(self, name: str, hook: Hook) -> None:
        """Run `hook` once, after the next call of activity `name`."""
        self.hooks.setdefault(name, []).append(hook)

    def text(self) -> str:
        return "".join(self.merged[n] for n in sorted(self.merged))

    def activities(self) -> list[Callable[..., Any]]:
        return [self.inspect_log, self.aggregate_log, self.archive_log, self.verify, self.purge]

    async def _done(self, name: str) -> None:
        self.calls.append(name)
        hooks = self.hooks.pop(name, [])
        for hook in hooks:
            await hook()

    @activity.defn(name=INSPECT_LOG.name)
    async def inspect_log(self, inp: InspectInput) -> LogSnapshot:
        await self._done(INSPECT_LOG.name)
        return LogSnapshot(
            1,
            final_number=self.final_number,
            newest_part_age_ms=self.newest_part_age_ms if self.stored else None,
            pending_parts=len(self.stored),
            content_version=self.version,
            verified_version=self.verified_version,
            purged=self.purged,
        )

    @activity.defn(name=AGGREGATE_LOG.name)
    async def aggregate_log(self, inp: AggregateInput) -> AggregateResult:
        fresh = {n: t for n, t in self.stored.items() if n not in self.merged}
        self.merged.update(fresh)
        self.stored = {}
        if fresh:
            self.version += 1
            self.purged = False
        last = self.final_number if self.final_number is not None else max(self.merged, default=0)
        missing = [[n, n] for n in range(last) if n not in self.merged]
        await self._done(AGGREGATE_LOG.name)
        return AggregateResult(
            1,
            content_version=self.version,
            has_content=True,
            size=len(self.text()),
            parts=len(self.merged),
            merged=len(fresh),
            verified_version=self.verified_version,
            missing=missing,
        )

    @activity.defn(name=ARCHIVE_LOG.name)
    async def archive_log(self, inp: ArchiveInput) -> ArchiveResult:
        text = self.text()
        written = text
        if self.corrupt_archives > 0:
            self.corrupt_archives -= 1
            written = text.swapcase() or "?"
        self.archive = (self.version, written)
        await self._done(ARCHIVE_LOG.name)
        return ArchiveResult(self.version, len(text), _sha(text), uploaded=True)

    @activity.defn(name=VERIFY_ARCHIVE.name)
    async def verify(self, inp: VerifyInput) -> VerifyResult:
        await self._done(VERIFY_ARCHIVE.name)
        if self.archive is None:
            return VerifyResult(False, reason="the object is missing")
        version, text = self.archive
        if (version, _sha(text)) != (inp.content_version, inp.sha256):
            return VerifyResult(False, len(text), _sha(text), "SHA-256 differs")
        self.verified_version = version
        return VerifyResult(True, len(text), _sha(text))

    @activity.defn(name=PURGE_LOG.name)
    async def purge(self, inp: PurgeInput) -> PurgeResult:
        await self._done(PURGE_LOG.name)
        if inp.content_version != self.version or self.verified_version != self.version:
            return PurgeResult(False, reason="the log changed")
        self.purged = True
        return PurgeResult(True, parts_deleted=len(self.merged))
