"""Viewer grants and the viewer cookie: short-lived, for one job and one channel mode.

The viewer page of job N carries a grant for N, which it sends as `X-Log-Grant` to
`GET /log-parts/N` (gap filling) and `POST /pusher/auth` (the private channel). With private
channels the page itself needs travis-api's token once; it is exchanged for a cookie that
opens the page of that one job. Both are HS256 JWTs (PyJWT) with the claims

    sub   the job id            use   "grant" or "session"
    chan  "private" / "public"  exp   issue time + VIEWER_GRANT_TTL_S / VIEWER_SESSION_TTL_S

`chan` is the PUSHER_PRIVATE_CHANNELS that issued it: a grant handed out by a public page
opens nothing once channels are private. They are signed with a key derived from
VIEWER_SECRET and nothing else: a public page hands a grant to every visitor, so a key that
AUTH_TOKEN went into would let anyone with a grant test guesses of the token offline. Without
VIEWER_SECRET no grant is issued (the viewer answers 500) and none is valid; rotating it
revokes every grant and cookie at once.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from typing import Literal

import jwt

from api.auth import require_token
from api.errors import ApiError
from travis_logs.settings import Settings

VIEWER_COOKIE = "travis_logs_viewer"
Use = Literal["grant", "session"]
GRANT: Use = "grant"
SESSION: Use = "session"


VIEWER_SECRET_NOT_SET = "VIEWER_SECRET is not set: the viewer signs its grants with it"


def _key(settings: Settings) -> bytes | None:
    """The signing key, derived from VIEWER_SECRET alone; None while it is unset."""
    secret = settings.viewer_secret.get_secret_value().strip() if settings.viewer_secret else ""
    if not secret:
        return None
    # Derived, so that VIEWER_SECRET itself signs nothing a browser sees.
    return hmac.new(secret.encode(), b"travis-logs viewer", hashlib.sha256).digest()


def require_secret(settings: Settings) -> bytes:
    """The signing key; 500 naming VIEWER_SECRET when it is unset."""
    key = _key(settings)
    if key is None:
        raise ApiError(500, VIEWER_SECRET_NOT_SET)
    return key


def channel_mode(settings: Settings) -> str:
    return "private" if settings.pusher_private_channels else "public"


def ttl(settings: Settings, use: Use) -> int:
    return settings.viewer_grant_ttl_s if use == GRANT else settings.viewer_session_ttl_s


def issue(settings: Settings, use: Use, job_id: int, now: float | None = None) -> str:
    """A grant or session for `job_id`, valid for its TTL from `now` (default: this instant)."""
    issued = int(time.time() if now is None else now)
    claims = {
        "sub": str(job_id),
        "use": use,
        "chan": channel_mode(settings),
        "iat": issued,
        "exp": issued + ttl(settings, use),
    }
    return jwt.encode(claims, require_secret(settings), algorithm="HS256")


def valid(settings: Settings, use: Use, job_id: int, token: str | None) -> bool:
    """Whether `token` is an unexpired `use` for this job, issued in the current channel mode."""
    return granted_job(settings, use, token) == str(job_id)


def granted_job(settings: Settings, use: Use, token: str | None) -> str | None:
    """The job (`sub`) an unexpired `use` of the current channel mode opens; None if none.

    A route whose job is named in its body checks this before it reads the body.
    """
    key = _key(settings)
    if not token or key is None:
        return None
    try:
        claims = jwt.decode(token, key, algorithms=["HS256"], options={"require": ["exp", "sub"]})
    except jwt.PyJWTError:
        return None
    if claims.get("use") != use or claims.get("chan") != channel_mode(settings):
        return None
    sub = claims.get("sub")
    return sub if isinstance(sub, str) else None


def require_reader(
    settings: Settings, authorization: str | None, grant: str | None, job_id: int
) -> None:
    """travis-api's token, or the viewer's grant for this one job."""
    if valid(settings, GRANT, job_id, grant):
        return
    require_token(settings, authorization)
