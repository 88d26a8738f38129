"""Who may call what: travis-api's token, travis-worker's RS512 JWTs, and viewer grants.

- `Authorization: token <AUTH_TOKEN>`: 500 when no token is configured, 403 when missing or
  wrong, compared in constant time (travis-logs' contract).
- `Authorization: Bearer <jwt>` on the part routes: RS512, `sub` = the job id.
- Viewer grants: the viewer page of job N carries `hmac(AUTH_TOKEN, "job-log:N")` and sends it
  back as `X-Log-Grant` when it fills gaps from `GET /log-parts/N` or asks `POST /pusher/auth`
  for `private-job-N`. A grant reads one job's log and nothing else.
"""

from __future__ import annotations

import hashlib
import hmac

import jwt
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey
from cryptography.hazmat.primitives.serialization import load_pem_public_key

from api.errors import ApiError
from travis_logs.errors import ConfigError
from travis_logs.settings import Settings

TOKEN_NOT_SET = "authentication token is not set"
KEY_NOT_SET = "key is not set"
GRANT_HEADER = "X-Log-Grant"
VIEWER_COOKIE = "travis_logs_viewer"


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


def jwt_allows(key: RSAPublicKey, token: str, job_id: int | None) -> bool:
    """True when `token` verifies with RS512 and, if `job_id` is given, its `sub` names it."""
    try:
        claims = jwt.decode(token, key, algorithms=["RS512"])
    except jwt.PyJWTError:
        return False
    return job_id is None or claims.get("sub") == str(job_id)


def require_part_writer(
    settings: Settings, key: RSAPublicKey | None, authorization: str | None, job_id: int | None
) -> None:
    """The part routes' chain: a JWT for the job (Bearer) or travis-api's token."""
    if authorization is None:
        raise ApiError(403, "forbidden")
    if authorization.startswith("Bearer "):
        if key is None:
            raise ApiError(500, KEY_NOT_SET)
        if not jwt_allows(key, authorization.removeprefix("Bearer "), job_id):
            raise ApiError(403, "forbidden")
        return
    require_token(settings, authorization)


def multi_signature(tokens: list[str]) -> str:
    """travis-worker's `token sig:` header: SHA-1 over the items' `tok`s in body order."""
    # A checksum, not a credential: each item's own JWT decides whether it is accepted.
    return "token sig:" + hashlib.sha1("".join(tokens).encode()).hexdigest()


def job_grant(settings: Settings, job_id: int) -> str:
    token = configured_token(settings)
    return hmac.new(token.encode(), f"job-log:{job_id}".encode(), hashlib.sha256).hexdigest()


def viewer_session(settings: Settings) -> str:
    """The viewer cookie's value: derived from AUTH_TOKEN, so the token itself is not stored."""
    token = configured_token(settings)
    return hmac.new(token.encode(), b"viewer-session", hashlib.sha256).hexdigest()


def require_reader(
    settings: Settings, authorization: str | None, grant: str | None, job_id: int
) -> None:
    """travis-api's token, or the viewer's grant for this one job."""
    if grant is not None and same(grant, job_grant(settings, job_id)):
        return
    require_token(settings, authorization)
