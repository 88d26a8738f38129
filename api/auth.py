"""Who may call what: travis-api's token, travis-worker's RS512 JWTs, and viewer grants.

- `Authorization: token <AUTH_TOKEN>`: 500 when no token is configured, 403 when missing or
  wrong, compared in constant time (travis-logs' contract).
- `Authorization: Bearer <jwt>` on the part routes: RS512, `sub` = the job id, and an `exp`
  (plus `aud`/`iss` when JWT_AUDIENCE/JWT_ISSUER are set).
- Viewer grants (`api.sessions`): the viewer page of job N carries a short-lived grant for N,
  which it sends back as `X-Log-Grant` to `GET /log-parts/N` and `POST /pusher/auth`.

Every check here reads headers only, so a route can run it before it reads its body; the
exception is travis-worker's `token sig:` batch, whose credentials are JWTs inside the body:
`require_body_token` finds and verifies one without parsing the body.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Iterator
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey
from cryptography.hazmat.primitives.serialization import load_pem_public_key

from api.errors import ApiError
from travis_logs.errors import ConfigError
from travis_logs.settings import Settings

TOKEN_NOT_SET = "authentication token is not set"
KEY_NOT_SET = "key is not set"
GRANT_HEADER = "X-Log-Grant"
# travis-api's job JWTs are a few hundred bytes; a longer one is not decoded at all.
MAX_JWT_BYTES = 8192
# `"tok": "<jwt>"` in a batch's raw body; a JWT is base64url with dots, never escaped.
_BODY_TOKEN = re.compile(rb'"tok"\s*:\s*"([A-Za-z0-9_.\-]{1,%d})"' % MAX_JWT_BYTES)
# How many `"tok"` a batch's body is searched for, and how many distinct ones verified,
# before it is refused: a caller without a credential costs a few searches and RSA checks.
BODY_TOKEN_TRIES = 16
BODY_TOKENS_CHECKED = 4


def configured_token(settings: Settings) -> str:
    """AUTH_TOKEN, stripped; 500 when it is unset or blank, as the original answers."""
    token = settings.auth_token.get_secret_value().strip() if settings.auth_token else ""
    if not token:
        raise ApiError(500, TOKEN_NOT_SET)
    return token


def same(given: str | None, expected: str) -> bool:
    """Constant-time comparison that also copes with non-ASCII header values."""
    return hmac.compare_digest((given or "").encode(), expected.encode())


def require_token(settings: Settings, authorization: str | None) -> None:
    if not same(authorization, f"token {configured_token(settings)}"):
        raise ApiError(403, "forbidden")


def load_jwt_key(settings: Settings) -> RSAPublicKey | None:
    """The JWT_RSA_PUBLIC_KEY, parsed once at startup; None when it is not configured."""
    pem = (settings.jwt_rsa_public_key or "").strip().replace("\\n", "\n")
    if not pem:
        return None
    try:
        key = load_pem_public_key(pem.encode())
    except ValueError as err:
        raise ConfigError(f"JWT_RSA_PUBLIC_KEY: not a PEM public key ({err})") from err
    if not isinstance(key, RSAPublicKey):
        raise ConfigError("JWT_RSA_PUBLIC_KEY: not an RSA key (RS512 needs one)")
    return key


def jwt_allows(settings: Settings, key: RSAPublicKey, token: str, job_id: int | None) -> bool:
    """True when `token` verifies with RS512, has not expired and, given `job_id`, names it."""
    subject = jwt_subject(settings, key, token)
    return subject is not None and (job_id is None or subject == str(job_id))


def jwt_subject(settings: Settings, key: RSAPublicKey, token: str) -> str | None:
    """The `sub` of a JWT that verifies (RS512, unexpired, audience and issuer); else None."""
    if len(token) > MAX_JWT_BYTES:
        return None
    try:
        claims = jwt.decode(token, key, **_jwt_rules(settings))
    except jwt.PyJWTError:
        return None
    sub = claims.get("sub")
    return sub if isinstance(sub, str) else None


def _jwt_rules(settings: Settings) -> dict[str, Any]:
    # A token without `exp` would be good forever once leaked: it is refused.
    return {
        "algorithms": ["RS512"],
        "options": {"require": ["exp"], "verify_aud": settings.jwt_audience is not None},
        "audience": settings.jwt_audience,
        "issuer": settings.jwt_issuer,
        "leeway": settings.jwt_leeway_s,
    }


def require_part_writer(
    settings: Settings, key: RSAPublicKey | None, authorization: str | None, job_id: int | None
) -> None:
    """The part routes' chain: a JWT for the job (Bearer) or travis-api's token."""
    if authorization is None:
        raise ApiError(403, "forbidden")
    if authorization.startswith("Bearer "):
        if key is None:
            raise ApiError(500, KEY_NOT_SET)
        if not jwt_allows(settings, key, authorization.removeprefix("Bearer "), job_id):
            raise ApiError(403, "forbidden")
        return
    require_token(settings, authorization)


def require_body_token(settings: Settings, key: RSAPublicKey | None, body: bytes) -> None:
    """travis-worker's `token sig:` batches: a JWT of the body must verify, before parsing.

    The signature is an unkeyed checksum of the items' tokens, so anyone can make one; the
    credential is the items' JWTs. The body is searched (not parsed) for its first tokens:
    a batch none of whose first BODY_TOKENS_CHECKED tokens verifies is refused at once,
    whatever its size, and each item's own token is checked again when it is parsed.
    """
    if key is None:
        raise ApiError(500, KEY_NOT_SET)
    if not any(jwt_subject(settings, key, tok) for tok in body_tokens(body)):
        raise ApiError(403, "forbidden")


def body_tokens(body: bytes) -> Iterator[str]:
    """The first distinct `"tok"` values of a raw JSON body, found without parsing it."""
    seen: set[str] = set()
    start = 0
    for _ in range(BODY_TOKEN_TRIES):
        at = body.find(b'"tok"', start)
        if at < 0:
            return
        start = at + 5
        match = _BODY_TOKEN.match(body, at)
        if match is None:
            continue
        token = match.group(1).decode("ascii")
        if token not in seen:
            seen.add(token)
            yield token
            if len(seen) >= BODY_TOKENS_CHECKED:
                return


def multi_signature(tokens: list[str]) -> str:
    """travis-worker's `token sig:` header: SHA-1 over the items' `tok`s in body order."""
    # A checksum, not a credential: each item's own JWT decides whether it is accepted.
    return "token sig:" + hashlib.sha1("".join(tokens).encode()).hexdigest()
