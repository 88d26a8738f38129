"""`GET /logs/:job_id/text`: a log's text whole, by byte range or by line range; and
`GET /logs/:job_id/index`: its shape (`travis_logs.log_index`).

Read with travis-api's token, or with the viewer page's grant for its one job (as
GET /log-parts). A `Range: bytes=...` header asking one range gets 206 with
`Content-Range`, a range past the end 416 with `Content-Range: bytes */<size>`; a header
asking several ranges (or not a valid bytes range) is ignored and the whole log is served
with 200, as RFC 9110 allows. `?lines=a-b` (1-based, inclusive) answers 200 with those lines.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header, Query, Response
from fastapi.responses import JSONResponse

from api.deps import ArchiveDep, JobId, PoolDep, ReaderAuth
from api.errors import ApiError, error_response
from api.log_text import LogText, log_text
from api.schemas import Message
from travis_logs.byte_range import LineRange, Unsatisfiable, parse_lines, parse_range
from travis_logs.stored_index import index_of

TEXT = "text/plain; charset=utf-8"
# A Range header longer than this is no single range worth reading.
MAX_RANGE_HEADER = 200

router = APIRouter(
    tags=["logs"],
    responses={
        400: {"model": Message, "description": "malformed id or parameter"},
        403: {"model": Message, "description": "missing or wrong credentials"},
        404: {"model": Message, "description": "no log"},
        416: {"model": Message, "description": "the range is past the log's end"},
    },
)


@router.get(
    "/logs/{job_id}/text",
    dependencies=[ReaderAuth],
    response_class=Response,
    responses={
        200: {"content": {TEXT: {}}, "description": "the whole log, or the lines asked"},
        206: {"content": {TEXT: {}}, "description": "the byte range asked"},
    },
)
async def get_log_text(
    job_id: JobId,
    pool: PoolDep,
    archive: ArchiveDep,
    range_: Annotated[str | None, Header(alias="Range")] = None,
    lines: Annotated[
        str | None, Query(max_length=64, description="a-b or a-: lines, 1-based, inclusive")
    ] = None,
) -> Response:
    """The log's text as bytes (as stored: a range may cut a UTF-8 character)."""
    wanted = _lines(lines)
    text = await log_text(pool, archive, job_id)
    if text is None:
        raise ApiError(404, "log not found")
    if wanted is not None:
        return _text(200, await text.lines(wanted))
    return await _bytes(text, range_)


@router.get(
    "/logs/{job_id}/index",
    dependencies=[ReaderAuth],
    response_class=Response,
    responses={200: {"content": {"application/json": {}}, "description": "the log's index"}},
)
async def get_log_index(job_id: JobId, pool: PoolDep, archive: ArchiveDep) -> Response:
    """The log's shape (parts, line starts, folds, timers; no text): built from the database
    while the log is there, else the index archived with it (in its row, or beside it)."""
    text = await log_text(pool, archive, job_id)
    if text is None:
        raise ApiError(404, "log not found")
    if text.body is not None or text.parts is not None:
        index = await index_of(pool, text.log_id, await text.whole())
        return JSONResponse(index.to_json())
    raw = await text.archived_index()
    if raw is None:
        raise ApiError(404, "the log was archived without an index")
    return Response(raw, media_type="application/json")


def _lines(value: str | None) -> LineRange | None:
    if value is None:
        return None
    try:
        return parse_lines(value)
    except ValueError as err:
        raise ApiError(400, f"query.lines: {err}") from None


async def _bytes(text: LogText, header: str | None) -> Response:
    try:
        asked = parse_range((header or "")[:MAX_RANGE_HEADER], text.size)
    except Unsatisfiable:
        refused = error_response(416, "the range is past the log's end")
        refused.headers["Content-Range"] = f"bytes */{text.size}"
        return refused
    if asked is None:
        return _text(200, await text.whole())
    body = await text.read(asked.start, asked.end)
    answer = _text(206, body)
    answer.headers["Content-Range"] = asked.content_range()
    return answer


def _text(status: int, body: bytes) -> Response:
    return Response(body, status_code=status, media_type=TEXT, headers={"Accept-Ranges": "bytes"})
