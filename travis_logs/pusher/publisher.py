"""Live log parts to browsers over Pusher Channels (channel `job-<id>`, event `job:log`).

Publishing never blocks or fails ingest: `offer` only queues the events; a few sender
tasks send them with `trigger_batch` (up to 10 events of any channels a call), signed by
the official `pusher` package and sent over one kept-alive aiohttp session (`transport`).
A part that cannot be pushed is lost for the live view only (the database keeps it), and
every such loss is counted in prometheus counters.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any

from travis_logs.errors import ConfigError
from travis_logs.parts import LogPart
from travis_logs.pusher.metrics import ERRORS, EVENTS, REQUEST_SECONDS, RateLimitedLog
from travis_logs.pusher.occupancy import OccupancyCache
from travis_logs.pusher.transport import AiohttpTransport, Event, Transport, pusher_client
from travis_logs.settings import Settings

log = logging.getLogger(__name__)

EVENT_NAME = "job:log"
BATCH_SIZE = 10  # Pusher's limit for one batch_events call
# Pusher refuses events whose data exceeds 10 KB; one would fail its whole batch.
MAX_DATA_BYTES = 10_240
# Queued events a sender looks through for a chunk, at most.
_SCAN = 1000
# Counted once a part or more (the label lookup costs more than the part's queueing).
_SKIPPED = EVENTS.labels("skipped")
_DROPPED = EVENTS.labels("dropped")


def channel_name(job_id: int, private: bool) -> str:
    return f"private-job-{job_id}" if private else f"job-{job_id}"


def payload_json(part: LogPart) -> str:
    """The exact string travis-web expects: keys id, _log, number, final; UTF-8 kept."""
    payload = {"id": part.job_id, "_log": part.content, "number": part.number, "final": part.final}
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":"))


# A part waiting for Pusher, with its channel and the loop time it was queued at;
# serialised only once somebody watches it.
_Pending = tuple[str, LogPart, float]


class _Backlog:
    """Parts waiting for Pusher, handed out oldest first in chunks of up to 10.

    A channel is never in two chunks under way at once, so its parts reach Pusher in order
    even though several calls run in parallel. One sender at a time forms a chunk: it waits
    up to `linger_s` after the oldest part was queued for the chunk to fill, so that parts
    trickling in for many channels share one call instead of paying one each. Under load
    chunks are full at once (parts pile up while the senders wait on Pusher).
    """

    def __init__(self, limit: int, linger_s: float) -> None:
        self._pending: deque[_Pending] = deque()
        self._in_flight: set[str] = set()
        self._changed = asyncio.Event()  # something was queued or a chunk was done
        self._turn = asyncio.Lock()
        self._linger_s = linger_s
        self._loop = asyncio.get_running_loop()
        self.limit = limit
        self.held = 0  # queued or under way

    def offer(self, channel: str, part: LogPart) -> bool:
        if self.held >= self.limit:
            return False
        self._pending.append((channel, part, self._loop.time()))
        self.held += 1
        self._changed.set()
        return True

    async def take(self) -> list[_Pending]:
        async with self._turn:
            while True:
                await self._until(lambda: bool(self._pending))
                deadline = self._pending[0][2] + self._linger_s
                await self._until(lambda: len(self._pending) >= BATCH_SIZE, deadline)
                chunk = self._chunk()
                if chunk:
                    return chunk
                # Every queued part is of a channel under way: wait for a chunk to be done.
                self._changed.clear()
                await self._changed.wait()

    def done(self, chunk: list[_Pending]) -> None:
        self._in_flight.difference_update(channel for channel, _, _ in chunk)
        self.held -= len(chunk)
        self._changed.set()

    async def drained(self) -> None:
        await self._until(lambda: self.held == 0)

    async def _until(self, ready: Callable[[], bool], deadline: float | None = None) -> None:
        """Until `ready()`, or the loop time `deadline` passed."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout_at(deadline):
                while not ready():
                    self._changed.clear()
                    await self._changed.wait()

    def _chunk(self) -> list[_Pending]:
        chunk: list[_Pending] = []
        skipped: list[_Pending] = []
        # Bounded, so that a large backlog behind busy channels costs little per call.
        for _ in range(min(len(self._pending), _SCAN)):
            if len(chunk) == BATCH_SIZE:
                break
            item = self._pending.popleft()
            (skipped if item[0] in self._in_flight else chunk).append(item)
        self._pending.extendleft(reversed(skipped))
        self._in_flight.update(channel for channel, _, _ in chunk)
        return chunk


