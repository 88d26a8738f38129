"""The S3 client that entry points build (AWS, SeaweedFS or moto, by S3_ENDPOINT_URL)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

import aioboto3
from aiobotocore.config import AioConfig
from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError
from botocore.handlers import add_expect_header

from travis_logs.errors import ConfigError
from travis_logs.settings import Settings
from travis_logs.transfer import record_failed_attempt

if TYPE_CHECKING:
    from types_aiobotocore_s3.client import S3Client

log = logging.getLogger(__name__)


def client_config(settings: Settings) -> AioConfig:
    """A few quick retries inside one call; anything longer is the caller's retry policy.

    Temporal retries activities with backoff, so an outage shows up as failed attempts, not
    a hang. A connection attempt gives up well within the request's deadline, so that a
    request abandoned there can name the connection error (transfer.record_failed_attempt).
    """
    return AioConfig(
        connect_timeout=min(5.0, settings.s3_request_timeout_s / 3),
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
        config=client_config(settings),
    ) as client:
        # botocore sends every upload with `Expect: 100-continue`, and aiohttp waits for the
        # `100 Continue` with no timeout: an endpoint that reads the request and never
        # answers holds the upload forever. Logs are small; sending the body at once costs
        # little when S3 refuses it, and the read timeout then covers the wait for an answer.
        client.meta.events.unregister("before-call.s3", add_expect_header)
        client.meta.events.register("needs-retry.s3", record_failed_attempt)
        yield client


async def ensure_bucket(settings: Settings) -> bool:
    """Create S3_BUCKET where it does not exist yet (SeaweedFS, a local S3); True when created."""
    async with s3_client(settings) as s3:
        try:
            await s3.create_bucket(Bucket=settings.s3_bucket)
        except (s3.exceptions.BucketAlreadyOwnedByYou, s3.exceptions.BucketAlreadyExists):
            return False
        return True


def _where(settings: Settings) -> str:
    return settings.s3_endpoint_url or f"AWS S3 ({settings.aws_region})"


async def check_bucket(s3: S3Client, settings: Settings, timeout_s: float = 3) -> None:
    """The bucket exists and the credentials may use it; else ConfigError naming the setting.

    Only a definite answer stops a process: an S3 that does not answer within `timeout_s` is
    a warning, as archives are retried until it does (and their failures name the cause).
    """
    bucket, where = settings.s3_bucket, _where(settings)
    try:
        async with asyncio.timeout(min(timeout_s, settings.s3_request_timeout_s)):
            await s3.head_bucket(Bucket=bucket)
    except NoCredentialsError:
        raise ConfigError(
            "AWS_ACCESS_KEY_ID: no S3 credentials found; set AWS_ACCESS_KEY_ID and "
            "AWS_SECRET_ACCESS_KEY (or an AWS profile or role)"
        ) from None
    except ClientError as err:
        code = str(err.response.get("Error", {}).get("Code", ""))
        if code in {"404", "NoSuchBucket", "NotFound"}:
            raise ConfigError(
                f"S3_BUCKET: {where} has no bucket {bucket!r}; create it "
                "(`travis-logs migrate --create-bucket` does on a fresh S3)"
            ) from None
        if code in {"403", "AccessDenied", "Forbidden"}:
            raise ConfigError(
                f"AWS_ACCESS_KEY_ID: {where} refused these credentials the bucket {bucket!r}"
            ) from None
        raise ConfigError(f"S3_BUCKET: {where} answered {code or err} for {bucket!r}") from None
    except (BotoCoreError, OSError, TimeoutError) as err:
        log.warning(
            "S3_ENDPOINT_URL: no S3 answers at %s (%s); archives wait for it",
            where,
            str(err)[:200] or "no answer",
        )
