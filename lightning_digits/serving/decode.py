"""A checked request body -> the named images it carries -> MNIST-style digits, through `data/images.py`,
the same path as `predict`. Three shapes: multipart uploads, base64 in JSON, or one image file as the body.
Every image's header is read before any is decoded, so a request's pixels are counted (and refused) first.
Knows nothing of the model or of HTTP beyond the body.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import AsyncIterator
from typing import Any

import numpy as np
from PIL import Image
from starlette.datastructures import Headers, UploadFile
from starlette.formparsers import MultiPartException, MultiPartParser

from lightning_digits.data.images import decode_digit, open_image
from lightning_digits.errors import UserError
from lightning_digits.serving.guard import Refused
from lightning_digits.serving.limits import MAX_IMAGES, too_many_images
from lightning_digits.serving.samples import LABELS

JSON_SHAPE = 'send {"image": "<base64>"} or {"images": ["<base64>", ...]}'
RAW_BODY_NAME = "image"  # what the answer calls an image sent as the whole body
SAMPLE_SHAPE = "send one image file and its digit as multipart/form-data: curl -F file=@digit.png -F label=7"


async def named_images(media_type: str, headers: Headers, body: bytes) -> list[tuple[str, bytes]]:
    """(name, file bytes) for each image of the request, in the order sent."""
    if media_type == "multipart/form-data":
        return await _named_uploads(headers, body)
    if media_type == "application/json":
        try:
            parsed = json.loads(body)
        except ValueError as exc:
            raise Refused(400, f'the body is not valid JSON ({exc}); send {{"image": "<base64>"}}') from exc
        return _named_base64(parsed)
    return [(RAW_BODY_NAME, body)]


async def _named_uploads(headers: Headers, body: bytes) -> list[tuple[str, bytes]]:
    return (await _form(headers, body))[0]


async def _form(headers: Headers, body: bytes) -> tuple[list[tuple[str, bytes]], dict[str, str]]:
    """A multipart body -> its files as (name, bytes), at least one, and its other fields by name."""

    async def stream() -> AsyncIterator[bytes]:
        yield body
        yield b""

    try:  # file parts may be as large as the body allows; other fields stay small
        form = await MultiPartParser(headers, stream(), max_files=MAX_IMAGES, max_fields=MAX_IMAGES).parse()
    except MultiPartException as exc:
        raise Refused(400, f"malformed multipart body ({exc.message}); let the HTTP client build the upload") from exc
    uploads = [(field, value) for field, value in form.multi_items() if isinstance(value, UploadFile)]
    if not uploads:
        raise Refused(400, "no file in the upload: send each image as a file field, e.g. curl -F file=@digit.png")
    named = [(upload.filename or field, await upload.read()) for field, upload in uploads]
    fields = {field: value for field, value in form.multi_items() if isinstance(value, str)}
    await form.close()
    return named, fields


async def labelled_upload(media_type: str, headers: Headers, body: bytes) -> tuple[str, str, bytes]:
    """A labelled sample: a multipart body of one image file and a `label` field of one of `labels` ->
    (label, the image's name, its bytes)."""
    if media_type != "multipart/form-data":
        raise Refused(415, f"content type {media_type!r} is not accepted here: {SAMPLE_SHAPE}")
    named, fields = await _form(headers, body)
    if len(named) != 1:
        raise Refused(400, f"{len(named)} files in one sample; {SAMPLE_SHAPE}")
    label = fields.get("label", "").strip()
    if label not in LABELS:
        got = f"got {fields['label']!r}" if "label" in fields else "no label field"
        raise Refused(400, f"label must be one digit 0-9, {got}; {SAMPLE_SHAPE}")
    return label, *named[0]


def _named_base64(body: Any) -> list[tuple[str, bytes]]:
    if not isinstance(body, dict) or len(body.keys() & {"image", "images"}) != 1:
        raise Refused(400, f"wrong JSON shape: {JSON_SHAPE}")
    if "image" in body:
        named = [("image", body["image"])]
    elif isinstance(body["images"], list) and body["images"]:
        named = [(f"images[{i}]", text) for i, text in enumerate(body["images"])]
    else:
        raise Refused(400, f'wrong JSON shape: "images" must be a non-empty list; {JSON_SHAPE}')
    if len(named) > MAX_IMAGES:
        raise Refused(400, too_many_images(len(named)))
    return [(name, _from_base64(name, text)) for name, text in named]


def _from_base64(name: str, text: Any) -> bytes:
    if not isinstance(text, str):
        raise Refused(400, f"{name}: expected a base64 string, got {type(text).__name__}; {JSON_SHAPE}")
    if text.startswith("data:") and "," in text:  # a data URL, as a browser's FileReader gives it
        text = text.split(",", 1)[1]
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise Refused(400, f"{name}: not valid base64 ({exc}); encode the image file's bytes as base64") from exc


def opened_images(
    named: list[tuple[str, bytes]], max_image_pixels: int, max_request_pixels: int
) -> tuple[list[tuple[str, Image.Image]], int]:
    """Each image opened (header only) -> them, and the request's pixels at the size each will decode to."""
    opened: list[tuple[str, Image.Image]] = []
    try:
        for name, data in named:
            opened.append((name, open_image(data, name, max_image_pixels)))
        pixels = sum(image.width * image.height for _, image in opened)
        if pixels > max_request_pixels:
            raise Refused(
                413,
                f"the images of this request hold {pixels:,} pixels; the limit is {max_request_pixels:,} per "
                "request: send fewer images per request, or scale them down",
            )
    except UserError as exc:  # not an image, above the pixel limit: the CLI's own words
        _close(opened)
        raise Refused(422, str(exc)) from exc
    except Refused:
        _close(opened)
        raise
    return opened, pixels


def digits_of(opened: list[tuple[str, Image.Image]]) -> np.ndarray:
    """Decode the opened images -> float32 [N, 28, 28] in [0, 1]; closes them."""
    try:
        return np.stack([decode_digit(image, name) for name, image in opened])
    except UserError as exc:  # truncated, blank: the CLI's own words
        raise Refused(422, str(exc)) from exc
    finally:
        _close(opened)


def _close(opened: list[tuple[str, Image.Image]]) -> None:
    for _, image in opened:
        image.close()
