"""travis-api's log routes: read a log, find its id, replace or remove its content.

Replacing goes through the job's LogWorkflow (an update, starting the workflow when no run is
open), so the S3 archive follows the database. The new text itself is stored by the API first
and the update carries its claim check (`api.uploads`), never the text. `POST /logs/multi` sends one update per item:
the items are not one transaction as in the original, but each is idempotent, so a client
that gets an error sends the whole request again.
"""

from __future__ import annotations

import asyncio
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query, Request, Response
from pydantic import TypeAdapter, ValidationError
from temporalio.client import Client

from api import queries, redactions, uploads
from api.deps import (
    ArchiveDep,
    JobId,
    PoolDep,
    SettingsDep,
    TemporalDep,
    TokenAuth,
)
from api.errors import ApiError, describe_validation
from api.reading import read_log
from api.schemas import LogId, LogItem, LogOut, LogRecord, Message, UserId
from travis_logs.parts import MAX_JOB_ID, clean, clean_text
from travis_logs.settings import Settings
from workflows.client import replace_content
from workflows.models import ReplaceContentInput

router = APIRouter(
    tags=["logs"],
    dependencies=[TokenAuth],
    responses={
        400: {"model": Message, "description": "malformed id, parameter or body"},
        403: {"model": Message, "description": "missing or wrong token"},
        500: {"model": Message, "description": "AUTH_TOKEN is not configured"},
    },
)
NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {"model": Message, "description": "no log"}}
TOO_LARGE: dict[int | str, dict[str, Any]] = {
    413: {"model": Message, "description": "body larger than API_MAX_BODY_BYTES"}
}
RAW_BODY = {
    "requestBody": {
        "required": False,
        "content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}},
    }
}
MULTI_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {"schema": {"type": "array", "items": LogItem.model_json_schema()}}
        },
    }
}
# Read by hand after the token check (FastAPI parses declared bodies before dependencies).
_ITEMS = TypeAdapter(list[LogItem])
# Updates in flight at once for one POST /logs/multi.
MULTI_CONCURRENCY = 8


@router.put(
    "/logs/{job_id}",
    response_model=LogRecord,
    responses={**NOT_FOUND, **TOO_LARGE},
    openapi_extra=RAW_BODY,
)
async def replace_log(
    job_id: JobId,
    request: Request,
    settings: SettingsDep,
    pool: PoolDep,
    temporal: TemporalDep,
    removed_by: Annotated[UserId | None, Query(description="user id: marks a removal")] = None,
) -> LogRecord:
    """Replace the content with the raw body (empty clears it); `removed_by` marks a removal."""
    content = clean(await request.body())
    change = await uploads.stage(pool, job_id, content, removed_by)
    result = await replace_content(temporal, settings, job_id, change)
    row = await queries.log_by_id(pool, result.log_id)
    if row is None:
        raise ApiError(404, "log not found")
    # The update answers once the content is archived, and the lifecycle may purge the row's
    # copy right after: the content this request stored is what travis-api expects back.
    return LogRecord.model_validate({**row, "content": content or None})


@router.post("/logs/multi", status_code=204, responses=TOO_LARGE, openapi_extra=MULTI_BODY)
async def replace_logs(
    request: Request, settings: SettingsDep, pool: PoolDep, temporal: TemporalDep
) -> Response:
    """Replace several logs: `[{"job_id", "content", "removed_by"}]`."""
    try:
        items = _ITEMS.validate_json(await request.body())
    except ValidationError as err:
        raise ApiError(400, describe_validation(err.errors())) from None
    async with pool.acquire() as conn:
        changes = [
            (
                i.job_id,
                await uploads.stage(conn, i.job_id, clean_text(i.content or ""), i.removed_by),
            )
            for i in items
        ]
    await _replace_all(temporal, settings, changes)
    return Response(status_code=204)


async def _replace_all(
    temporal: Client, settings: Settings, changes: list[tuple[int, ReplaceContentInput]]
) -> None:
    limit = asyncio.Semaphore(MULTI_CONCURRENCY)

    async def one(job_id: int, change: ReplaceContentInput) -> None:
        async with limit:
            await replace_content(temporal, settings, job_id, change)

    # Every item runs to its end (none is cancelled half-way); the first failure is raised.
    results = await asyncio.gather(*(one(j, c) for j, c in changes), return_exceptions=True)
    for result in results:
        if isinstance(result, BaseException):
            raise result


@router.get("/logs/{id}", response_model=LogOut, responses=NOT_FOUND)
async def get_log(
    id: Annotated[int, Path(ge=1, le=MAX_JOB_ID, description="a job id, or a log id with by=id")],
    pool: PoolDep,
    archive: ArchiveDep,
    by: Literal["job_id", "id"] = "job_id",
) -> LogOut:
    """A log with its current content: aggregated on demand, or from the archive once purged."""
    found = await read_log(pool, archive, by, id)
    if found is None:
        raise ApiError(404, "log not found")
    found["redactions"] = audit = await redactions.audit(pool, found["job_id"])
    found["timeline"]["redacted"] = redactions.last_masked_at(audit)
    return LogOut.model_validate(found)


@router.get("/logs/{job_id}/id", response_model=LogId, responses=NOT_FOUND)
async def get_log_id(job_id: JobId, pool: PoolDep) -> LogId:
    """The id of the job's log."""
    log_id = await queries.log_id_for_job(pool, job_id)
    if log_id is None:
        raise ApiError(404, "log not found")
    return LogId(id=log_id)
