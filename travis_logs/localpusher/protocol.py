"""The WebSocket protocol 7 that pusher-js speaks at /app/<key>."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from typing import Any

from pusher.util import channel_name_re
from starlette.websockets import WebSocket, WebSocketDisconnect

from travis_logs.localpusher.hub import Connection, Hub, frame
from travis_logs.localpusher.signing import AppCredentials, channel_auth_ok

log = logging.getLogger(__name__)

PROTOCOLS = {"5", "6", "7"}
ACTIVITY_TIMEOUT_S = 120
# Close codes of the protocol: 4000-4099 means "do not reconnect", 4100-4199 "back off".
APP_NOT_FOUND, BAD_PROTOCOL, NO_PROTOCOL, OVER_CAPACITY = 4001, 4007, 4008, 4100


def handshake_problem(
    app: AppCredentials, key: str, protocol: str | None
) -> tuple[int, str] | None:
    """The (close code, message) that refuses a new connection, or None to accept it."""
    if key != app.key:
        return APP_NOT_FOUND, f"App key {key} not in this cluster"
    if protocol is None:
        return NO_PROTOCOL, "No protocol version supplied"
    if protocol not in PROTOCOLS:
        return BAD_PROTOCOL, f"Unsupported protocol version {protocol}"
    return None


class SocketSession:
    """Serves one pusher-js connection until it closes, overflows or the server stops."""

    def __init__(self, app: AppCredentials, hub: Hub, queue_size: int) -> None:
        self._app = app
        self._hub = hub
        self._conn = Connection(queue_size)

    async def serve(self, ws: WebSocket) -> None:
        conn = self._conn
        established = {"socket_id": conn.socket_id, "activity_timeout": ACTIVITY_TIMEOUT_S}
        conn.offer(frame("pusher:connection_established", json.dumps(established)))
        tasks = [
            asyncio.create_task(self._read(ws)),
            asyncio.create_task(self._write(ws)),
            asyncio.create_task(conn.overflowed.wait()),
        ]
        try:
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            self._hub.disconnect(conn)
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        if conn.overflowed.is_set():
            log.info("closing %s: it reads slower than events arrive", conn.socket_id)
            # A browser that reads nothing would never take the close frame either.
            with contextlib.suppress(Exception):
                await asyncio.wait_for(ws.close(OVER_CAPACITY, "Over capacity"), 1.0)

    async def _write(self, ws: WebSocket) -> None:
        while True:
            await ws.send_text(await self._conn.outbox.get())

    async def _read(self, ws: WebSocket) -> None:
        with contextlib.suppress(WebSocketDisconnect):
            while True:
                self._handle(await ws.receive_text())

    def _handle(self, text: str) -> None:
        try:
            message = json.loads(text)
            event, data = message["event"], message.get("data")
        except (ValueError, TypeError, KeyError):
            self._error("Malformed message")
            return
        if isinstance(data, str):  # some clients send data as a JSON string
            with contextlib.suppress(ValueError):
                data = json.loads(data)
        if event == "pusher:ping":
            self._conn.offer(frame("pusher:pong", "{}"))
        elif event == "pusher:subscribe":
            self._subscribe(data if isinstance(data, dict) else {})
        elif event == "pusher:unsubscribe" and isinstance(data, dict):
            self._hub.unsubscribe(self._conn, str(data.get("channel")))
        elif event != "pusher:pong":
            self._error(f"Unsupported event {event!r} (client events are not enabled)")

    def _subscribe(self, data: dict[str, Any]) -> None:
        channel = data.get("channel")
        if not isinstance(channel, str) or not channel_name_re.match(channel):
            self._error(f"Invalid channel name {channel!r}")
        elif channel.startswith(("presence-", "private-encrypted-")):
            self._error(f"{channel}: presence and encrypted channels are not supported")
        elif channel.startswith("private-") and not channel_auth_ok(
            self._app, self._conn.socket_id, channel, data.get("auth")
        ):
            self._error(
                f"Invalid signature for {channel}: expected HMAC SHA256 hex digest of "
                f"{self._conn.socket_id}:{channel}"
            )
        else:
            # Queued before joining, so the browser hears "succeeded" before any event.
            self._conn.offer(frame("pusher_internal:subscription_succeeded", "{}", channel))
            self._hub.subscribe(self._conn, channel)

    def _error(self, message: str) -> None:
        self._conn.offer(frame("pusher:error", {"code": None, "message": message}))
