"""Channels, their subscribers and fan-out through bounded per-connection queues."""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
from collections.abc import Callable

log = logging.getLogger(__name__)


def frame(event: str, data: object, channel: str | None = None) -> str:
    """One protocol message; UTF-8 kept, as Pusher sends it."""
    message: dict[str, object] = {"event": event, "data": data}
    if channel is not None:
        message["channel"] = channel
    return json.dumps(message, ensure_ascii=False, separators=(",", ":"))


def new_socket_id() -> str:
    # Unguessable, because a channel auth token is bound to the socket id it was made for.
    return f"{secrets.randbelow(10**9)}.{secrets.randbelow(10**9)}"


class Connection:
    """One browser: its socket id, channels and outbox of frames waiting to be written."""

    def __init__(self, queue_size: int) -> None:
        self.socket_id = new_socket_id()
        self.channels: set[str] = set()
        self.outbox: asyncio.Queue[str] = asyncio.Queue(queue_size)
        # Set when the outbox overflowed: the connection is closed, never waited for.
        self.overflowed = asyncio.Event()

    def offer(self, message: str) -> bool:
        """Queue a frame without waiting; a full outbox marks the connection as too slow."""
        try:
            self.outbox.put_nowait(message)
        except asyncio.QueueFull:
            self.overflowed.set()
            return False
        return True


# Called with (channel, occupied) when a channel gains its first or loses its last subscriber.
OccupancyListener = Callable[[str, bool], None]


class Hub:
    """All channels of the app; publishing never waits for any connection."""

    def __init__(self, on_occupancy: OccupancyListener) -> None:
        self._channels: dict[str, dict[str, Connection]] = {}
        self._on_occupancy = on_occupancy
        self.dropped = 0  # frames not queued because a connection was too slow

    def subscribe(self, conn: Connection, channel: str) -> None:
        members = self._channels.setdefault(channel, {})
        if conn.socket_id in members:
            return
        members[conn.socket_id] = conn
        conn.channels.add(channel)
        if len(members) == 1:
            self._on_occupancy(channel, True)

    def unsubscribe(self, conn: Connection, channel: str) -> None:
        members = self._channels.get(channel, {})
        if members.pop(conn.socket_id, None) is None:
            return
        conn.channels.discard(channel)
        if not members:
            del self._channels[channel]
            self._on_occupancy(channel, False)

    def disconnect(self, conn: Connection) -> None:
        for channel in list(conn.channels):
            self.unsubscribe(conn, channel)

    def publish(self, channel: str, event: str, data: str, exclude: str | None = None) -> int:
        """Queue one event for every subscriber but `exclude`; returns how many got it."""
        message = frame(event, data, channel)
        delivered = 0
        for conn in list(self._channels.get(channel, {}).values()):
            if conn.socket_id == exclude:
                continue
            if conn.offer(message):
                delivered += 1
            else:
                self.dropped += 1
        return delivered

    def subscriber_count(self, channel: str) -> int:
        return len(self._channels.get(channel, {}))

    def channel_names(self, prefix: str = "") -> list[str]:
        return sorted(c for c in self._channels if c.startswith(prefix))
