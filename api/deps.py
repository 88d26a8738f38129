"""`Annotated` dependencies: the lifespan's clients, path types and the auth checks."""

from __future__ import annotations

from typing import Annotated, Any, cast

import asyncpg
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey
from fastapi import Depends, Path, Request
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from temporalio.client import Client

from api.auth import GRANT_HEADER, require_token
from api.probes import BrokerProbe
from api.sessions import require_reader
from api.state import State
from ingest.intake import PartIntake
from travis_logs.archive_store import ArchiveStore
from travis_logs.parts import MAX_JOB_ID
from travis_logs.pusher.occupancy import OccupancyStore
from travis_logs.settings import Settings


def _state(request: Request) -> State:
    return cast(State, request.scope["state"])


def get_settings(request: Request) -> Settings:
    return _state(request)["settings"]


def get_pool(request: Request) -> asyncpg.Pool:
    return _state(request)["pool"]


def get_temporal(request: Request) -> Client:
    return _state(request)["temporal"]


def get_archive(request: Request) -> ArchiveStore:
    return _state(request)["archive"]


def get_intake(request: Request) -> PartIntake:
    return _state(request)["intake"]


def get_occupancy(request: Request) -> OccupancyStore:
    return _state(request)["occupancy"]


def get_jwt_key(request: Request) -> RSAPublicKey | None:
    return _state(request)["jwt_key"]


def get_s3(request: Request) -> Any:
    return _state(request)["s3"]


def get_broker(request: Request) -> BrokerProbe:
    return _state(request)["broker"]


def get_started_at(request: Request) -> float:
    return _state(request)["started_at"]


SettingsDep = Annotated[Settings, Depends(get_settings)]
PoolDep = Annotated[asyncpg.Pool, Depends(get_pool)]
TemporalDep = Annotated[Client, Depends(get_temporal)]
ArchiveDep = Annotated[ArchiveStore, Depends(get_archive)]
IntakeDep = Annotated[PartIntake, Depends(get_intake)]
OccupancyDep = Annotated[OccupancyStore, Depends(get_occupancy)]
JwtKeyDep = Annotated[RSAPublicKey | None, Depends(get_jwt_key)]
S3Dep = Annotated[Any, Depends(get_s3)]
BrokerDep = Annotated[BrokerProbe, Depends(get_broker)]
StartedAtDep = Annotated[float, Depends(get_started_at)]

# Declared as security schemes so that /docs offers an "Authorize" button for each. The
# Authorization header carries either travis-api's token or a worker's JWT: two schemes.
_token = APIKeyHeader(
    name="Authorization",
    scheme_name="token",
    auto_error=False,
    description="travis-api's `token <AUTH_TOKEN>` (enter it with the `token ` prefix)",
)
_jwt = HTTPBearer(
    scheme_name="jwt",
    bearerFormat="JWT",
    auto_error=False,
    description="travis-worker's RS512 JWT: `sub` is the job id, `exp` required",
)
_grant = APIKeyHeader(
    name=GRANT_HEADER,
    scheme_name="grant",
    auto_error=False,
    description="the viewer page's grant for one job (expires; see README)",
)
AuthorizationDep = Annotated[str | None, Depends(_token)]
# Only declares the Bearer scheme in the document: the check reads AuthorizationDep.
JwtSchemeDep = Annotated[HTTPAuthorizationCredentials | None, Depends(_jwt)]
GrantDep = Annotated[str | None, Depends(_grant)]

JobId = Annotated[int, Path(ge=1, le=MAX_JOB_ID, description="a Travis job id")]


def token_auth(settings: SettingsDep, authorization: AuthorizationDep) -> None:
    """travis-api's `Authorization: token <AUTH_TOKEN>`."""
    require_token(settings, authorization)


def reader_auth(
    settings: SettingsDep, authorization: AuthorizationDep, grant: GrantDep, job_id: JobId
) -> None:
    """travis-api's token, or the viewer page's grant for this job."""
    require_reader(settings, authorization, grant, job_id)


TokenAuth = Depends(token_auth)
ReaderAuth = Depends(reader_auth)
