"""Log parts over HTTP: travis-api reads them, travis-worker may write them.

Written parts take the same path as parts from RabbitMQ (`PartIntake.accept`: store, push to
Pusher, signal the workflow); a re-sent part is a no-op, so clients retry freely.

Bodies are read only after the caller is authenticated. The credentials are headers, except
for travis-worker's `token sig:` batches: the signature is an unkeyed checksum anyone can
make, so the body is first searched (not parsed) for an item JWT that verifies
(`api.auth.require_body_token`). Batches are parsed in a worker thread by pydantic's JSON
parser, which refuses absurd nesting with a 400 instead of recursing; each item's JWT is
verified before the item is validated, each distinct one once.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass
from typing import Annotated, Any

from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey
from fastapi import APIRouter, Depends, Path, Query, Request, Response
from pydantic import TypeAdapter, ValidationError
from starlette.concurrency import run_in_threadpool

from api.auth import jwt_subject, multi_signature, require_body_token, require_part_writer, same
from api.deps import (
    AuthorizationDep,
    IntakeDep,
    JobId,
    JwtKeyDep,
    JwtSchemeDep,
    PoolDep,
    ReaderAuth,
    SettingsDep,
)
from api.errors import ApiError, describe_validation
from api.metrics import DROPPED_PARTS
from api.reading import PartsQuery, read_parts
from api.schemas import LogPartIn, LogPartItem, LogPartOut, LogParts, Message
from travis_logs.errors import InvalidLogPart
from travis_logs.parts import LogPart, decode_log, part_number
from travis_logs.settings import Settings

log = logging.getLogger(__name__)

router = APIRouter(
    tags=["log parts"],
    responses={
        400: {"model": Message, "description": "malformed id, parameter or body"},
        403: {"model": Message, "description": "missing or wrong credentials"},
        500: {"model": Message, "description": "AUTH_TOKEN or JWT_RSA_PUBLIC_KEY not configured"},
    },
)
INT32 = Annotated[int, Query(ge=-(2**31), le=2**31 - 1, description="only parts after this number")]
MULTI_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {
                "schema": {"type": "array", "items": LogPartItem.model_json_schema(by_alias=True)}
            }
        },
    }
}
PART_BODY = {
    "requestBody": {
        "required": True,
        "content": {"application/json": {"schema": LogPartIn.model_json_schema(by_alias=True)}},
    }
}
_ARRAY = TypeAdapter(list[Any])
# Distinct item tokens verified per batch (RSA checks cost); one worker runs a few jobs.
MAX_BATCH_TOKENS = 64


class PartRefused(Exception):
    """A part that is not stored; `reason` labels the drop counter."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


def _numbers(text: str) -> list[int]:
    """`part_numbers=1,2,3` as travis-api sends it."""
    try:
        return [part_number(n.strip()) for n in text.split(",") if n.strip()]
    except InvalidLogPart:
        raise ApiError(400, "part_numbers must be comma-separated part numbers") from None


@router.get(
    "/log-parts/{job_id}",
    response_model=LogParts,
    response_model_exclude_unset=True,
    dependencies=[ReaderAuth],
    responses={404: {"model": Message, "description": "the job has no log"}},
)
async def get_parts(
    job_id: JobId,
    pool: PoolDep,
    after: INT32 | None = None,
    part_numbers: Annotated[str, Query(description="comma-separated, e.g. 1,2,3")] = "",
    require_all: Annotated[bool, Query(description="all part_numbers or none")] = False,
    content: Annotated[bool, Query(description="false: numbers and flags only")] = True,
) -> LogParts:
    """The job's stored parts in number order, or a pseudo-part once the log is aggregated."""
    query = PartsQuery(after, _numbers(part_numbers), require_all, content)
    found = await read_parts(pool, job_id, query)
    if found is None:
        raise ApiError(404, "log not found")
    parts = [LogPartOut(**p) for p in found]
    return LogParts(type_="log_parts", log_parts=parts, job_id=job_id)


def _to_part(settings: Settings, job_id: int, number: int, part: LogPartIn) -> LogPart:
    try:
        text = decode_log(part.content, part.encoding)
    except InvalidLogPart as err:
        raise PartRefused("bad_content", err.reason) from None
    if len(text.encode()) > settings.max_part_bytes:
        raise PartRefused("too_large", f"the part exceeds MAX_PART_BYTES={settings.max_part_bytes}")
    return LogPart(job_id=job_id, number=number, content=text, final=part.final)


def part_writer_auth(
    settings: SettingsDep,
    key: JwtKeyDep,
    authorization: AuthorizationDep,
    jwt_scheme: JwtSchemeDep,
    job_id: JobId,
) -> None:
    """A JWT whose `sub` is this job (Bearer), or travis-api's token."""
    require_part_writer(settings, key, authorization, job_id)


