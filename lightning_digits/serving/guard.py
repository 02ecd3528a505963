"""The front door of POST /predict, an ASGI middleware on LitServe's FastAPI app: it refuses what LitServe
would answer with a 500 or wait on forever (a wrong content type, a body too large, too slow or not JSON, a
multipart body without a boundary or with too many parts), each with a JSON `{"detail": ...}` and a 4xx, and
answers 504 when no answer comes in time; and a handler for the malformed uploads that LitServe's own
parsing reports as a 500. Knows nothing of images or the model.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exception_handlers import http_exception_handler
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException

from lightning_digits.serving.limits import MEDIA_TYPES, too_many_images

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


class Refused(Exception):
    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status, self.detail = status, detail


class _Disconnected(Exception):
    pass


async def send_error(send: Send, status: int, detail: str, close: bool = False) -> None:
    body = json.dumps({"detail": detail}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    if close:  # the rest of the body was never read: the connection cannot carry another request
        headers.append((b"connection", b"close"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class RequestGuard:
    def __init__(
        self,
        app: ASGIApp,
        *,
        path: str,
        max_body_bytes: int,
        max_images: int,
        body_timeout: float,
        answer_timeout: float,
    ) -> None:
        self.app, self.path = app, path
        self.max_body_bytes, self.max_images = max_body_bytes, max_images
        self.body_timeout, self.answer_timeout = body_timeout, answer_timeout

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] != self.path or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        try:
            body = await self._checked_body(scope, receive)
        except Refused as refusal:
            await send_error(send, refusal.status, refusal.detail, close=refusal.status in (408, 413))
            return
        except _Disconnected:
            return  # nobody to answer; the next request on another connection is unaffected
        await self._answer(scope, body, receive, send)

    async def _checked_body(self, scope: Scope, receive: Receive) -> bytes:
        headers = dict(scope["headers"])
        content_type = headers.get(b"content-type", b"").decode("latin-1")
        media_type = content_type.split(";")[0].strip().lower()
        if media_type not in MEDIA_TYPES:
            raise Refused(
                415,
                f"content type {media_type or '(none)'!r} is not accepted: send image files as multipart/form-data "
                '(curl -F file=@digit.png) or JSON {"image": "<base64>"} as application/json',
            )
        declared = headers.get(b"content-length", b"").decode("latin-1")
        if declared.isdigit() and int(declared) > self.max_body_bytes:
            raise self._too_large(int(declared))
        try:
            body = await asyncio.wait_for(self._read_body(receive), self.body_timeout)
        except TimeoutError:
            raise Refused(
                408, f"the request body did not arrive within {self.body_timeout:g} s; send it whole and promptly"
            ) from None
        if not body:
            raise Refused(400, "empty body: send an image file (multipart/form-data) or JSON with base64 images")
        if media_type == "application/json":
            try:
                json.loads(body)
            except ValueError as exc:
                raise Refused(400, f'the body is not valid JSON ({exc}); send {{"image": "<base64>"}}') from exc
        else:
            self._check_multipart(content_type, body)
        return body

    async def _read_body(self, receive: Receive) -> bytes:
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise _Disconnected
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body_bytes:
                raise self._too_large(size, at_least=True)
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks)

    def _too_large(self, size: int, at_least: bool = False) -> Refused:
        received = f"{'over ' if at_least else ''}{size:,} bytes"
        return Refused(
            413, f"the body is {received}; the limit is {self.max_body_bytes:,}: send fewer or smaller images"
        )

    def _check_multipart(self, content_type: str, body: bytes) -> None:
        # Starlette's parser raises on these, and LitServe turns anything raised there into a 500.
        boundary = next(
            (p.split("=", 1)[1].strip().strip('"') for p in content_type.split(";")[1:] if "boundary=" in p), ""
        )
        if not boundary:
            raise Refused(400, "multipart/form-data without a boundary; let the HTTP client build the upload")
        parts = body.count(b"--" + boundary.encode("latin-1")) - 1
        if parts > self.max_images:
            raise Refused(400, too_many_images(parts))

    async def _answer(self, scope: Scope, body: bytes, receive: Receive, send: Send) -> None:
        delivered, started = False, False

        async def replay() -> Message:
            nonlocal delivered
            if not delivered:
                delivered = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        async def tracked_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await asyncio.wait_for(self.app(scope, replay, tracked_send), self.answer_timeout)
        except TimeoutError:
            if not started:
                await send_error(send, 504, f"no answer within {self.answer_timeout:g} s; try again")


def answer_client_errors(app: FastAPI) -> None:
    """Answer a client's mistake that LitServe reports as a 500 with the 4xx it is.

    LitServe parses the body itself and turns anything raised there into "500 Internal server error", chained
    to the cause; for a multipart body that Starlette's parser refuses, the cause is Starlette's own 400."""

    async def handler(request: Request, exc: Exception) -> Response:
        cause = exc.__cause__
        if isinstance(exc, HTTPException) and exc.status_code == 500 and isinstance(cause, HTTPException):
            if 400 <= cause.status_code < 500:
                detail = f"malformed multipart body ({cause.detail}); let the HTTP client build the upload"
                return JSONResponse({"detail": detail}, cause.status_code)
        return await http_exception_handler(request, exc)  # FastAPI's default for everything else

    app.add_exception_handler(HTTPException, handler)
