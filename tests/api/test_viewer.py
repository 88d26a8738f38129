"""GET /jobs/:job_id: the page's starting state, its assets and its access rules."""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import time
from typing import Any

import httpx
import jwt
import pytest
from pydantic import SecretStr

from api.sessions import GRANT, SESSION, VIEWER_COOKIE, issue, valid
from tests.api.conftest import TOKEN, Keys, running_api
from tests.api.test_logs import send_parts
from travis_logs.settings import Settings

STATE = re.compile(r'<script id="state" type="application/json">(.*?)</script>', re.S)


def page_state(html: str) -> dict[str, Any]:
    match = STATE.search(html)
    assert match, html[:500]
    state: dict[str, Any] = json.loads(match.group(1))
    return state


async def test_running_job_page_carries_its_parts(
    anonymous: httpx.AsyncClient,
    client: httpx.AsyncClient,
    keys: Keys,
    api_settings: Settings,
    job_id: int,
) -> None:
    """A running job's page starts from its parts, the Pusher channel and its grant."""
    await send_parts(client, keys, job_id, ["a\n", "b\n"], final=False)
    response = await anonymous.get(f"/jobs/{job_id}")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert response.headers["cache-control"] == "no-store"
    state = page_state(response.text)
    assert state["complete"] is False
    assert [(p["number"], p["content"]) for p in state["parts"]] == [(1, "a\n"), (2, "b\n")]
    assert valid(api_settings, GRANT, job_id, state["grant"])
    assert not valid(api_settings, GRANT, job_id + 1, state["grant"])
    assert state["pusher"]["channel"] == f"job-{job_id}"
    assert state["pusher"]["key"] == api_settings.pusher_key
    assert state["pusher"]["wsPort"] == api_settings.pusher_port
    assert '<script src="/assets/pusher-js/pusher.min.js"></script>' in response.text


async def test_job_without_log_yet_is_an_empty_live_page(
    anonymous: httpx.AsyncClient, job_id: int
) -> None:
    """A job with no log row yet gets a live page with no parts (it fills as parts arrive)."""
    response = await anonymous.get(f"/jobs/{job_id}")
    assert response.status_code == 200
    state = page_state(response.text)
    assert (state["complete"], state["parts"], state["content"]) == (False, [], "")


async def test_aggregated_log_page_starts_from_its_content(
    anonymous: httpx.AsyncClient, client: httpx.AsyncClient, job_id: int
) -> None:
    """A log with content (here from PUT) is shown whole and not followed live."""
    await client.put(f"/logs/{job_id}", content=b"all of it\n")
    state = page_state((await anonymous.get(f"/jobs/{job_id}")).text)
    assert (state["complete"], state["content"], state["parts"]) == (True, "all of it\n", [])
    assert state["ranged"] is False


async def test_a_log_over_the_inline_limit_is_read_by_range_with_the_pages_grant(
    client: httpx.AsyncClient, api_settings: Settings, job_id: int
) -> None:
    """A finished log over VIEWER_INLINE_BYTES: the page carries no text, only its size; its
    grant reads the index and a byte range, and nothing of another job."""
    body = b"0123456789abcde\n" * 256
    assert (await client.put(f"/logs/{job_id}", content=body)).status_code == 200
    small = api_settings.model_copy(update={"viewer_inline_bytes": len(body) - 1})
    async with running_api(small) as url, httpx.AsyncClient(base_url=url) as browser:
        html = (await browser.get(f"/jobs/{job_id}")).text
        state = page_state(html)
        assert (state["complete"], state["ranged"], state["size"]) == (True, True, len(body))
        assert state["content"] == "" and "0123456789abcde" not in html
        grant = {"X-Log-Grant": state["grant"]}
        index = await browser.get(f"/logs/{job_id}/index", headers=grant)
        assert index.status_code == 200 and index.json()["lines"] == 256
        tail = {"Range": "bytes=-16"}
        got = await browser.get(f"/logs/{job_id}/text", headers=grant | tail)
        assert (got.status_code, got.content) == (206, b"0123456789abcde\n")
        assert (await browser.get(f"/logs/{job_id}/text", headers=tail)).status_code == 403
        other = await browser.get(f"/logs/{job_id + 1}/index", headers=grant)
        assert other.status_code == 403


async def test_log_text_cannot_escape_the_state_script(
    anonymous: httpx.AsyncClient, client: httpx.AsyncClient, job_id: int
) -> None:
    """Log text with `</script>` stays data: the page has no injected element."""
    evil = "</script><script>alert(1)</script><!--"
    await client.put(f"/logs/{job_id}", content=evil.encode())
    html = (await anonymous.get(f"/jobs/{job_id}")).text
    assert "<script>alert" not in html
    assert page_state(html)["content"] == evil


