"""Pusher's signatures, checked and made with the `pusher` package's own signing."""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Mapping
from dataclasses import dataclass

from pusher.http import make_query_string
from pusher.signature import sign

# Pusher refuses requests whose auth_timestamp is more than 600 s off.
MAX_CLOCK_SKEW_S = 600


@dataclass(frozen=True)
class AppCredentials:
    """The one app this server serves."""

    app_id: str
    key: str
    secret: str


def request_problem(
    app: AppCredentials,
    method: str,
    path: str,
    params: Mapping[str, str],
    body: bytes,
    now: float | None = None,
) -> str | None:
    """Why a signed HTTP API request is not genuine, or None when it is."""
    if params.get("auth_key") != app.key:
        return "unknown auth_key"
    if params.get("auth_version") != "1.0":
        return "auth_version must be 1.0"
    try:
        skew = abs((time.time() if now is None else now) - int(params.get("auth_timestamp", "")))
    except ValueError:
        return "auth_timestamp must be an integer"
    if skew > MAX_CLOCK_SKEW_S:
        return f"auth_timestamp is more than {MAX_CLOCK_SKEW_S} s away from the server's clock"
    if body and params.get("body_md5") != hashlib.md5(body).hexdigest():
        return "body_md5 does not match the body"
    signed = {k.lower(): v for k, v in params.items() if k != "auth_signature"}
    expected = sign(app.secret, "\n".join([method, path, make_query_string(signed)]))
    if not _same(expected, params.get("auth_signature", "")):
        return "invalid auth_signature"
    return None


def channel_auth_ok(app: AppCredentials, socket_id: str, channel: str, auth: object) -> bool:
    """Whether `auth` is "<key>:<HMAC-SHA256 of socket_id:channel>" for this app."""
    expected = f"{app.key}:{sign(app.secret, f'{socket_id}:{channel}')}"
    return isinstance(auth, str) and _same(expected, auth)


def _same(expected: str, given: str) -> bool:
    # Bytes, because compare_digest refuses str with non-ASCII characters.
    return hmac.compare_digest(expected.encode(), given.encode())


def webhook_signature(app: AppCredentials, body: bytes) -> str:
    """X-Pusher-Signature: hex HMAC-SHA256 of the raw body with the app secret."""
    return hmac.new(app.secret.encode(), body, hashlib.sha256).hexdigest()
