"""A cap on request bodies, checked before the app buffers them.

FastAPI reads a whole JSON body into memory before any dependency runs, authentication
included, so without a cap anyone who can reach the port could make a worker hold gigabytes.
A declared ``Content-Length`` over the cap is refused at once; a body sent without one
(chunked) is counted as it arrives and refused the moment it passes the cap. Either way the
client gets a 413 in the usual error shape and the route never runs, so nothing is written;
up to :data:`DRAIN_BYTES` of the refused body is still read and dropped, so that the 413 is
not lost to a connection reset.
A reverse proxy's own limit (nginx ``client_max_body_size``) is still worth setting.
"""

from __future__ import annotations

import json
from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["BodyLimit", "BodyTooLarge", "body_too_large"]


class BodyTooLarge(HTTPException):
    """Raised from ``receive`` when a streamed body passes the cap. An ``HTTPException`` so that
    FastAPI's body parsing passes it on instead of turning it into a 400."""

    def __init__(self, limit: int) -> None:
        super().__init__(status_code=413, detail=_message(limit))
        self.limit = limit


def _message(limit: int) -> str:
    return f"request body too large: at most {limit} bytes are accepted"


def _payload(limit: int) -> dict[str, Any]:
    return {
        "error_id": "payload-too-large",
        "message": _message(limit),
        "details": {"limit": limit},
    }


async def body_too_large(_request: Request, exc: Exception) -> JSONResponse:
    """The exception handler for :class:`BodyTooLarge` (installed with the other handlers)."""
    assert isinstance(exc, BodyTooLarge)
    return JSONResponse(_payload(exc.limit), status_code=413, headers={"Connection": "close"})


class BodyLimit:
    """ASGI middleware: at most ``limit`` bytes of request body per request."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = _content_length(scope)
        if declared == -1:
            await _refuse(
                send,
                400,
                {
                    "error_id": "invalid-input",
                    "message": "invalid Content-Length header",
                    "details": {},
                },
            )
            return
        if declared is not None and declared > self.limit:
            if declared <= self.limit + DRAIN_BYTES:
                await _drain(receive, DRAIN_BYTES + self.limit)
            await _refuse(send, 413, _payload(self.limit))
            return
        received = 0

        async def counted() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.limit:
                    if message.get("more_body"):
                        await _drain(receive, DRAIN_BYTES)
                    raise BodyTooLarge(self.limit)
            return message

        await self.app(scope, counted, send)


DRAIN_BYTES = 1024**2
"""How much of a refused body is still read (and dropped) so that the refusal reaches the
client: a server that closes a socket with unread data resets the connection, and the client
may then lose the 413 it was about to read. Beyond this, the connection is simply closed."""


async def _drain(receive: Receive, budget: int) -> None:
    """Read and drop the rest of the body, ``budget`` bytes at most."""
    while budget > 0:
        message = await receive()
        if message["type"] != "http.request":
            return
        budget -= len(message.get("body", b""))
        if not message.get("more_body"):
            return


def _content_length(scope: Scope) -> int | None:
    """The declared length; ``None`` when absent, -1 when unusable (not one decimal number)."""
    values = [v for k, v in scope.get("headers", ()) if k == b"content-length"]
    if not values:
        return None
    if len(set(values)) != 1 or not values[0].isdigit():
        return -1
    return int(values[0])


async def _refuse(send: Send, status: int, payload: dict[str, Any]) -> None:
    body = json.dumps(payload, ensure_ascii=False).encode("utf-8")
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        (b"connection", b"close"),  # the unread body must not be taken for the next request
    ]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
