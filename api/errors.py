"""Every error leaves the API as JSON `{"message": ...}`; nothing leaks a stack trace."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import asyncpg
from botocore.exceptions import BotoCoreError, ClientError
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException
from temporalio.client import WorkflowUpdateFailedError
from temporalio.service import RPCError

from travis_logs.bounded import bounded, bounded_repr
from travis_logs.errors import ArchiveMismatch, S3Timeout

log = logging.getLogger(__name__)
MAX_ERRORS_SHOWN = 10

# What every route may answer while PostgreSQL, Temporal or S3 is unreachable.
UNAVAILABLE: dict[int | str, dict[str, Any]] = {
    503: {
        "description": "a backing service is unavailable; try again",
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Message"}}},
    }
}


class ApiError(Exception):
    """An answer other than success, raised anywhere below a route."""

    def __init__(self, status_code: int, message: str) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.message = message


def error_response(status_code: int, message: str, **extra: Any) -> JSONResponse:
    return JSONResponse({"message": message, **extra}, status_code=status_code)


def describe_validation(errors: Sequence[Any]) -> str:
    """`query.after: Input should be a valid integer; ...` (input values are not echoed)."""
    parts = []
    for error in errors[:MAX_ERRORS_SHOWN]:
        # A location may name a key of the body: the client's text, so it is bounded.
        where = ".".join(bounded(p, 40) for p in error.get("loc", ()))
        parts.append(f"{where}: {bounded(error.get('msg', 'invalid'))}")
    if len(errors) > MAX_ERRORS_SHOWN:
        parts.append(f"and {len(errors) - MAX_ERRORS_SHOWN} more")
    return "; ".join(parts) or "invalid request"


async def _api_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ApiError)
    return error_response(exc.status_code, exc.message)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    if exc.status_code in (204, 304):
        return Response(status_code=exc.status_code)
    # Starlette's 404 and 405 say "Not Found" / "Method Not Allowed": fine as messages.
    return JSONResponse(
        {"message": str(exc.detail)}, status_code=exc.status_code, headers=exc.headers
    )


async def _invalid(request: Request, exc: Exception) -> Response:
    # travis-logs answers bad parameters with 400 (sinatra-param), not FastAPI's 422.
    assert isinstance(exc, RequestValidationError)
    return error_response(400, describe_validation(exc.errors()))


def _unavailable(service: str) -> Any:
    async def handler(request: Request, exc: Exception) -> Response:
        where = f"{bounded(request.method, 16)} {bounded(request.url.path)}"
        log.warning("%s: %s unavailable: %s", where, service, bounded_repr(exc))
        return error_response(503, f"{service} is unavailable, try again")

    return handler


async def _update_failed(request: Request, exc: Exception) -> Response:
    where = f"{bounded(request.method, 16)} {bounded(request.url.path)}"
    log.error("%s: workflow update failed: %s", where, bounded_repr(exc.__cause__))
    return error_response(500, "the log workflow refused the change")


async def _damaged(request: Request, exc: Exception) -> Response:
    log.error("%s %s: %s", bounded(request.method, 16), bounded(request.url.path), exc)
    return error_response(500, "the archived log does not match its checksum")


async def _internal(request: Request, exc: Exception) -> Response:
    # Starlette re-raises after this answer, so the server logs the traceback once.
    return error_response(500, "internal server error")


def install(app: FastAPI) -> None:
    """Register the handlers that turn exceptions into JSON answers."""
    app.add_exception_handler(ApiError, _api_error)
    app.add_exception_handler(HTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _invalid)
    app.add_exception_handler(RPCError, _unavailable("Temporal"))
    app.add_exception_handler(WorkflowUpdateFailedError, _update_failed)
    for db_error in (asyncpg.PostgresConnectionError, asyncpg.TooManyConnectionsError):
        app.add_exception_handler(db_error, _unavailable("the database"))
    app.add_exception_handler(OSError, _unavailable("a backing service"))
    app.add_exception_handler(BotoCoreError, _unavailable("the archive"))
    app.add_exception_handler(ClientError, _unavailable("the archive"))
    app.add_exception_handler(S3Timeout, _unavailable("the archive"))
    app.add_exception_handler(ArchiveMismatch, _damaged)
    app.add_exception_handler(Exception, _internal)
