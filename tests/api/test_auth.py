"""Token auth (travis-api) and RS512 JWT auth (travis-worker), as travis-logs answers them."""

from __future__ import annotations

import base64
import hashlib
from collections.abc import AsyncIterator

import httpx
import jwt
import pytest
import pytest_asyncio
from pydantic import SecretStr

from tests.api.conftest import TOKEN, Keys, running_api
from travis_logs.settings import Settings

TOKEN_ROUTES = [
    ("GET", "/logs/{job}"),
    ("GET", "/logs/{job}/id"),
    ("GET", "/log-parts/{job}"),
    ("PUT", "/logs/{job}"),
    ("POST", "/logs/multi"),
]


def part_body(text: str, final: bool = False) -> dict[str, object]:
    content = base64.b64encode(text.encode()).decode()
    return {"@type": "log_part", "content": content, "encoding": "base64", "final": final}


@pytest_asyncio.fixture(scope="module")
async def unconfigured(api_settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """An API whose AUTH_TOKEN is blank and which has no JWT key."""
    bare = api_settings.model_copy(
        update={"auth_token": SecretStr("  "), "jwt_rsa_public_key": None}
    )
    async with running_api(bare) as url, httpx.AsyncClient(base_url=url) as c:
        yield c


@pytest.mark.parametrize(("method", "path"), TOKEN_ROUTES)
async def test_token_routes_refuse_missing_and_wrong_tokens(
    anonymous: httpx.AsyncClient, job_id: int, method: str, path: str
) -> None:
    """Without a token, with a wrong one or with the bare token value, the answer is 403."""
    url = path.format(job=job_id)
    for headers in ({}, {"Authorization": "token nope"}, {"Authorization": TOKEN}):
        response = await anonymous.request(method, url, headers=headers, json=[])
        assert response.status_code == 403, (headers, response.text)
        assert response.json() == {"message": "forbidden"}


@pytest.mark.parametrize(("method", "path"), TOKEN_ROUTES)
async def test_token_routes_are_500_when_no_token_is_configured(
    unconfigured: httpx.AsyncClient, job_id: int, method: str, path: str
) -> None:
    """A blank AUTH_TOKEN makes every token route 500 'authentication token is not set'."""
    headers = {"Authorization": "token"}
    response = await unconfigured.request(method, path.format(job=job_id), headers=headers)
    assert response.status_code == 500
    assert response.json() == {"message": "authentication token is not set"}


async def test_right_token_is_accepted(client: httpx.AsyncClient, job_id: int) -> None:
    """travis-api's `token <AUTH_TOKEN>` passes (a job without log is then a 404)."""
    response = await client.get(f"/logs/{job_id}/id")
    assert response.status_code == 404
    assert response.json() == {"message": "log not found"}


async def test_jwt_for_the_job_may_write_its_part(
    anonymous: httpx.AsyncClient, client: httpx.AsyncClient, keys: Keys, job_id: int
) -> None:
    """An RS512 JWT whose sub is the job id may PUT a part of that job (204, then stored)."""
    headers = {"Authorization": f"Bearer {keys.token_for(str(job_id))}"}
    response = await anonymous.put(f"/log-parts/{job_id}/1", json=part_body("hi"), headers=headers)
    assert response.status_code == 204, response.text
    parts = (await client.get(f"/log-parts/{job_id}")).json()["log_parts"]
    assert [(p["number"], p["content"]) for p in parts] == [(1, "hi")]


@pytest.mark.parametrize(
    "make_token",
    [
        pytest.param(lambda keys, other, job: keys.token_for(str(job + 1)), id="other job"),
        pytest.param(lambda keys, other, job: keys.token_for(job), id="sub not a string"),
        pytest.param(lambda keys, other, job: keys.token_for(None), id="no sub"),
        pytest.param(lambda keys, other, job: keys.token_for(str(job), exp=1), id="expired"),
        pytest.param(lambda keys, other, job: keys.token_for(str(job), exp=None), id="no exp"),
        pytest.param(
            lambda keys, other, job: keys.token_for(str(job))[:-4] + "AAAA", id="tampered"
        ),
        pytest.param(
            lambda keys, other, job: jwt.encode({"sub": str(job)}, "x" * 64, algorithm="HS512"),
            id="HS512",
        ),
        pytest.param(lambda keys, other, job: other.token_for(str(job)), id="other key"),
    ],
)
async def test_jwt_that_does_not_name_the_job_is_403(
    anonymous: httpx.AsyncClient, keys: Keys, other_keys: Keys, job_id: int, make_token
) -> None:
    """A JWT for another job, unsigned by our key, expired or of another algorithm is 403."""
    headers = {"Authorization": f"Bearer {make_token(keys, other_keys, job_id)}"}
    response = await anonymous.put(f"/log-parts/{job_id}/1", json=part_body("x"), headers=headers)
    assert response.status_code == 403


async def test_part_routes_take_the_token_too(client: httpx.AsyncClient, job_id: int) -> None:
    """travis-api's token may write a part as well (204)."""
    response = await client.put(f"/log-parts/{job_id}/last", json=part_body("end", final=True))
    assert response.status_code == 204
    parts = (await client.get(f"/log-parts/{job_id}")).json()["log_parts"]
    assert [(p["number"], p["final"]) for p in parts] == [(2147483647, True)]


async def test_part_routes_refuse_missing_or_unknown_schemes(
    anonymous: httpx.AsyncClient, job_id: int
) -> None:
    """No Authorization header, or one of an unknown scheme, is 403 on the part routes."""
    for headers in ({}, {"Authorization": "Basic abc"}, {"Authorization": "token wrong"}):
        single = await anonymous.put(f"/log-parts/{job_id}/1", json=part_body("x"), headers=headers)
        multi = await anonymous.post("/log-parts/multi", json=[], headers=headers)
        assert (single.status_code, multi.status_code) == (403, 403), headers


async def test_bearer_without_a_configured_key_is_500(
    unconfigured: httpx.AsyncClient, keys: Keys, job_id: int
) -> None:
    """A Bearer token when JWT_RSA_PUBLIC_KEY is unset is 500 'key is not set'."""
    headers = {"Authorization": f"Bearer {keys.token_for(str(job_id))}"}
    response = await unconfigured.put(
        f"/log-parts/{job_id}/1", json=part_body("x"), headers=headers
    )
    assert response.status_code == 500
    assert response.json() == {"message": "key is not set"}


async def test_multi_signature_header_is_checked(
    anonymous: httpx.AsyncClient, keys: Keys, job_id: int
) -> None:
    """travis-worker's `token sig:<sha1 of the toks>` passes; a wrong signature is 403."""
    tok = keys.token_for(str(job_id))
    items = [{**part_body("a"), "job_id": job_id, "number": 1, "tok": tok}]
    good = "token sig:" + hashlib.sha1(tok.encode()).hexdigest()
    response = await anonymous.post("/log-parts/multi", json=items, headers={"Authorization": good})
    assert response.status_code == 204
    bad = {"Authorization": "token sig:" + "0" * 40}
    assert (await anonymous.post("/log-parts/multi", json=items, headers=bad)).status_code == 403


async def test_audience_and_issuer_are_checked_when_configured(
    api_settings: Settings, log_worker: None, keys: Keys, job_id: int
) -> None:
    """With JWT_AUDIENCE and JWT_ISSUER set, a JWT must carry both, equal to them."""
    strict = api_settings.model_copy(update={"jwt_audience": "logs", "jwt_issuer": "hub"})
    sub = str(job_id)
    cases = [
        (keys.token_for(sub, aud="logs", iss="hub"), 204),
        (keys.token_for(sub), 403),
        (keys.token_for(sub, aud="other", iss="hub"), 403),
        (keys.token_for(sub, aud="logs", iss="elsewhere"), 403),
        (keys.token_for(sub, aud="logs"), 403),
    ]
    async with running_api(strict) as url, httpx.AsyncClient(base_url=url) as c:
        for number, (token, status) in enumerate(cases, start=1):
            headers = {"Authorization": f"Bearer {token}"}
            response = await c.put(
                f"/log-parts/{job_id}/{number}", json=part_body("x"), headers=headers
            )
            assert response.status_code == status, (number, response.text)