async def test_assets_are_served(anonymous: httpx.AsyncClient) -> None:
    """The viewer's script and stylesheet, and pusher-js from node_modules, are served."""
    for path in ("/assets/viewer.js", "/assets/viewer.css", "/assets/pusher-js/pusher.min.js"):
        response = await anonymous.get(path)
        assert response.status_code == 200, path
    pusher_js = await anonymous.get("/assets/pusher-js/pusher.min.js")
    assert "Pusher" in pusher_js.text
    assert (await anonymous.get("/assets/nothing.js")).status_code == 404


async def test_private_viewer_needs_the_token(private_api: str, job_id: int) -> None:
    """With private channels the page is 403 without the token, a header or the cookie."""
    async with httpx.AsyncClient(base_url=private_api) as browser:
        assert (await browser.get(f"/jobs/{job_id}")).status_code == 403
        assert (await browser.get(f"/jobs/{job_id}?token=wrong")).status_code == 403
        with_header = await browser.get(
            f"/jobs/{job_id}", headers={"Authorization": f"token {TOKEN}"}
        )
        assert with_header.status_code == 200
        assert page_state(with_header.text)["pusher"]["channel"] == f"private-job-{job_id}"


async def test_private_viewer_sign_in_sets_a_cookie_without_the_token(
    private_api: str, job_id: int
) -> None:
    """`?token=` redirects to the clean URL with a Secure, HttpOnly cookie for this job only."""
    async with httpx.AsyncClient(base_url=private_api) as browser:
        response = await browser.get(f"/jobs/{job_id}?token={TOKEN}")
        assert response.status_code == 303
        assert response.headers["location"] == f"/jobs/{job_id}"
        cookie = response.headers["set-cookie"]
        assert cookie.startswith(f"{VIEWER_COOKIE}=")
        for attribute in ("HttpOnly", "Secure", "SameSite=strict", f"Path=/jobs/{job_id}"):
            assert attribute in cookie, cookie
        assert "Max-Age=" in cookie and TOKEN not in cookie
        session = {"Cookie": f"{VIEWER_COOKIE}={response.cookies[VIEWER_COOKIE]}"}
        # Sent by hand: the cookie is Secure and these requests are plain http.
        assert (await browser.get(f"/jobs/{job_id}", headers=session)).status_code == 200
        assert (await browser.get(f"/jobs/{job_id + 1}", headers=session)).status_code == 403


async def test_private_viewer_sign_in_by_form(private_api: str, job_id: int) -> None:
    """POST /jobs/N/session with the token as a form field sets the same cookie."""
    async with httpx.AsyncClient(base_url=private_api) as browser:
        wrong = await browser.post(f"/jobs/{job_id}/session", data={"token": "nope"})
        assert wrong.status_code == 403
        assert (await browser.post(f"/jobs/{job_id}/session", data={})).status_code == 400
        response = await browser.post(f"/jobs/{job_id}/session", data={"token": TOKEN})
        assert (response.status_code, response.headers["location"]) == (303, f"/jobs/{job_id}")
        session = {"Cookie": f"{VIEWER_COOKIE}={response.cookies[VIEWER_COOKIE]}"}
        assert (await browser.get(f"/jobs/{job_id}", headers=session)).status_code == 200


async def test_cookie_secure_flag_can_be_turned_off_for_plain_http(
    private_settings: Settings, job_id: int
) -> None:
    """VIEWER_COOKIE_SECURE=false (a local http viewer) leaves Secure off, the rest on."""
    plain = private_settings.model_copy(update={"viewer_cookie_secure": False})
    async with running_api(plain) as url, httpx.AsyncClient(base_url=url) as browser:
        response = await browser.get(f"/jobs/{job_id}?token={TOKEN}")
        assert "Secure" not in response.headers["set-cookie"]
        assert "HttpOnly" in response.headers["set-cookie"]
        assert (await browser.get(f"/jobs/{job_id}")).status_code == 200  # the jar sends it


async def test_expired_or_other_mode_sessions_do_not_open_the_page(
    private_api: str, api_settings: Settings, private_settings: Settings, job_id: int
) -> None:
    """An expired cookie, one issued while channels were public, or a grant as cookie: 403."""
    long_ago = time.time() - 2 * private_settings.viewer_session_ttl_s
    for value in (
        issue(private_settings, SESSION, job_id, now=long_ago),
        issue(api_settings, SESSION, job_id),
        issue(private_settings, GRANT, job_id),
    ):
        async with httpx.AsyncClient(base_url=private_api) as browser:
            headers = {"Cookie": f"{VIEWER_COOKIE}={value}"}
            assert (await browser.get(f"/jobs/{job_id}", headers=headers)).status_code == 403


