"""The front door of POST /predict: read the body and refuse, before any image is decoded, what the endpoint
must not try (a wrong content type, a body too large or too slow, a multipart body without a boundary or with
too many parts), each as a `Refused` with its 4xx and a one-line detail. A JSON body's syntax is checked
where it is parsed, in `decode`. Knows nothing of images or the model.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass

from starlette.requests import Request
from starlette.responses import Response

from lightning_digits.serving.limits import FORM_TYPES, too_many_images


class Refused(Exception):
    """Why a request is not answered with predictions: the HTTP status and what to do about it."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status, self.detail = status, detail

    def response(self) -> Response:
        headers = {"connection": "close"} if self.status in (408, 413) else None  # the body was not read whole
        return Response(json.dumps({"detail": self.detail}), self.status, headers, media_type="application/json")


class Disconnected(Exception):
    """The client went away before its body arrived: nobody to answer."""


@dataclass(frozen=True)
class BodyRules:
    max_body_bytes: int
    max_images: int
    body_timeout: float


async def checked_body(request: Request, rules: BodyRules) -> tuple[str, bytes]:
    """The request's media type and whole body, once both pass the front door's checks."""
    content_type = request.headers.get("content-type", "")
    media_type = content_type.split(";")[0].strip().lower()
    if media_type not in FORM_TYPES and not media_type.startswith("image/"):
        raise Refused(
            415,
            f"content type {media_type or '(none)'!r} is not accepted: send image files as multipart/form-data "
            "(curl -F file=@digit.png), one image file as the body with its image/* type (curl --data-binary "
            '@digit.png -H "Content-Type: image/png"), or JSON {"image": "<base64>"} as application/json',
        )
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > rules.max_body_bytes:
        raise _too_large(int(declared), rules)
    try:
        async with asyncio.timeout(rules.body_timeout):
            body = await _read_body(request, rules)
    except TimeoutError:
        raise Refused(
            408, f"the request body did not arrive within {rules.body_timeout:g} s; send it whole and promptly"
        ) from None
    if not body:
        raise Refused(400, "empty body: send an image file (multipart/form-data or image/*) or JSON with base64 images")
    if media_type == "multipart/form-data":
        _check_multipart(content_type, body, rules)
    return media_type, body


async def _read_body(request: Request, rules: BodyRules) -> bytes:
    chunks, size = [], 0
    while True:
        message = await request.receive()
        if message["type"] == "http.disconnect":
            raise Disconnected
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > rules.max_body_bytes:
            raise _too_large(size, rules, at_least=True)
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


def _too_large(size: int, rules: BodyRules, at_least: bool = False) -> Refused:
    received = f"{'over ' if at_least else ''}{size:,} bytes"
    return Refused(413, f"the body is {received}; the limit is {rules.max_body_bytes:,}: send fewer or smaller images")


def _check_multipart(content_type: str, body: bytes, rules: BodyRules) -> None:
    boundary = next(
        (p.split("=", 1)[1].strip().strip('"') for p in content_type.split(";")[1:] if "boundary=" in p), ""
    )
    if not boundary:
        raise Refused(400, "multipart/form-data without a boundary; let the HTTP client build the upload")
    parts = body.count(b"--" + boundary.encode("latin-1")) - 1
    if parts > rules.max_images:
        raise Refused(400, too_many_images(parts))
