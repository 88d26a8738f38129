"""Which Pusher channels somebody watches: webhook state in PostgreSQL, cached for ingest."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import timedelta
from typing import Any

import asyncpg

log = logging.getLogger(__name__)

# Pusher sends channel_occupied once; a viewer who stays longer than this stops getting
# live parts, as in the original (reference §3 "Staleness").
OCCUPANCY_TTL = timedelta(hours=6)

OCCUPIED_EVENT = "channel_occupied"
VACATED_EVENT = "channel_vacated"

_MARK_OCCUPIED = """
INSERT INTO pusher_channels (channel, expires_at) VALUES ($1, now() + $2::interval)
ON CONFLICT (channel) DO UPDATE SET expires_at = EXCLUDED.expires_at
"""
_SWEEP = "DELETE FROM pusher_channels WHERE expires_at < now()"
_OCCUPIED = "SELECT channel FROM pusher_channels WHERE channel = ANY($1) AND expires_at > now()"


class OccupancyStore:
    """Channel occupancy rows with a 6 h expiry (the original's Redis SETEX / DEL)."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def mark(self, channel: str, occupied: bool) -> None:
        """Record a channel_occupied (True) or channel_vacated (False) webhook event."""
        async with self._pool.acquire() as conn, conn.transaction():
            if occupied:
                await conn.execute(_MARK_OCCUPIED, channel, OCCUPANCY_TTL)
            else:
                await conn.execute("DELETE FROM pusher_channels WHERE channel = $1", channel)
            await conn.execute(_SWEEP)

    async def apply(self, events: Iterable[Mapping[str, Any]]) -> int:
        """Apply the events of a validated webhook in order; returns how many were applied."""
        applied = 0
        for event in events:
            name, channel = event.get("name"), event.get("channel")
            if name in (OCCUPIED_EVENT, VACATED_EVENT) and isinstance(channel, str):
                await self.mark(channel, name == OCCUPIED_EVENT)
                applied += 1
        return applied

    async def occupied(self, channels: Sequence[str]) -> set[str]:
        """The subset of `channels` that is occupied now, in one query."""
        rows = await self._pool.fetch(_OCCUPIED, list(channels))
        return {row["channel"] for row in rows}


class OccupancyCache:
    """Answers from memory for `ttl_s` so ingest queries once per channel, not per part.

    Every read also takes, ahead of time, the channels asked about within the last TTL
    whose answers expire within half a TTL: busy channels' answers then expire together and
    are read again in one query, instead of one small query each as they expire one by one
    (with parts trickling in for 250 jobs, the largest item of the ingest's profile).
    A channel already being read is not read again meanwhile: its askers wait for that read.
    """

    # Beyond this many entries, expired ones are swept (a busy ingest sees many jobs).
    _SWEEP_AT = 10_000

    def __init__(
        self,
        store: OccupancyStore,
        ttl_s: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._store = store
        self._ttl_s = ttl_s
        self._clock = clock
        self._known: dict[str, tuple[float, bool]] = {}
        self._expired: set[str] = set()
        # When each channel was last asked about: busy ones are read again ahead of expiry.
        self._asked: dict[str, float] = {}
        # The read under way of each channel being read.
        self._reads: dict[str, asyncio.Task[None]] = {}
        self._refresh: asyncio.Task[None] | None = None

    def known_vacant(self, channel: str) -> bool:
        """True when the last answer says nobody watches `channel`; never waits for a query.

        An expired answer still counts, and is read again in the background (one query for
        all channels that expired meanwhile): a per-part lookup would cost the ingest more
        than the part. A viewer that has just subscribed misses at most the parts of that
        one round trip, and the viewer fetches those as soon as the next part shows the gap.
        """
        expires, occupied = self._known.get(channel, (0.0, True))
        now = self._asked[channel] = self._clock()
        if expires <= now and not occupied and channel not in self._reads:
            self._expired.add(channel)
            if self._refresh is None:
                self._refresh = asyncio.create_task(self._read_expired())
        return not occupied

    async def _read_expired(self) -> None:
        try:
            while self._expired:
                channels, self._expired = self._expired, set()
                await self.occupied(channels)
        except Exception as err:  # the old answers stand until the next attempt
            log.warning("occupancy refresh failed: %r", err)
        finally:
            self._refresh = None

    async def occupied(self, channels: Iterable[str]) -> set[str]:
        """The subset of `channels` that is occupied, querying only for stale entries."""
        now = self._clock()
        wanted = set(channels)
        self._asked.update(dict.fromkeys(wanted, now))
        stale = [c for c in wanted if self._expires(c) <= now]
        if stale:
            reads = {self._reads[c] for c in stale if c in self._reads}
            unread = {c for c in stale if c not in self._reads}
            if unread:
                reads.add(self._start_read(unread, now))
            # Shielded: an asker that is cancelled must not cancel a read others wait for.
            await asyncio.shield(asyncio.gather(*reads))
        # An answer another read swept meanwhile (it was about to expire) counts as watched.
        return {c for c in wanted if self._known.get(c, (0.0, True))[1]}

    def _start_read(self, channels: set[str], now: float) -> asyncio.Task[None]:
        recent, ahead = now - self._ttl_s, now + self._ttl_s / 2
        self._asked = {c: t for c, t in self._asked.items() if t > recent}
        channels |= {c for c in self._asked if c not in self._reads and self._expires(c) <= ahead}
        task = asyncio.create_task(self._read(channels, now))
        self._reads.update(dict.fromkeys(channels, task))
        return task

    async def _read(self, channels: set[str], now: float) -> None:
        try:
            found = await self._store.occupied(list(channels))
            if len(self._known) > self._SWEEP_AT:
                self._known = {c: v for c, v in self._known.items() if v[0] > now}
            for channel in channels:
                self._known[channel] = (now + self._ttl_s, channel in found)
        finally:
            for channel in channels:
                del self._reads[channel]

    def _expires(self, channel: str) -> float:
        return self._known.get(channel, (0.0, False))[0]
