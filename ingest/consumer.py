"""AMQP deliveries of log parts, in batches, through `PartIntake`; acks only what is safe.

Batching, dead-lettering and acks are done here; where a part goes is `PartIntake`'s. Per
batch: invalid messages are published to the dead-letter exchange (confirmed) with their
reason; the valid parts go to the intake, patiently (stored in one transaction with the
transition signals they owe, in the outbox); the signals go to the `SignalPump`, which sends
them while the next batches are stored; then one multiple ack per channel. Nothing is acked
before its commit, and nothing is requeued: a database outage is waited out while the
broker keeps the unacked messages, a Temporal outage once `ingest_signals_in_flight`
signals wait, and a part the intake refuses (it failed alone `ingest_store_attempts`
times) is dead-lettered.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass
from typing import Any

import aio_pika
from aio_pika.abc import AbstractExchange
from aiormq.abc import DeliveredMessage
from pamqp.encode import field_table
from prometheus_client import Counter, Histogram
from pydantic_core import from_json

from ingest.intake import PartIntake
from ingest.outbox import SignalPump
from ingest.topology import REASON_HEADER
from travis_logs.backoff import backoff
from travis_logs.bounded import bounded, bounded_repr
from travis_logs.errors import InvalidLogPart
from travis_logs.parts import LogPart, parse_message
from travis_logs.settings import Settings

log = logging.getLogger(__name__)

DEAD_LETTERS = Counter(
    "travis_logs_ingest_dead_letters",
    "Messages sent to the dead-letter queue, by the kind of their reason.",
    ["kind"],
)
ACKED = Counter("travis_logs_ingest_acked", "Messages acked: stored, duplicate or dead-lettered.")
BATCH_SECONDS = Histogram(
    "travis_logs_ingest_batch_seconds", "From taking a batch to acking it (store, signals, acks)."
)
MAX_BACKOFF_S = 5.0
# A dead letter must always be publishable: its reason and the headers it copies are bounded
# so that its content header fits one frame of the broker's frame_max (128 KiB by default;
# past it RabbitMQ closes the whole connection, and the redelivered message did it again).
REASON_MAX_BYTES = 512
COPIED_HEADERS_MAX_BYTES = 16 * 1024
DROPPED_HEADERS = "x-original-headers-dropped"


@dataclass(slots=True)
class Entry:
    """One delivery: its part, or why it is not one."""

    message: DeliveredMessage
    part: LogPart | None
    arrived: float
    reason: str | None = None
    pushed: bool = False  # pushed live on arrival (else after the store, when new)


class BatchConsumer:
    """Collects deliveries (`on_delivery`) and processes them batch by batch (`run`)."""

    def __init__(
        self,
        intake: PartIntake,
        dead_exchange: AbstractExchange,
        settings: Settings,
        signals: SignalPump,
    ) -> None:
        self._intake = intake
        self._signals = signals
        self._dead_exchange = dead_exchange
        self._settings = settings
        self._buffer: list[Entry] = []
        self._wake = asyncio.Event()
        self._closing = False
        self._loop = asyncio.get_running_loop()
        self.acked = 0

    def on_delivery(self, message: DeliveredMessage) -> None:
        """The consumer callback: parse now, hand to the intake's live push, store later.

        It runs in the AMQP channel's frame reader (`subscription.Subscription`): no awaits, no
        exceptions out.
        """
        arrived = self._loop.time()
        try:
            part = parse_message(message.body, self._settings.max_part_bytes)
            entry = Entry(message, part, arrived)
        except InvalidLogPart as err:
            entry = Entry(message, None, arrived, err.reason)
        except Exception as err:  # a bug must not strand the message unacked: dead-letter it
            log.exception("parsing a message failed")
            entry = Entry(message, None, arrived, f"parse: {err!r}")
        self._buffer.append(entry)
        if entry.part is not None:
            entry.pushed = self._intake.arrived(entry.part, bool(message.redelivered))
        if len(self._buffer) == 1 or len(self._buffer) >= self._settings.ingest_batch_size:
            self._wake.set()

    def close(self) -> None:
        """Finish: `run` processes what is in hand and returns (consuming must stop first)."""
        self._closing = True
        self._wake.set()

    async def run(self) -> None:
        """Process batches until `close` and the buffer is empty."""
        while True:
            await self._wait_for_batch()
            if not self._buffer:
                if self._closing:
                    return
                continue
            size = self._settings.ingest_batch_size
            batch, self._buffer = self._buffer[:size], self._buffer[size:]
            await self.process(batch)

    async def _wait_for_batch(self) -> None:
        """Until a full batch is in, or the oldest delivery waited `ingest_batch_ms`."""
        if not self._buffer and not self._closing:
            self._wake.clear()
            await self._wake.wait()
        if not self._buffer:
            return
        # Small batches would cost a transaction each; live latency does not wait on this.
        # Counted from now when the oldest delivery came during the previous batch: a busy
        # ingest would otherwise take only what arrived meanwhile (draining a full queue,
        # measured: 46 parts a batch, 67 with this) and spend more on transactions.
        start = max(self._buffer[0].arrived, self._loop.time())
        deadline = start + self._settings.ingest_batch_ms / 1000
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout_at(deadline):
                while len(self._buffer) < self._settings.ingest_batch_size and not self._closing:
                    self._wake.clear()
                    await self._wake.wait()

    async def process(self, batch: list[Entry]) -> None:
        """Dead-letter what is no part and hand the rest to the intake; then ack the batch."""
        started = time.perf_counter()
        good = [e for e in batch if e.part is not None]
        parts = [e.part for e in good if e.part is not None]
        pushed = {(e.part.job_id, e.part.number) for e in good if e.pushed and e.part}
        unparsed = [e for e in batch if e.part is None]
        _, result = await asyncio.gather(
            asyncio.gather(*(self._dead_letter(e) for e in unparsed)),
            self._intake.store(parts, patient=True, pushed=pushed),
        )
        await self._signals.send(result.pending)
        refused = [e for e in good if e.part and (e.part.job_id, e.part.number) in result.refused]
        for e in refused:
            assert e.part is not None
            e.reason = result.refused[(e.part.job_id, e.part.number)]
        await asyncio.gather(*(self._dead_letter(e) for e in refused))
        await self._ack(batch)
        BATCH_SECONDS.observe(time.perf_counter() - started)

    async def _dead_letter(self, entry: Entry) -> None:
        """Publish a copy with its reason, confirmed, before the batch ack covers the original."""
        reason = bounded(entry.reason or "unknown", REASON_MAX_BYTES)
        DEAD_LETTERS.labels(reason_kind(reason)).inc()
        job = entry.part.job_id if entry.part is not None else job_hint(entry.message.body)
        log.warning(
            "dead-lettering message %s of job %s: %s", message_id(entry.message), job, reason
        )
        message = _dead_letter_copy(entry.message, reason, self._settings.ingest_dead_letter_ttl_s)
        delays = backoff(0.1, MAX_BACKOFF_S)
        while not entry.message.channel.is_closed:
            delay = next(delays)
            try:
                await self._dead_exchange.publish(message, routing_key=self._settings.amqp_queue)
                return
            except Exception as err:
                log.warning("dead-letter publish failed (%r); retrying in %.1f s", err, delay)
            await asyncio.sleep(delay)

    async def _ack(self, batch: list[Entry]) -> None:
        """One multiple ack per channel, up to the batch's highest delivery tag on it."""
        groups: dict[int, list[DeliveredMessage]] = {}
        for e in batch:
            # A closed channel took its deliveries back to the queue; the DB drops the repeats.
            if not e.message.channel.is_closed:
                groups.setdefault(id(e.message.channel), []).append(e.message)
        for messages in groups.values():
            last = max(messages, key=lambda m: m.delivery_tag or 0)
            try:
                await last.channel.basic_ack(last.delivery_tag or 0, multiple=True)
            except Exception as err:
                log.info("ack lost with its channel (%r); the broker redelivers", err)
            else:
                self.acked += len(messages)
                ACKED.inc(len(messages))


