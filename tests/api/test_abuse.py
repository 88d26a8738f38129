"""Requests built to cost the API: each is refused before its body is parsed (or parsed off
the event loop), and the next good request is served.

Timings are not asserted here (bench/abuse.py prints them); what the tests show is what a
caller without a credential gets: a refusal that depended on no parsing of its body.
"""

from __future__ import annotations

import asyncio
import hashlib
import json

import httpx
from prometheus_client.parser import text_string_to_metric_families

from api.metrics import SERVED_METHODS
from api.sessions import GRANT, issue
from tests.api.conftest import TOKEN, Keys
from travis_logs.settings import Settings

SIG_OF_NOTHING = "token sig:" + hashlib.sha1(b"").hexdigest()


def anonymous_batch(job_id: int, items: int) -> bytes:
    """travis-worker's batch shape without any token: what anyone can sign."""
    item = {"@type": "log_part", "encoding": "base64", "job_id": job_id, "number": 1}
    return json.dumps([{**item, "number": n, "content": "eA=="} for n in range(items)]).encode()


async def dropped_total(c: httpx.AsyncClient) -> float:
    text = (await c.get("/metrics")).text
    return sum(
        line_value
        for family in text_string_to_metric_families(text)
        if family.name == "travis_logs_api_dropped_log_parts"
        for line_value in (s.value for s in family.samples if s.name.endswith("_total"))
    )


async def test_a_flood_of_signed_anonymous_batches_is_refused_unread(
    anonymous: httpx.AsyncClient, client: httpx.AsyncClient, keys: Keys, job_id: int
) -> None:
    """Ten parallel `token sig:` batches without a JWT: 403 each, no item looked at (the
    drop counter stands still), /uptime served meanwhile, and a worker's batch stored."""
    body = anonymous_batch(job_id, 2_500)  # ~230 KB, under the test API's body limit
    headers = {"Authorization": SIG_OF_NOTHING, "Content-Type": "application/json"}
    before = await dropped_total(anonymous)
    flood = [anonymous.post("/log-parts/multi", content=body, headers=headers) for _ in range(10)]
    answers = await asyncio.gather(*flood, *(anonymous.get("/uptime") for _ in range(5)))
    assert [r.status_code for r in answers] == [403] * 10 + [200] * 5
    assert await dropped_total(anonymous) == before

    tok = keys.token_for(str(job_id))
    good = [
        {
            "@type": "log_part",
            "encoding": "base64",
            "job_id": job_id,
            "number": 1,
            "content": "b2s=",
            "tok": tok,
        }
    ]
    signed = {"Authorization": "token sig:" + hashlib.sha1(tok.encode()).hexdigest()}
    response = await anonymous.post("/log-parts/multi", json=good, headers=signed)
    assert response.status_code == 204
    parts = (await client.get(f"/log-parts/{job_id}")).json()["log_parts"]
    assert [(p["number"], p["content"]) for p in parts] == [(1, "ok")]


async def test_a_signed_batch_verifies_each_distinct_token_once_and_drops_strangers(
    anonymous: httpx.AsyncClient, client: httpx.AsyncClient, keys: Keys, job_id: int
) -> None:
    """Past the first (valid) token, items with tokens that do not verify are dropped."""
    tok = keys.token_for(str(job_id))
    items = [
        {
            "@type": "log_part",
            "encoding": "base64",
            "job_id": job_id,
            "number": 1,
            "content": "YQ==",
            "tok": tok,
        }
    ]
    items += [
        {"@type": "log_part", "job_id": job_id, "number": n, "content": "Yg==", "tok": f"x.y.{n}"}
        for n in range(2, 202)
    ]
    signature = hashlib.sha1("".join(str(i["tok"]) for i in items).encode()).hexdigest()
    headers = {"Authorization": f"token sig:{signature}"}
    response = await anonymous.post("/log-parts/multi", json=items, headers=headers)
    assert (response.status_code, response.headers["X-Dropped-Log-Parts"]) == (204, "200")
    parts = (await client.get(f"/log-parts/{job_id}")).json()["log_parts"]
    assert [(p["number"], p["content"]) for p in parts] == [(1, "a")]


async def test_the_sign_in_form_is_bounded_before_it_is_parsed(
    private_api: str, job_id: int
) -> None:
    """A sign-in form past 4 KiB is a 413, whatever it holds; the next sign-in works."""
    async with httpx.AsyncClient(base_url=private_api) as browser:
        huge = await browser.post(
            f"/jobs/{job_id}/session", data={"token": "t" * 200_000, "x": "y"}
        )
        assert huge.status_code == 413 and huge.json()["message"]
        many = await browser.post(f"/jobs/{job_id}/session", content=b"a=1&" * 1_000)
        assert many.status_code in (400, 413)
        good = await browser.post(f"/jobs/{job_id}/session", data={"token": TOKEN})
        assert good.status_code == 303


async def test_channel_auth_checks_the_grant_before_the_body(
    private_api: str, private_settings: Settings, job_id: int
) -> None:
    """Without a grant that verifies, a huge form is refused unread; with one, bounded."""
    body = b"x=" + b"y" * 200_000
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    async with httpx.AsyncClient(base_url=private_api) as browser:
        forged = await browser.post(
            "/pusher/auth", content=body, headers={**form, "X-Log-Grant": "forged"}
        )
        assert forged.status_code == 403  # not 400 for the missing fields: never parsed
        grant = {"X-Log-Grant": issue(private_settings, GRANT, job_id)}
        huge = await browser.post("/pusher/auth", content=body, headers={**form, **grant})
        assert huge.status_code == 413
        good = await browser.post(
            "/pusher/auth",
            data={"socket_id": "1.2", "channel_name": f"private-job-{job_id}"},
            headers=grant,
        )
        assert good.status_code == 200 and good.json()["auth"]


async def test_a_webhook_with_the_wrong_key_is_refused_unread(
    anonymous: httpx.AsyncClient,
) -> None:
    """Pusher's key is a header: a webhook without ours is 401 before its body is read."""
    headers = {"X-Pusher-Key": "k" * 10_000, "X-Pusher-Signature": "0" * 64}
    response = await anonymous.post("/pusher/existence", content=b"{}", headers=headers)
    assert response.status_code == 401


async def test_unknown_methods_share_one_metric_label(anonymous: httpx.AsyncClient) -> None:
    """A client may send any word as its method; the metrics do not grow a series for it.

    uvicorn's parser (httptools) refuses methods HTTP does not define (400) before the app;
    those it lets through, the app's metrics label `other`."""
    for method in ("BOGUS0WORD", "BOGUS1WORD", "PROPFIND", "PATCH"):
        response = await anonymous.request(method, "/uptime")
        assert response.status_code in (400, 405)
    text = (await anonymous.get("/metrics")).text
    methods = {
        s.labels["method"]
        for family in text_string_to_metric_families(text)
        if family.name == "travis_logs_api_request_seconds"
        for s in family.samples
    }
    assert "other" in methods  # PROPFIND and PATCH reach the app
    assert methods <= SERVED_METHODS | {"other"}


async def test_error_messages_do_not_echo_a_huge_key(
    client: httpx.AsyncClient, job_id: int
) -> None:
    """A body key of 100,000 characters is named in a 400, cut to a bounded length."""
    body = {"reason": "r", "requested_by": "me", "strings": ["s"], "k" * 100_000: 1}
    response = await client.post(f"/logs/{job_id}/redactions", json=body)
    assert response.status_code == 400
    message = response.json()["message"]
    assert "(100000 bytes)" in message and len(message.encode()) < 1000
