"""`POST /logs/:job_id/redactions`: mask leaked secrets in one log, audited (README "Redaction").

The operator token is checked before the body is read; the request is stored in PostgreSQL
and the job's LogWorkflow applies it through the `redact` update, which answers once the
redacted log is archived and verified.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from pydantic import TypeAdapter, ValidationError

from api import redactions
from api.deps import JobId, PoolDep, SettingsDep, TemporalDep, TokenAuth
from api.errors import ApiError, describe_validation
from api.schemas import Message, RedactionIn, RedactionResultOut

router = APIRouter(
    tags=["logs"],
    dependencies=[TokenAuth],
    responses={
        400: {"model": Message, "description": "malformed id or body"},
        403: {"model": Message, "description": "missing or wrong token"},
        404: {"model": Message, "description": "no log"},
        422: {"model": Message, "description": "a range does not fit the log"},
        500: {"model": Message, "description": "AUTH_TOKEN is not configured"},
    },
)
# Read by hand after the token check (FastAPI parses declared bodies before dependencies).
_BODY = TypeAdapter(RedactionIn)
BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {"application/json": {"schema": RedactionIn.model_json_schema()}},
    }
}


@router.post("/logs/{job_id}/redactions", response_model=RedactionResultOut, openapi_extra=BODY)
async def redact_log(
    job_id: JobId, request: Request, settings: SettingsDep, pool: PoolDep, temporal: TemporalDep
) -> RedactionResultOut:
    """Mask literal `strings` and byte `ranges` of the log, keeping its length."""
    body = _parse(await request.body())
    req = redactions.RedactionRequest(
        job_id, body.requested_by, body.reason, list(body.strings), list(body.ranges)
    )
    try:
        result = await redactions.apply(pool, temporal, settings, req)
    except redactions.NoLog:
        raise ApiError(404, "log not found") from None
    except redactions.Refused as err:
        raise ApiError(422, str(err)) from None
    return RedactionResultOut(
        redaction_id=result.redaction_id,
        occurrences=result.occurrences,
        changed=result.changed,
        content_version=result.content_version,
        archived=result.archived,
    )


def _parse(raw: bytes) -> RedactionIn:
    try:
        body = _BODY.validate_json(raw)
    except ValidationError as err:
        raise ApiError(400, describe_validation(err.errors())) from None
    problem = redactions.invalid(body.strings, body.ranges)
    if problem:
        raise ApiError(400, problem)
    return body
