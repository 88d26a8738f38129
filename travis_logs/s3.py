"""The S3 client that entry points build (AWS, SeaweedFS or moto, by S3_ENDPOINT_URL)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

import aioboto3
from aiobotocore.config import AioConfig
from botocore.handlers import add_expect_header

from travis_logs.settings import Settings

if TYPE_CHECKING:
    from types_aiobotocore_s3.client import S3Client

# A few quick retries inside one call; anything longer is the caller's retry policy (Temporal
# retries activities with backoff), so an outage shows up as failed attempts, not a hang.
_CONFIG = AioConfig(
    connect_timeout=5,
    read_timeout=60,
    retries={"max_attempts": 3, "mode": "standard"},
    # Only verify what S3 sends back; uploads carry the SHA-256 the archive step computes.
    request_checksum_calculation="when_required",
    response_checksum_validation="when_supported",
)


@asynccontextmanager
async def s3_client(settings: Settings) -> AsyncIterator[S3Client]:
    """An aioboto3 S3 client for the configured endpoint and region; closed on exit."""
    session = aioboto3.Session()
    async with session.client(
        "s3",
        endpoint_url=settings.s3_endpoint_url,
        region_name=settings.aws_region,
        config=_CONFIG,
    ) as client:
        # botocore sends every upload with `Expect: 100-continue`, and aiohttp waits for the
        # `100 Continue` with no timeout: an endpoint that reads the request and never
        # answers holds the upload forever. Logs are small; sending the body at once costs
        # little when S3 refuses it, and the read timeout then covers the wait for an answer.
        client.meta.events.unregister("before-call.s3", add_expect_header)
        yield client


async def ensure_bucket(settings: Settings) -> bool:
    """Create S3_BUCKET where it does not exist yet (SeaweedFS, a local S3); True when created."""
    async with s3_client(settings) as s3:
        try:
            await s3.create_bucket(Bucket=settings.s3_bucket)
        except (s3.exceptions.BucketAlreadyOwnedByYou, s3.exceptions.BucketAlreadyExists):
            return False
        return True
