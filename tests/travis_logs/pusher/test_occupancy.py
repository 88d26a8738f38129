"""Channel occupancy in PostgreSQL (6 h expiry) and the cache ingest reads it through."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator, Sequence
from datetime import timedelta

import asyncpg

from travis_logs.pusher.occupancy import OccupancyCache, OccupancyStore


async def test_occupy_and_vacate_flip_the_stored_state(pool: asyncpg.Pool, job_id: int) -> None:
    """channel_occupied makes a channel watched, channel_vacated makes it unwatched."""
    store, channel = OccupancyStore(pool), f"job-{job_id}"
    assert channel not in await store.occupied([channel])
    await store.mark(channel, True)
    assert channel in await store.occupied([channel])
    await store.mark(channel, False)
    assert channel not in await store.occupied([channel])


async def test_occupancy_expires_after_six_hours(pool: asyncpg.Pool, job_id: int) -> None:
    """An occupied mark lasts 6 h, like the original's SETEX 21600, and then lapses."""
    store, channel = OccupancyStore(pool), f"private-job-{job_id}"
    await store.mark(channel, True)
    left = await pool.fetchval(
        "SELECT expires_at - now() FROM pusher_channels WHERE channel = $1", channel
    )
    assert timedelta(hours=5, minutes=59) < left <= timedelta(hours=6)
    await pool.execute(
        "UPDATE pusher_channels SET expires_at = now() - interval '1 s' WHERE channel = $1",
        channel,
    )
    assert channel not in await store.occupied([channel])


async def test_apply_takes_existence_events_and_ignores_others(
    pool: asyncpg.Pool, new_job_id: Iterator[int]
) -> None:
    """A webhook's events apply in order; unknown names and malformed events are skipped."""
    a, b = (f"job-{next(new_job_id)}" for _ in range(2))
    store = OccupancyStore(pool)
    applied = await store.apply(
        [
            {"name": "channel_occupied", "channel": a},
            {"name": "channel_occupied", "channel": b},
            {"name": "channel_vacated", "channel": b},
            {"name": "member_added", "channel": a},
            {"name": "channel_occupied"},
        ]
    )
    assert applied == 3
    assert await store.occupied([a, b]) == {a}


class _CountingStore(OccupancyStore):
    """The real store, counting how often it is asked."""

    queries = 0

    async def occupied(self, channels: Sequence[str]) -> set[str]:
        self.queries += 1
        return await super().occupied(channels)


async def test_cache_answers_from_memory_until_its_ttl_passes(
    pool: asyncpg.Pool, new_job_id: Iterator[int]
) -> None:
    """Within the TTL the cache does not query; after it, a change in the store shows."""
    now = [100.0]
    store = _CountingStore(pool)
    cache = OccupancyCache(store, ttl_s=2.0, clock=lambda: now[0])
    channels = [f"job-{next(new_job_id)}" for _ in range(50)]
    await store.mark(channels[0], True)
    assert await cache.occupied(channels) == {channels[0]}
    await store.mark(channels[0], False)
    await store.mark(channels[1], True)
    now[0] += 1.0
    assert await cache.occupied(channels) == {channels[0]}
    assert store.queries == 1  # fifty channels, one query
    now[0] += 1.5
    assert await cache.occupied(channels) == {channels[1]}
    assert channels[1] in await cache.occupied([channels[1]])
    assert store.queries == 2


async def test_busy_channels_are_read_again_together(
    pool: asyncpg.Pool, new_job_id: Iterator[int]
) -> None:
    """Channels first seen at different times and asked about all the time are read again
    a few queries a TTL, not one query each as their answers expire one by one."""
    now = [100.0]
    store = _CountingStore(pool)
    cache = OccupancyCache(store, ttl_s=1.0, clock=lambda: now[0])
    channels = [f"job-{next(new_job_id)}" for _ in range(100)]
    for channel in channels:  # jobs starting 10 ms apart
        await cache.occupied([channel])
        now[0] += 0.01
    first_reads = store.queries
    await store.mark(channels[7], True)
    for step in range(500):  # 5 s of parts: each channel's every 100 ms
        cache.known_vacant(channels[step % 100])  # may read in the background
        await cache.occupied(channels[step % 10 :: 10])
        await asyncio.sleep(0)
        now[0] += 0.01
    assert first_reads == 100
    assert store.queries - first_reads <= 50  # 5 TTLs; a query per channel as each expires: 900
    assert await cache.occupied(channels) == {channels[7]}


async def test_a_channel_being_read_is_not_read_again_meanwhile(
    pool: asyncpg.Pool, new_job_id: Iterator[int]
) -> None:
    """Senders asking at once about the same new channels share one query and its answer."""
    store = _CountingStore(pool)
    cache = OccupancyCache(store, ttl_s=1.0)
    channels = [f"job-{next(new_job_id)}" for _ in range(3)]
    await store.mark(channels[1], True)
    answers = await asyncio.gather(*(cache.occupied(channels[i:]) for i in range(3)))
    assert answers == [{channels[1]}, {channels[1]}, set()]
    assert store.queries == 1