class PusherPublisher:
    """Queues parts for Pusher and sends them from `lanes` background tasks; never raises."""

    def __init__(
        self,
        transport: Transport,
        *,
        lanes: int = 1,
        private: bool = False,
        occupancy: OccupancyCache | None = None,
        queue_size: int = 10_000,
        linger_s: float = 0.0,
    ) -> None:
        self._transport = transport
        self._lanes = lanes
        self._queue_size = queue_size
        self._linger_s = linger_s
        self._backlog: _Backlog | None = None
        self._private = private
        self._occupancy = occupancy
        self._tasks: list[asyncio.Task[None]] = []
        self._warn = RateLimitedLog(log)

    def offer(self, parts: Sequence[LogPart]) -> None:
        """Queue `parts` for their channels; never awaits, never raises.

        Parts of channels the occupancy cache knows nobody watches (most, in production)
        are dropped here, before any serialising or queueing: that is most of what the
        existence check saves the ingest.
        """
        try:
            backlog = self._start()
            vacant = self._occupancy.known_vacant if self._occupancy is not None else None
            skipped = 0
            for part in parts:
                channel = channel_name(part.job_id, self._private)
                if vacant is not None and vacant(channel):
                    skipped += 1
                elif not backlog.offer(channel, part):
                    _DROPPED.inc()
                    self._warn.warning(
                        "Pusher queue full (%d parts): dropping live parts", backlog.limit
                    )
            if skipped:
                _SKIPPED.inc(skipped)
        except Exception:  # a bug here must not fail the ingest that called us
            log.exception("Pusher publish failed")
            ERRORS.labels("publish").inc()

    async def publish(self, parts: Sequence[LogPart]) -> None:
        """`offer`, for callers in a coroutine; returns at once."""
        self.offer(parts)

    async def flush(self) -> None:
        """Wait until every queued event was sent, skipped or counted as failed."""
        if self._backlog is not None:
            await self._backlog.drained()

    async def aclose(self, timeout: float = 5.0) -> None:
        """Send what is queued (for up to `timeout` seconds), then stop the senders."""
        if self._tasks:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.flush(), timeout)
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []
        await self._transport.aclose()

    def _start(self) -> _Backlog:
        """The backlog and its senders, made in the running loop by the first call."""
        if self._backlog is None:
            self._backlog = _Backlog(self._queue_size, self._linger_s)
            self._tasks = [
                asyncio.create_task(self._run(self._backlog)) for _ in range(self._lanes)
            ]
        return self._backlog

    async def _run(self, backlog: _Backlog) -> None:
        while True:
            chunk = await backlog.take()
            try:
                watched = [e for e in map(self._event, await self._watched(chunk)) if e]
                if watched:
                    await self._send(watched)
            finally:
                backlog.done(chunk)

    async def _watched(self, chunk: list[_Pending]) -> list[_Pending]:
        """The parts whose channel somebody watches (all of them without the check)."""
        if self._occupancy is None:
            return chunk
        try:
            occupied = await self._occupancy.occupied({channel for channel, _, _ in chunk})
        except Exception as err:  # without the database, pushing beats going dark
            ERRORS.labels(f"occupancy_{type(err).__name__}").inc()
            self._warn.warning("occupancy lookup failed, pushing anyway: %r", err)
            return chunk
        kept = [item for item in chunk if item[0] in occupied]
        _SKIPPED.inc(len(chunk) - len(kept))
        return kept

    def _event(self, item: _Pending) -> Event | None:
        """The Pusher event of a part; None (counted) when it exceeds Pusher's 10 KB."""
        channel, part, _ = item
        data = payload_json(part)
        # At most 4 UTF-8 bytes a character: short strings need no encoding to be measured.
        if len(data) > MAX_DATA_BYTES // 4 and len(data.encode()) > MAX_DATA_BYTES:
            EVENTS.labels("too_large").inc()
            self._warn.warning(
                "part %d of job %d is too large for Pusher", part.number, part.job_id
            )
            return None
        return {"channel": channel, "name": EVENT_NAME, "data": data}

    async def _send(self, batch: list[Event]) -> None:
        started = time.perf_counter()
        try:
            await self._transport.trigger_batch(batch)
        except Exception as err:  # Pusher errors are counted and logged, never raised
            ERRORS.labels(type(err).__name__).inc()
            EVENTS.labels("failed").inc(len(batch))
            self._warn.warning("Pusher trigger_batch failed: %r", err)
        else:
            EVENTS.labels("sent").inc(len(batch))
        finally:
            REQUEST_SECONDS.observe(time.perf_counter() - started)


def build_publisher(settings: Settings, occupancy: OccupancyCache | None) -> PusherPublisher:
    """The publisher an entry point injects; `occupancy` is required with the existence check."""
    if settings.pusher_existence_check and occupancy is None:
        raise ConfigError("PUSHER_EXISTENCE_CHECK is on but no occupancy cache was given")
    lanes = settings.pusher_concurrency
    return PusherPublisher(
        AiohttpTransport(settings, lanes),
        lanes=lanes,
        private=settings.pusher_private_channels,
        occupancy=occupancy if settings.pusher_existence_check else None,
        queue_size=settings.pusher_queue_size,
        linger_s=settings.pusher_linger_ms / 1000,
    )


def validate_webhook(
    settings: Settings, key: str | None, signature: str | None, body: bytes
) -> list[dict[str, Any]] | None:
    """The events of a genuine Pusher webhook, or None when key, signature or body is bad."""
    if key is None or signature is None:
        return None
    try:
        data = pusher_client(settings).validate_webhook(key, signature, body)
    # The signature is checked before the body is parsed; a signed body can still be nested
    # deeper than json.loads can recurse, and that is a bad webhook, not a crash.
    except (AttributeError, TypeError, ValueError, RecursionError):
        return None
    if not isinstance(data, dict) or not isinstance(data.get("events"), list):
        return None
    return [e for e in data["events"] if isinstance(e, dict)]


def authenticate_channel(settings: Settings, channel: str, socket_id: str) -> dict[str, str]:
    """The `{"auth": "<key>:<signature>"}` answer for pusher-js; ValueError on bad input."""
    auth: dict[str, str] = pusher_client(settings).authenticate(channel, socket_id)
    return auth
