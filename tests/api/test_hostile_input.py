"""Hostile requests get a 4xx JSON answer and leave nothing alarming in the server's log.

Credentials are checked before a body is parsed, bodies are parsed without recursion, and
the access log never shows a query string (where `?token=` would be).
"""

from __future__ import annotations

import hashlib
import hmac
import logging
from collections.abc import Iterator

import httpx
import pytest

from tests.api.conftest import TOKEN, Keys
from tests.pusher_support import APP

# Far deeper than Python's recursion limit, well below the test API's body limit.
DEEP = b"[" * 100_000 + b"]" * 100_000
DEEP_OBJECT = b'{"a":' * 30_000 + b"1" + b"}" * 30_000


class Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def text(self) -> str:
        return "\n".join(self.format(r) for r in self.records)


@pytest.fixture
def server_log() -> Iterator[Records]:
    """What the in-process server logs: the app's loggers (root) and uvicorn's own."""
    handler = Records()
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s %(message)s"))
    loggers = [logging.getLogger(), logging.getLogger("uvicorn")]
    for logger in loggers:
        logger.addHandler(handler)
    yield handler
    for logger in loggers:
        logger.removeHandler(handler)


def assert_quiet(log: Records) -> None:
    loud = [r for r in log.records if r.levelno >= logging.ERROR]
    assert not loud, log.text()
    assert "RecursionError" not in log.text() and "Traceback" not in log.text()


def wrong(token: str = "token nope") -> dict[str, str]:
    return {"Authorization": token, "Content-Type": "application/json"}


RIGHT = wrong(f"token {TOKEN}")
ROUTES = ["/log-parts/multi", "/log-parts/{job}/1", "/logs/multi", "/logs/{job}"]
METHODS = {"/log-parts/multi": "POST", "/logs/multi": "POST"}


@pytest.mark.parametrize("path", ROUTES)
@pytest.mark.parametrize("body", [DEEP, DEEP_OBJECT], ids=["array", "object"])
async def test_deep_json_with_a_wrong_or_no_token_is_403(
    anonymous: httpx.AsyncClient, server_log: Records, job_id: int, path: str, body: bytes
) -> None:
    """Authentication comes first: the nesting is never looked at."""
    method, url = METHODS.get(path, "PUT"), path.format(job=job_id)
    for headers in (wrong(), {"Content-Type": "application/json"}):
        response = await anonymous.request(method, url, content=body, headers=headers)
        assert response.status_code == 403, response.text
        assert response.json()["message"]
    assert_quiet(server_log)


@pytest.mark.parametrize("path", ["/log-parts/multi", "/log-parts/{job}/1", "/logs/multi"])
async def test_deep_json_with_the_right_token_is_400(
    anonymous: httpx.AsyncClient, server_log: Records, job_id: int, path: str
) -> None:
    """An authenticated caller's absurd nesting is a bad request, not a crash."""
    method, url = METHODS.get(path, "PUT"), path.format(job=job_id)
    for body in (DEEP, DEEP_OBJECT):
        response = await anonymous.request(method, url, content=body, headers=RIGHT)
        assert response.status_code == 400, response.text
        assert response.json()["message"]
    assert_quiet(server_log)


async def test_deep_json_with_a_worker_signature_but_no_valid_jwt_is_403(
    anonymous: httpx.AsyncClient, server_log: Records
) -> None:
    """`token sig:` is a checksum anyone can make: without an item JWT it is refused unread."""
    signature = wrong("token sig:" + hashlib.sha1(b"").hexdigest())
    response = await anonymous.post("/log-parts/multi", content=DEEP, headers=signature)
    assert response.status_code == 403
    assert_quiet(server_log)


async def test_deep_json_with_a_worker_signature_and_a_valid_jwt_is_400(
    anonymous: httpx.AsyncClient, server_log: Records, keys: Keys, job_id: int
) -> None:
    """With a JWT that verifies the body is parsed, safely: absurd nesting is a 400."""
    tok = keys.token_for(str(job_id))
    body = b'[{"tok": "%s"}, ' % tok.encode() + DEEP + b"]"
    signature = wrong("token sig:" + hashlib.sha1(tok.encode()).hexdigest())
    response = await anonymous.post("/log-parts/multi", content=body, headers=signature)
    assert response.status_code == 400
    assert_quiet(server_log)


async def test_deep_webhook_signed_or_not_is_401(
    anonymous: httpx.AsyncClient, server_log: Records
) -> None:
    """A correctly signed but absurdly nested webhook is refused like a bad one."""
    signature = hmac.new(APP.secret.encode(), DEEP, hashlib.sha256).hexdigest()
    for sig in (signature, "0" * 64):
        headers = {"X-Pusher-Key": APP.key, "X-Pusher-Signature": sig}
        response = await anonymous.post("/pusher/existence", content=DEEP, headers=headers)
        assert response.status_code == 401
        assert response.json()["message"]
    assert_quiet(server_log)


async def test_access_log_shows_no_query_string(private_api: str, job_id: int) -> None:
    """`?token=` on the viewer reaches the access log as the bare path."""
    access = logging.getLogger("uvicorn.access")
    handler, level = Records(), access.level
    access.addHandler(handler)
    access.setLevel(logging.INFO)  # the test servers log at WARNING
    try:
        async with httpx.AsyncClient(base_url=private_api) as browser:
            await browser.get(f"/jobs/{job_id}?token={TOKEN}")
            await browser.get(f"/jobs/{job_id}?token=wrong-guess")
    finally:
        access.removeHandler(handler)
        access.setLevel(level)
    lines = [r.getMessage() for r in handler.records]
    assert len(lines) == 2 and all(f"/jobs/{job_id} HTTP" in line for line in lines), lines
    assert not [line for line in lines if "token" in line or "?" in line]


async def test_access_log_bounds_a_huge_path_and_method(api_url: str) -> None:
    """A 20,000-character path reaches the access log cut, its length named; a 1,000-character
    method is refused by uvicorn's parser (httptools) unlogged, or logged cut."""
    access = logging.getLogger("uvicorn.access")
    handler, level = Records(), access.level
    access.addHandler(handler)
    access.setLevel(logging.INFO)
    try:
        async with httpx.AsyncClient(base_url=api_url) as c:
            await c.get("/" + "p" * 20_000)
            await c.request("M" * 1_000, "/uptime")
    finally:
        access.removeHandler(handler)
        access.setLevel(level)
    lines = [r.getMessage() for r in handler.records]
    assert 1 <= len(lines) <= 2 and all(len(line) < 600 for line in lines), lines
    assert "(20001 bytes)" in lines[0]
    assert len(lines) == 1 or "(1000 bytes)" in lines[1]
