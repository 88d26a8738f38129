"""Consuming the parts queue at the aiormq level, renewed when the robust channel reconnects.

The one place the ingest uses a private API of a dependency (aiormq's `_on_deliver_frame`,
see `Subscription`); `tests/ingest/test_subscription.py` fails when it stops engaging.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Callable, Coroutine
from typing import Any

import aiormq
from aio_pika.abc import AbstractRobustChannel
from aiormq.abc import DeliveredMessage
from pamqp.header import ContentHeader

log = logging.getLogger(__name__)

# Called for each delivery, in the channel's frame reader: it must not block or raise.
DeliveryCallback = Callable[[DeliveredMessage], None]
_FrameHandler = Callable[[aiormq.spec.Basic.Deliver], Coroutine[Any, Any, None]]


class Subscription:
    """A consumer of `queue` on the robust channel's current connection, renewed on reconnect.

    It consumes at the aiormq level: aio-pika's `Queue.consume` wraps every delivery in an
    IncomingMessage and a second task, which measured 10-25 us of the ~110 us of CPU a part
    costs the ingest on this machine. The robust channel still reconnects and restores the
    QoS and the declarations; this class then consumes again.

    aiormq itself runs each delivery's callback in a task of its own (about a tenth of the
    ingest's CPU, profiled under bench/ingest.py). The callback here only appends to a
    buffer, so the channel's frame reader calls it directly instead: `_on_deliver_frame` of
    the pinned aiormq is replaced on the channel instance, for this consumer's tag only.
    Should a future aiormq not have the methods this needs, it consumes the ordinary way.
    """

    def __init__(
        self,
        channel: AbstractRobustChannel,
        queue: str,
        callback: DeliveryCallback,
        *,
        direct: bool = True,
    ) -> None:
        self._channel = channel
        self._direct = direct
        self._queue = queue
        self._callback = callback
        self._tag: str | None = None
        self._underlay: aiormq.abc.AbstractChannel | None = None
        # Set when the broker cancels the consumer (its queue was deleted): not recoverable here.
        self.cancelled_by_broker = asyncio.Event()

    async def start(self) -> None:
        await self._consume()
        self._channel.reopen_callbacks.add(self._on_reopen)

    async def cancel(self) -> None:
        """Stop deliveries; those already sent stay with the caller, unacked ones with the broker."""
        self._channel.reopen_callbacks.discard(self._on_reopen)
        if self._underlay is not None and self._tag is not None and not self._underlay.is_closed:
            with contextlib.suppress(Exception):  # a broker that is gone sends nothing more
                await self._underlay.basic_cancel(self._tag, timeout=5)

    async def _on_reopen(self, channel: object) -> None:
        log.info("channel reopened: consuming %s again", self._queue)
        await self._consume()

    async def _consume(self) -> None:
        underlay = await self._channel.get_underlay_channel()
        underlay.on_consumer_cancel_callbacks.add(self._on_cancel)
        # The tag is chosen here: deliveries can be read before basic_consume returns.
        tag = f"ingest.{uuid.uuid4().hex}"
        direct = _direct_delivery(underlay, tag, self._callback) if self._direct else None
        if direct is not None:
            setattr(underlay, "_on_deliver_frame", direct)  # noqa: B010 (an instance override)
        await underlay.basic_consume(self._queue, self._deliver, consumer_tag=tag)
        self._underlay, self._tag = underlay, tag

    async def _deliver(self, message: DeliveredMessage) -> None:
        self._callback(message)

    def _on_cancel(self, frame: aiormq.spec.Basic.Cancel) -> None:
        if frame.consumer_tag == self._tag:
            log.error("the broker cancelled the consumer of %s", self._queue)
            self.cancelled_by_broker.set()


def _direct_delivery(
    channel: aiormq.abc.AbstractChannel, tag: str, callback: DeliveryCallback
) -> _FrameHandler | None:
    """A `_on_deliver_frame` for `channel` that calls `callback` for `tag`'s deliveries in
    the frame reader; None when this aiormq lacks what it needs (see `Subscription`)."""
    original = getattr(channel, "_on_deliver_frame", None)
    get_frame = getattr(channel, "_get_frame", None)
    read_content = getattr(channel, "_read_content", None)
    if original is None or get_frame is None or read_content is None:
        return None

    async def on_deliver_frame(frame: aiormq.spec.Basic.Deliver) -> None:
        if frame.consumer_tag != tag:
            await original(frame)
            return
        # What aiormq's own handler reads: the content header, then the body frames.
        header = await get_frame()
        if not isinstance(header, ContentHeader):
            raise ValueError(f"unexpected frame {header!r} instead of a content header")
        message: DeliveredMessage = await read_content(frame, header)
        try:
            callback(message)
        except Exception:  # the frame reader must go on; the message stays unacked
            log.exception("the delivery callback failed")

    return on_deliver_frame
