"""`travis-logs simulate --http`: parts sent over the API's part routes, as later travis-workers do."""

from __future__ import annotations

import asyncpg
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from pydantic import SecretStr

from api.app import create_app
from tests.helpers import free_port
from tests.pusher_support import pusher_settings, serve
from travis_logs.settings import Settings
from travis_logs.simulator.faults import FaultOptions
from travis_logs.simulator.job import JobOptions, build_job
from travis_logs.simulator.runner import SimulationOptions
from workers import simulate

pytestmark = pytest.mark.timeout(60)

FAULTS = FaultOptions(duplicates=0.3, reorder_window=4, late_parts=2, poison=6)


def key_pair() -> tuple[bytes, str]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    public = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return private, public.decode()


async def stored_log(pool: asyncpg.Pool, job_id: int) -> bytes:
    rows = await pool.fetch(
        "SELECT p.content FROM log_parts p JOIN logs l ON l.id = p.log_id"
        " WHERE l.job_id = $1 ORDER BY p.number",
        job_id,
    )
    return "".join(r["content"] for r in rows).encode()


@pytest.mark.parametrize("multi", [False, True], ids=["put", "multi"])
async def test_parts_over_http_are_stored_as_sent(
    settings: Settings, pool, job_id: int, multi: bool
):
    """PUT per part or POST /log-parts/multi with RS512 tokens: the stored parts make the expected log."""
    private, public = key_pair()
    api = pusher_settings(
        settings.model_copy(
            update={
                "jwt_rsa_public_key": public,
                "auth_token": SecretStr("simulate-http-token-" + "t" * 32),
            }
        ),
        free_port(),  # no Pusher server: live pushes fail quietly
    )
    options = SimulationOptions(
        jobs=1, seed=77, start_job_id=job_id, job=JobOptions(parts=25, speed=0, faults=FAULTS)
    )
    async with serve(create_app(api)) as port:
        target = simulate.HttpTarget(f"http://127.0.0.1:{port}", private, multi)
        manifest = await simulate.run(api, options, target)
    expected = build_job(job_id, 77, options.job).expected_log
    assert manifest.jobs[0].bytes == len(expected)
    assert await stored_log(pool, job_id) == expected