def job_hint(body: bytes) -> str:
    """The job id a message that is no valid part claims to be of, for the log line."""
    try:
        payload = from_json(body)  # bounded nesting, unlike json.loads
    except ValueError:
        return "unknown"
    value = payload.get("id") if isinstance(payload, dict) else None
    return bounded_repr(value, 40) if value is not None else "unknown"


def message_id(message: DeliveredMessage) -> str:
    """The AMQP message id, else travis-worker's part `uuid`, else the delivery tag."""
    if message.header.properties.message_id:
        return bounded(message.header.properties.message_id, 80)
    try:
        payload = from_json(message.body)
    except ValueError:
        payload = None
    uuid = payload.get("uuid") if isinstance(payload, dict) else None
    return bounded(uuid, 80) if isinstance(uuid, str) else f"delivery-{message.delivery_tag}"


def reason_kind(reason: str) -> str:
    """The metric label of a reason: its field (`id`, `json`, `store`, ...), never free text."""
    kind = reason.partition(":")[0]
    return kind if kind.isidentifier() and len(kind) <= 20 else "other"


def copied_headers(headers: dict[str, Any] | None) -> dict[str, Any]:
    """The original's headers when they encode in COPIED_HEADERS_MAX_BYTES, else a note.

    Any header the broker delivered can be copied back in principle, but not with a reason
    beside it if it already filled a frame, and not at all if it does not encode again.
    """
    if not headers:
        return {}
    try:
        size = len(field_table(headers))
    except Exception as err:  # any value pamqp cannot encode again
        return {DROPPED_HEADERS: f"not encodable: {bounded_repr(err)}"}
    if size > COPIED_HEADERS_MAX_BYTES:
        return {DROPPED_HEADERS: f"{size} bytes exceed {COPIED_HEADERS_MAX_BYTES}"}
    return dict(headers)


def _dead_letter_copy(message: DeliveredMessage, reason: str, ttl_s: int) -> aio_pika.Message:
    properties = message.header.properties
    headers = copied_headers(properties.headers)
    headers[REASON_HEADER] = reason
    headers["x-original-exchange"] = message.exchange or ""
    headers["x-original-routing-key"] = message.routing_key or ""
    return aio_pika.Message(
        message.body,
        headers=headers,
        content_type=properties.content_type,
        message_id=properties.message_id,
        timestamp=properties.timestamp,
        type=properties.message_type,
        delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
        # A per-message TTL rather than a queue argument: the dead-letter queue of an
        # existing deployment was declared without arguments, and redeclaring it with
        # different ones fails. All copies share the TTL, so they expire in queue order.
        expiration=ttl_s,
    )
