"""`travis-logs migrate`: create the database if needed and apply pending migrations."""

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

log = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--create-bucket",
        action="store_true",
        help="also create S3_BUCKET when it does not exist (SeaweedFS or another fresh S3)",
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


def main(args: argparse.Namespace, settings: Settings) -> int:
    applied = asyncio.run(run(settings))
    log.info("migrations applied: %s", ", ".join(applied) or "none pending")
    if args.create_bucket:
        asyncio.run(create_bucket(settings))
    return 0
