"""`travis-logs migrate`: bring the database and the namespace to what this build needs.

Creates the database if needed and applies pending migrations; then checks that the
Temporal namespace has every search attribute the workflows set (`--register` adds the
missing ones on a self-hosted server) and, with `--create-bucket`, creates the bucket.
"""

from __future__ import annotations

import argparse
import asyncio
import logging

from botocore.exceptions import EndpointConnectionError
from stamina import retry_context

from travis_logs.checks import check_postgres
from travis_logs.errors import ConfigError
from travis_logs.migrate import migrate
from travis_logs.s3 import ensure_bucket
from travis_logs.settings import Settings
from travis_logs.temporal import connect
from workers import preflight
from workers.preflight import check_temporal

log = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--create-bucket",
        action="store_true",
        help="also create S3_BUCKET when it does not exist (SeaweedFS or another fresh S3)",
    )
    parser.add_argument(
        "--register",
        action="store_true",
        help="add the search attributes the Temporal namespace lacks (a self-hosted server)",
    )
    parser.add_argument(
        "--skip-temporal",
        action="store_true",
        help="migrate the database only; do not check the Temporal namespace",
    )


async def run(settings: Settings) -> list[str]:
    dsn = str(settings.database_url)
    await check_postgres(dsn)
    return await migrate(dsn)


async def create_bucket(settings: Settings, wait_s: float = 60) -> None:
    """Create the bucket, waiting for an S3 that is still starting (compose starts both)."""
    down = (OSError, EndpointConnectionError)
    try:
        async for attempt in retry_context(
            on=down, attempts=None, timeout=wait_s, wait_initial=0.5, wait_max=5.0
        ):
            with attempt:
                created = await ensure_bucket(settings)
    except down:
        raise ConfigError(f"S3_ENDPOINT_URL: no S3 answers within {wait_s:.0f} s") from None
    log.info("bucket %s %s", settings.s3_bucket, "created" if created else "exists")


async def check_namespace(settings: Settings, *, register: bool) -> None:
    await check_temporal(settings)
    client = await connect(settings)
    added = await preflight.check_namespace(client, register=register)
    if added:
        log.info("search attributes added to %s: %s", client.namespace, ", ".join(added))
    else:
        log.info("namespace %s has every search attribute", client.namespace)


def main(args: argparse.Namespace, settings: Settings) -> int:
    applied = asyncio.run(run(settings))
    log.info("migrations applied: %s", ", ".join(applied) or "none pending")
    if args.create_bucket:
        asyncio.run(create_bucket(settings))
    if not args.skip_temporal:
        asyncio.run(check_namespace(settings, register=args.register))
    return 0