async def test_rotating_the_viewer_secret_revokes_old_grants_and_cookies(
    private_settings: Settings, log_worker: None, job_id: int
) -> None:
    """A grant and cookie from before VIEWER_SECRET changed are refused after it changed."""
    before = private_settings.model_copy(
        update={"viewer_secret": SecretStr("first viewer secret " + "1" * 32)}
    )
    after = private_settings.model_copy(
        update={"viewer_secret": SecretStr("second viewer secret " + "2" * 32)}
    )
    page = {"Authorization": f"token {TOKEN}"}
    async with running_api(before) as url, httpx.AsyncClient(base_url=url) as browser:
        grant = page_state((await browser.get(f"/jobs/{job_id}", headers=page)).text)["grant"]
        cookie = (await browser.get(f"/jobs/{job_id}?token={TOKEN}")).cookies[VIEWER_COOKIE]
        parts = await browser.get(f"/log-parts/{job_id}", headers={"X-Log-Grant": grant})
        assert parts.status_code in (200, 404)  # allowed: the job just has no log yet
    async with running_api(after) as url, httpx.AsyncClient(base_url=url) as browser:
        parts = await browser.get(f"/log-parts/{job_id}", headers={"X-Log-Grant": grant})
        assert parts.status_code == 403
        headers = {"Cookie": f"{VIEWER_COOKIE}={cookie}"}
        assert (await browser.get(f"/jobs/{job_id}", headers=headers)).status_code == 403


async def test_viewer_page_sends_defensive_headers(
    anonymous: httpx.AsyncClient, api_settings: Settings, job_id: int
) -> None:
    """CSP without inline script and without framing, nosniff, no referrer, no caching."""
    response = await anonymous.get(f"/jobs/{job_id}")
    policy = response.headers["content-security-policy"]
    assert "script-src 'self';" in policy and "unsafe-inline" not in policy
    assert "frame-ancestors 'none'" in policy
    assert f"ws://{api_settings.pusher_host}:{api_settings.pusher_port}" in policy
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["x-frame-options"] == "DENY"
    assert response.headers["referrer-policy"] == "no-referrer"
    assert "<script>" not in response.text  # every script element is external or JSON data


async def test_viewer_is_500_without_a_viewer_secret_even_in_public_mode(
    api_settings: Settings, job_id: int
) -> None:
    """No VIEWER_SECRET: the page issues no grant (500 naming the setting), AUTH_TOKEN or not."""
    assert not api_settings.pusher_private_channels
    bare = api_settings.model_copy(update={"viewer_secret": None})
    async with running_api(bare) as url, httpx.AsyncClient(base_url=url) as browser:
        response = await browser.get(f"/jobs/{job_id}")
    assert response.status_code == 500
    assert "VIEWER_SECRET" in response.json()["message"]
    assert TOKEN not in response.text


async def test_public_page_needs_no_auth_token(api_settings: Settings, job_id: int) -> None:
    """With public channels the page and its grant need VIEWER_SECRET only."""
    bare = api_settings.model_copy(update={"auth_token": None})
    async with running_api(bare) as url, httpx.AsyncClient(base_url=url) as browser:
        page = await browser.get(f"/jobs/{job_id}")
        assert page.status_code == 200
        grant = page_state(page.text)["grant"]
        parts = await browser.get(f"/log-parts/{job_id}", headers={"X-Log-Grant": grant})
    assert parts.status_code in (200, 404)  # allowed: the job just has no log yet


def _signed_with(key: bytes, claims: dict[str, object]) -> str:
    return jwt.encode(claims, key, algorithm="HS256")


async def test_public_grants_reveal_nothing_about_auth_token(
    anonymous: httpx.AsyncClient, api_settings: Settings, job_id: int
) -> None:
    """A visitor's grant does not verify under any key made from AUTH_TOKEN, and a grant
    forged with such a key (as they were signed while VIEWER_SECRET was optional) is refused."""
    grant = page_state((await anonymous.get(f"/jobs/{job_id}")).text)["grant"]
    claims = jwt.decode(grant, options={"verify_signature": False})
    from_token = [
        TOKEN.encode(),
        hmac.new(TOKEN.encode(), b"travis-logs viewer", hashlib.sha256).digest(),
    ]
    for key in from_token:
        with pytest.raises(jwt.InvalidSignatureError):
            jwt.decode(grant, key, algorithms=["HS256"])
        forged = {"X-Log-Grant": _signed_with(key, claims)}
        assert (await anonymous.get(f"/log-parts/{job_id}", headers=forged)).status_code == 403
    real = await anonymous.get(f"/log-parts/{job_id}", headers={"X-Log-Grant": grant})
    assert real.status_code in (200, 404)
