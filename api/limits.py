"""Request bodies above API_MAX_BODY_BYTES are refused with a JSON 413, streamed or not."""

from __future__ import annotations

from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.errors import error_response


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
