"""Request bodies above API_MAX_BODY_BYTES are refused with a JSON 413, streamed or not;
routes whose bodies are small forms read them with a bound of their own (`read_bounded`)."""

from __future__ import annotations

from urllib.parse import parse_qs

from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.errors import ApiError, error_response

# A sign-in or channel-authorisation form: a token, a socket id, a channel name.
FORM_MAX_BYTES = 4096


class BodyTooLarge(HTTPException):
    """Raised from `receive` once a streamed body passes the limit."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"the request body exceeds API_MAX_BODY_BYTES={limit}")


class BodyLimit:
    """Refuses a declared Content-Length above the limit at once, and counts the rest."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = Headers(scope=scope).get("content-length", "")
        if declared.isdigit() and int(declared) > self.max_bytes:
            response = error_response(413, BodyTooLarge(self.max_bytes).detail)
            await response(scope, receive, send)
            return
        received = 0

        async def counted() -> Message:
            nonlocal received
            message = await receive()
            received += len(message.get("body", b""))
            if received > self.max_bytes:
                raise BodyTooLarge(self.max_bytes)  # an HTTPException: FastAPI passes it on
            return message

        await self.app(scope, counted, send)


async def read_bounded(request: Request, limit: int) -> bytes:
    """The body, refused with 413 once it passes `limit` bytes (before any of it is parsed)."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise ApiError(413, f"the request body exceeds {limit} bytes")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise ApiError(413, f"the request body exceeds {limit} bytes")
    return bytes(body)


def parse_form(body: bytes) -> dict[str, list[str]]:
    """An urlencoded form of a bounded body, at most 10 fields (parse_qs's own bound)."""
    try:
        return parse_qs(body.decode("utf-8", errors="replace"), max_num_fields=10)
    except ValueError:
        raise ApiError(400, "the form has too many fields") from None
