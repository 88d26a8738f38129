"""POST /pusher/existence (channel webhooks) and POST /pusher/auth (private channels)."""

from __future__ import annotations

import hashlib
import hmac
import json
import time

import asyncpg
import httpx
import pytest
from pydantic import SecretStr

from api.sessions import GRANT, issue
from tests.api.conftest import TOKEN
from tests.pusher_support import APP
from travis_logs.parts import MAX_JOB_ID
from travis_logs.pusher.occupancy import OccupancyStore
from travis_logs.settings import Settings


def signed(events: list[dict[str, str]], secret: str = APP.secret) -> tuple[bytes, dict[str, str]]:
    body = json.dumps({"time_ms": int(time.time() * 1000), "events": events}).encode()
    signature = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    headers = {
        "X-Pusher-Key": APP.key,
        "X-Pusher-Signature": signature,
        "Content-Type": "application/json",
    }
    return body, headers


async def test_existence_webhook_marks_and_clears_occupancy(
    anonymous: httpx.AsyncClient, pool: asyncpg.Pool, job_id: int
) -> None:
    """channel_occupied marks the channel watched, channel_vacated clears it; both 204."""
    channel, store = f"job-{job_id}", OccupancyStore(pool)
    body, headers = signed([{"name": "channel_occupied", "channel": channel}])
    response = await anonymous.post("/pusher/existence", content=body, headers=headers)
    assert (response.status_code, response.content) == (204, b"")
    assert channel in await store.occupied([channel])
    body, headers = signed([{"name": "channel_vacated", "channel": channel}])
    assert (
        await anonymous.post("/pusher/existence", content=body, headers=headers)
    ).status_code == 204
    assert channel not in await store.occupied([channel])


@pytest.mark.parametrize(
    "tamper",
    [
        pytest.param(lambda body, h: (body, {**h, "X-Pusher-Signature": "0" * 64}), id="signature"),
        pytest.param(lambda body, h: (body, {**h, "X-Pusher-Key": "other"}), id="key"),
        pytest.param(lambda body, h: (body + b" ", h), id="body"),
        pytest.param(
            lambda body, h: (body, {k: v for k, v in h.items() if k != "X-Pusher-Signature"}),
            id="no signature",
        ),
    ],
)
async def test_existence_webhook_with_bad_signature_is_401(
    anonymous: httpx.AsyncClient, pool: asyncpg.Pool, job_id: int, tamper
) -> None:
    """A wrong key, signature or body is 401 and changes nothing."""
    channel = f"job-{job_id}"
    body, headers = tamper(*signed([{"name": "channel_occupied", "channel": channel}]))
    response = await anonymous.post("/pusher/existence", content=body, headers=headers)
    assert response.status_code == 401
    assert response.json()["message"]
    assert channel not in await OccupancyStore(pool).occupied([channel])


def expected_auth(socket_id: str, channel: str) -> str:
    message = f"{socket_id}:{channel}".encode()
    return f"{APP.key}:{hmac.new(APP.secret.encode(), message, hashlib.sha256).hexdigest()}"


async def test_channel_auth_signs_only_for_the_jobs_grant(
    private_api: str, private_settings: Settings, job_id: int
) -> None:
    """The job's viewer grant gets a valid Pusher signature; travis-api's token alone does not."""
    form = {"socket_id": "123.456", "channel_name": f"private-job-{job_id}"}
    expected = {"auth": expected_auth("123.456", f"private-job-{job_id}")}
    async with httpx.AsyncClient(base_url=private_api) as browser:
        grant = {"X-Log-Grant": issue(private_settings, GRANT, job_id)}
        with_grant = await browser.post("/pusher/auth", data=form, headers=grant)
        assert (with_grant.status_code, with_grant.json()) == (200, expected)
        token = {"Authorization": f"token {TOKEN}"}
        with_token = await browser.post("/pusher/auth", data=form, headers=token)
        assert with_token.status_code == 403


async def test_channel_auth_takes_the_largest_job_id(
    private_api: str, private_settings: Settings
) -> None:
    """private-job-9223372036854775807 (2^63-1) is a job channel; one more is not."""
    async with httpx.AsyncClient(base_url=private_api) as browser:
        for job, status in ((MAX_JOB_ID, 200), (MAX_JOB_ID + 1, 403)):
            form = {"socket_id": "1.2", "channel_name": f"private-job-{job}"}
            grant = {"X-Log-Grant": issue(private_settings, GRANT, min(job, MAX_JOB_ID))}
            response = await browser.post("/pusher/auth", data=form, headers=grant)
            assert response.status_code == status, (job, response.text)


@pytest.mark.parametrize(
    ("form", "grant_job_offset", "status"),
    [
        ({"socket_id": "1.2", "channel_name": "private-job-{job}"}, 1, 403),  # other job's grant
        ({"socket_id": "1.2", "channel_name": "private-user-{job}"}, 0, 403),  # not a job
        ({"socket_id": "1.2", "channel_name": "job-{job}"}, 0, 403),  # public: needs no auth
        ({"channel_name": "private-job-{job}"}, 0, 400),  # no socket_id
        ({"socket_id": "1.2"}, 0, 400),  # no channel
        ({"socket_id": "not-a-socket", "channel_name": "private-job-{job}"}, 0, 400),
    ],
)
async def test_channel_auth_refusals(
    private_api: str,
    private_settings: Settings,
    job_id: int,
    form: dict[str, str],
    grant_job_offset: int,
    status: int,
) -> None:
    """Another job's grant, a non-job channel or a malformed form is refused with a message."""
    data = {k: v.format(job=job_id) for k, v in form.items()}
    grant = {"X-Log-Grant": issue(private_settings, GRANT, job_id + grant_job_offset)}
    async with httpx.AsyncClient(base_url=private_api) as browser:
        response = await browser.post("/pusher/auth", data=data, headers=grant)
    assert response.status_code == status
    assert response.json()["message"]


async def test_channel_auth_refuses_grants_it_did_not_issue_for_private_channels(
    private_api: str, api_settings: Settings, private_settings: Settings, job_id: int
) -> None:
    """No grant, a public page's grant, an expired one or another secret's: all 403."""
    form = {"socket_id": "1.2", "channel_name": f"private-job-{job_id}"}
    rotated = private_settings.model_copy(
        update={"viewer_secret": SecretStr("another viewer secret " + "3" * 32)}
    )
    long_ago = time.time() - 2 * private_settings.viewer_grant_ttl_s
    grants = [
        None,
        issue(api_settings, GRANT, job_id),  # issued while channels were public
        issue(private_settings, GRANT, job_id, now=long_ago),
        issue(rotated, GRANT, job_id),
        "not-a-grant",
    ]
    async with httpx.AsyncClient(base_url=private_api) as browser:
        for grant in grants:
            headers = {"X-Log-Grant": grant} if grant else {}
            response = await browser.post("/pusher/auth", data=form, headers=headers)
            assert response.status_code == 403, grant
            assert response.json()["message"]