@router.put(
    "/log-parts/{job_id}/{number}",
    status_code=204,
    dependencies=[Depends(part_writer_auth)],
    responses={413: {"model": Message, "description": "part larger than MAX_PART_BYTES"}},
    openapi_extra=PART_BODY,
)
async def put_part(
    job_id: JobId,
    number: Annotated[str, Path(pattern=r"^([0-9]+|last)$", description='a number or "last"')],
    request: Request,
    settings: SettingsDep,
    intake: IntakeDep,
) -> Response:
    """Store one part: `{"@type": "log_part", "content": <base64>, "encoding": "base64"}`."""
    try:
        part = LogPartIn.model_validate_json(await request.body())
    except ValidationError as err:
        raise ApiError(400, describe_validation(err.errors())) from None
    try:
        stored = _to_part(settings, job_id, part_number(number), part)
    except InvalidLogPart as err:
        raise ApiError(400, err.reason) from None
    except PartRefused as err:
        raise ApiError(413 if err.reason == "too_large" else 400, str(err)) from None
    await intake.accept([stored])
    return Response(status_code=204)


def _json_array(body: bytes) -> list[Any]:
    try:
        return _ARRAY.validate_json(body)
    except ValidationError:
        raise ApiError(400, "the body must be a JSON array of log parts") from None


def _check_signature(authorization: str, items: list[Any]) -> None:
    toks = [i.get("tok") if isinstance(i, dict) else None for i in items]
    if not same(authorization, multi_signature([t if isinstance(t, str) else "" for t in toks])):
        raise ApiError(403, "forbidden")


class _Subjects:
    """Each distinct `tok` of a batch verified once (a worker's batch holds a few jobs'),
    and at most MAX_BATCH_TOKENS of them: the rest of the items are dropped unread."""

    def __init__(self, settings: Settings, key: RSAPublicKey | None) -> None:
        self._settings, self._key = settings, key
        self._known: dict[str, str | None] = {}

    def of(self, tok: object) -> str | None:
        if self._key is None or not isinstance(tok, str):
            return None
        if tok not in self._known:
            if len(self._known) >= MAX_BATCH_TOKENS:
                raise PartRefused("too_many_tokens", "too many distinct tokens in one batch")
            self._known[tok] = jwt_subject(self._settings, self._key, tok)
        return self._known[tok]


def _item_part(settings: Settings, subjects: _Subjects, raw: Any) -> LogPart:
    # The item's own JWT first: nothing of an item without one is validated.
    subject = subjects.of(raw.get("tok") if isinstance(raw, dict) else None)
    if subject is None:
        raise PartRefused("unauthorized", "no valid token for the item")
    try:
        item = LogPartItem.model_validate(raw)
    except ValidationError:
        raise PartRefused("invalid", "not a log part") from None
    if subject != str(item.job_id):
        raise PartRefused("unauthorized", f"no valid token for job {item.job_id}")
    return _to_part(settings, item.job_id, item.number, item)


@dataclass(frozen=True)
class _Batch:
    parts: list[LogPart]
    items: int
    dropped: Counter[str]


def _parse_batch(
    settings: Settings, key: RSAPublicKey | None, signature: str | None, body: bytes
) -> _Batch:
    """Parse and validate a batch (megabytes of JSON: run in a worker thread)."""
    items = _json_array(body)
    if signature is not None:
        _check_signature(signature, items)
    subjects, parts, dropped = _Subjects(settings, key), [], Counter[str]()
    for raw in items:
        try:
            parts.append(_item_part(settings, subjects, raw))
        except PartRefused as err:
            dropped[err.reason] += 1
    return _Batch(parts, len(items), dropped)


@router.post(
    "/log-parts/multi",
    status_code=204,
    openapi_extra=MULTI_BODY,
    responses={413: {"model": Message, "description": "body larger than API_MAX_BODY_BYTES"}},
)
async def post_parts(
    request: Request,
    settings: SettingsDep,
    key: JwtKeyDep,
    intake: IntakeDep,
    authorization: AuthorizationDep,
    jwt_scheme: JwtSchemeDep,
) -> Response:
    """Store a batch of parts; each item needs its own JWT (`tok`), bad items are dropped."""
    if authorization is None:
        raise ApiError(403, "forbidden")
    signed = authorization.startswith("token sig:")
    if not signed:
        require_part_writer(settings, key, authorization, None)
    body = await request.body()
    if signed:
        require_body_token(settings, key, body)
    # Parsing and validating up to API_MAX_BODY_BYTES takes long: not on the event loop.
    batch = await run_in_threadpool(
        _parse_batch, settings, key, authorization if signed else None, body
    )
    if batch.parts:
        await intake.accept(batch.parts)
    for reason, count in batch.dropped.items():
        DROPPED_PARTS.labels(reason).inc(count)
    dropped = batch.dropped.total()
    if dropped:
        log.warning("dropped %d of %d log parts: %s", dropped, batch.items, dict(batch.dropped))
    return Response(status_code=204, headers={"X-Dropped-Log-Parts": str(dropped)})
