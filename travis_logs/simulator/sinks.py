"""Where simulated messages go: RabbitMQ as travis-worker publishes, or the HTTP part routes.

Sinks get their clients from the entry point; they never build one.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, Protocol

import aio_pika
import aiormq
import httpx
import jwt
from aio_pika.abc import AbstractExchange

from travis_logs.backoff import backoff
from travis_logs.errors import LogsError
from travis_logs.simulator.messages import Message, PartMessage, PoisonMessage

log = logging.getLogger(__name__)

MESSAGE_TYPE = "job:test:log"
HTTP_ATTEMPTS = 5  # travis-worker retries with backoff; a simulated one gives up sooner


class SinkError(LogsError):
    """A message could not be delivered; the run stops rather than report a log it did not send."""


class PartSink(Protocol):
    """Sends a batch of one job's messages, in order; raises SinkError when it cannot."""

    async def send(self, messages: Sequence[Message]) -> None: ...


class AmqpSink:
    """Publishes like travis-worker: persistent JSON, type `job:test:log`, with a timestamp."""

    def __init__(self, exchange: AbstractExchange, routing_key: str) -> None:
        self._exchange = exchange
        self._routing_key = routing_key

    async def send(self, messages: Sequence[Message]) -> None:
        bodies = [m.amqp_body() if isinstance(m, PartMessage) else m.body for m in messages]
        # Confirms are awaited together; the channel lock still writes them in this order.
        await asyncio.gather(*(self._publish(body) for body in bodies))

    async def _publish(self, body: bytes) -> None:
        message = aio_pika.Message(
            body,
            content_type="application/json",
            delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
            type=MESSAGE_TYPE,
            timestamp=datetime.now(UTC),
        )
        # Mandatory and confirmed: a message the broker cannot route or store is an error
        # here, never a part silently missing from a log the manifest vouches for.
        try:
            result = await self._exchange.publish(message, self._routing_key, mandatory=True)
        except aiormq.exceptions.AMQPError as err:
            raise SinkError(f"RabbitMQ did not take a message: {err!r}") from err
        if isinstance(result, aiormq.abc.DeliveredMessage):  # a Basic.Return
            raise SinkError(
                f"no queue is bound to exchange {self._exchange.name!r} "
                f"with routing key {self._routing_key!r}"
            )


class JwtSigner:
    """travis-worker's per-job token: RS512, `sub` = the job id."""

    def __init__(self, private_key_pem: bytes, ttl_s: int = 3600) -> None:
        self._key = private_key_pem
        self._ttl_s = ttl_s
        self._tokens: dict[int, str] = {}

    def token(self, job_id: int) -> str:
        if job_id not in self._tokens:
            now = int(time.time())
            claims = {"sub": str(job_id), "iat": now, "exp": now + self._ttl_s}
            self._tokens[job_id] = jwt.encode(claims, self._key, algorithm="RS512")
        return self._tokens[job_id]


class HttpSink:
    """`PUT /log-parts/{job_id}/{number}` per part, or one `POST /log-parts/multi` per batch."""

    def __init__(self, client: httpx.AsyncClient, signer: JwtSigner, multi: bool = False) -> None:
        self._client = client
        self._signer = signer
        self._multi = multi

    async def send(self, messages: Sequence[Message]) -> None:
        parts = [m for m in messages if isinstance(m, PartMessage)]
        for poison in (m for m in messages if isinstance(m, PoisonMessage)):
            await self._send_poison(poison)
        if self._multi and parts:
            await self._send_multi(parts)
        else:
            for part in parts:
                await self._send_one(part)

    async def _send_one(self, message: PartMessage) -> None:
        item = message.http_item()
        body = {key: item[key] for key in ("@type", "content", "encoding", "final")}
        headers = {"Authorization": f"Bearer {self._signer.token(message.job_id)}"}
        url = f"/log-parts/{message.job_id}/{message.part.number}"
        await self._request("PUT", url, json=body, headers=headers)

    async def _send_multi(self, messages: Sequence[PartMessage]) -> None:
        items = [{**m.http_item(), "tok": self._signer.token(m.job_id)} for m in messages]
        # travis-worker's signature: sha1 of the items' tokens in body order.
        signature = hashlib.sha1("".join(i["tok"] for i in items).encode(), usedforsecurity=False)
        headers = {"Authorization": f"token sig:{signature.hexdigest()}"}
        await self._request("POST", "/log-parts/multi", json=items, headers=headers)

    async def _send_poison(self, message: PoisonMessage) -> None:
        headers = {
            "Authorization": f"Bearer {self._signer.token(message.job_id)}",
            "Content-Type": "application/json",
        }
        response = await self._client.put(
            f"/log-parts/{message.job_id}/0", content=message.body, headers=headers
        )
        if response.is_server_error:
            raise SinkError(
                f"poison message ({message.reason}) made the API fail: {response.status_code}"
            )
        if response.is_success:
            log.warning("the API accepted a poison message (%s)", message.reason)

    async def _request(self, method: str, url: str, **kwargs: Any) -> None:
        for _, delay in zip(range(HTTP_ATTEMPTS), backoff(0.2, 5.0), strict=False):
            try:
                response = await self._client.request(method, url, **kwargs)
            except httpx.TransportError as err:
                failure = repr(err)
            else:
                if response.status_code == 204:
                    return _check_dropped(response)
                if not response.is_server_error:
                    raise SinkError(f"{method} {url}: {response.status_code} {response.text[:200]}")
                failure = f"{response.status_code}"
            await asyncio.sleep(delay)
        raise SinkError(f"{method} {url} failed {HTTP_ATTEMPTS} times, last: {failure}")


def _check_dropped(response: httpx.Response) -> None:
    """`POST /log-parts/multi` answers 204 even when it drops items; this API says how many."""
    dropped = response.headers.get("X-Dropped-Log-Parts", "0")
    if dropped != "0":
        raise SinkError(f"the API dropped {dropped} log parts of a batch")
