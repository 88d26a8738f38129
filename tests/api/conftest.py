"""The API under test: one uvicorn server per session on real services, plus its helpers.

The server runs `create_app(settings)` with a token, an RS512 public key, the local
Pusher-protocol server and short lifecycle clocks; a LogWorkflow worker on the same task
queue runs in this process, so PUT /logs and the archive/purge lifecycle really happen.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import asyncpg
import httpx
import jwt
import pytest
import pytest_asyncio
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from pydantic import SecretStr
from temporalio.testing import WorkflowEnvironment

from api.app import create_app
from tests.api.chromium import Page, executable, open_page
from tests.helpers import free_port, open_store
from tests.pusher_support import ensure_pusher_js, pusher_settings, serve, server_config
from travis_logs.localpusher.app import create_app as create_pusher_app
from travis_logs.settings import Settings
from workers.temporal_worker import build_worker, lifecycle_activities

# At least MIN_SECRET_CHARS each, as settings require of every process.
TOKEN = "api-test-token-0123456789abcdefghij"
VIEWER_SECRET = "api-test-viewer-secret-0123456789abcdefghij"


@dataclass(frozen=True)
class Keys:
    """An RSA key pair: the API verifies with `public_pem`, tests sign with `private_pem`."""

    private_pem: bytes
    public_pem: str

    def token_for(self, subject: object, **claims: Any) -> str:
        """An RS512 JWT for `subject`, valid for an hour; a claim given as None is left out."""
        claims = {"sub": subject, "exp": int(time.time()) + 3600, **claims}
        present = {name: value for name, value in claims.items() if value is not None}
        return jwt.encode(present, self.private_pem, algorithm="RS512")


def key_pair() -> Keys:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    public = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return Keys(private, public.decode())


@pytest.fixture(scope="session")
def keys() -> Keys:
    return key_pair()


@pytest.fixture(scope="session")
def other_keys() -> Keys:
    """A key pair the API does not know."""
    return key_pair()


@pytest.fixture(scope="session")
def api_port() -> int:
    return free_port()


@pytest_asyncio.fixture(scope="session")
async def pusher_port(api_port: int) -> AsyncIterator[int]:
    """The local Pusher-protocol server, sending its webhooks to the API under test."""
    ensure_pusher_js()
    webhook = f"http://127.0.0.1:{api_port}/pusher/existence"
    async with serve(create_pusher_app(server_config(webhook_url=webhook))) as port:
        yield port


@pytest.fixture(scope="session")
def api_settings(
    defaults: Settings,
    database_url: str,
    amqp_url: str,
    s3_endpoint: str,
    s3_bucket: str,
    temporal_env: WorkflowEnvironment,
    keys: Keys,
    pusher_port: int,
    api_port: int,
) -> Settings:
    """Settings of the API under test: this session's services and fast lifecycle clocks."""
    tag = uuid.uuid4().hex[:10]
    base = defaults.model_copy(
        update={
            "database_url": database_url,
            "rabbitmq_url": amqp_url,
            "temporal_address": temporal_env.client.service_client.config.target_host,
            "temporal_task_queue": f"api-{tag}",
            "s3_endpoint_url": s3_endpoint,
            "s3_bucket": s3_bucket,
            "amqp_exchange": f"reporting-{tag}",
            "amqp_queue": f"reporting.jobs.logs-{tag}",
            "auth_token": SecretStr(TOKEN),
            "viewer_secret": SecretStr(VIEWER_SECRET),
            "jwt_rsa_public_key": keys.public_pem,
            "port": api_port,
            "logs_quiet_period_s": 0.2,
            "logs_grace_period_s": 0.2,
            # An incomplete log's run stays open for its missing part (tests/api/test_completeness).
            "logs_incomplete_grace_s": 60,
            "logs_purge_delay_s": 0,
            "api_max_body_bytes": 256 * 1024,
            "max_part_bytes": 16 * 1024,
        }
    )
    return pusher_settings(base, pusher_port)


@asynccontextmanager
async def running_api(settings: Settings, port: int | None = None) -> AsyncIterator[str]:
    """`create_app(settings)` served by uvicorn (lifespan included); yields its base URL."""
    async with serve(create_app(settings), port) as bound:
        yield f"http://127.0.0.1:{bound}"


@pytest_asyncio.fixture(scope="session")
async def api_url(api_settings: Settings, log_worker: None, api_port: int) -> AsyncIterator[str]:
    async with running_api(api_settings, api_port) as url:
        yield url


@pytest.fixture(scope="session")
def private_settings(api_settings: Settings) -> Settings:
    """The API's settings with private Pusher channels (and so a private viewer)."""
    return api_settings.model_copy(update={"pusher_private_channels": True})


@pytest_asyncio.fixture(scope="session")
async def private_api(private_settings: Settings, log_worker: None) -> AsyncIterator[str]:
    """A second API on the same services whose channels and viewer are private."""
    async with running_api(private_settings) as url:
        yield url


@pytest_asyncio.fixture(scope="session")
async def client(api_url: str) -> AsyncIterator[httpx.AsyncClient]:
    """A client of the API under test that sends travis-api's token."""
    headers = {"Authorization": f"token {TOKEN}"}
    async with httpx.AsyncClient(base_url=api_url, headers=headers, timeout=30) as c:
        yield c


@pytest_asyncio.fixture(scope="session")
async def anonymous(api_url: str) -> AsyncIterator[httpx.AsyncClient]:
    """A client of the API under test without credentials."""
    async with httpx.AsyncClient(base_url=api_url, timeout=30) as c:
        yield c


@pytest.fixture
def auth_for() -> Callable[[str], dict[str, str]]:
    return lambda value: {"Authorization": value}


@pytest_asyncio.fixture(scope="session")
async def log_worker(
    api_settings: Settings, temporal_env: WorkflowEnvironment, pool: asyncpg.Pool
) -> AsyncIterator[None]:
    """The production LogWorkflow worker (build_worker) on the API's task queue."""
    async with open_store(api_settings) as store:
        activities = lifecycle_activities(pool, store)
        async with build_worker(temporal_env.client, api_settings, activities):
            yield


# One browser tab per test module (the browser tests drive the viewer page through it).
@pytest_asyncio.fixture(scope="module")
async def page() -> AsyncIterator[Page]:
    binary = executable()
    if binary is None:
        pytest.skip("chromium is not installed (apt-get install chromium)")
    async with open_page(binary) as tab:
        yield tab
