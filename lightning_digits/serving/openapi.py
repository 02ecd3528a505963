"""The request and response shapes of the server, written down for the OpenAPI page at /docs.

POST /predict takes uploads, a raw image body and JSON alike, and POST /samples a multipart form, so no framework
can infer their shapes from a signature; they are spelled here. Imported only when /openapi.json is first asked for
(pydantic is slow to import). Knows nothing of images or the model.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from pydantic import BaseModel, Field

from lightning_digits import __version__
from lightning_digits.data.images import MAX_PIXELS
from lightning_digits.serving.collect import SAMPLES_PATH
from lightning_digits.serving.limits import BODY_TIMEOUT_S, MAX_BODY_BYTES, MAX_IMAGES, MAX_REQUEST_PIXELS


class Base64Images(BaseModel):
    """Exactly one of `image` and `images`."""

    image: str | None = Field(
        None, description="An image file's bytes (PNG, JPEG, BMP...) as base64; a data: URL works."
    )
    images: list[str] | None = Field(None, max_length=MAX_IMAGES, description="Several images, each as `image`.")


class Prediction(BaseModel):
    name: str = Field(description="The upload's file name, or `image` / `images[i]` for base64.")
    predicted: str = Field(description="The class name with the highest probability.")
    confidence: float = Field(description="Its probability.")
    probabilities: dict[str, float] = Field(description="Every class name -> its probability (they sum to 1).")


class ModelInfo(BaseModel):
    file: str = Field(description="The ONNX file's name.")
    sha256: str = Field(description="The ONNX file's SHA-256.")
    test_accuracy: float | None = Field(description="Accuracy on the test set, from the model's metadata.")


class Answer(BaseModel):
    predictions: list[Prediction] = Field(description="One per image, in the order they were sent.")
    model: ModelInfo


class Stored(BaseModel):
    label: str = Field(description="The digit it was stored as.")
    file: str = Field(description="Where: `<label>/<new unique name>.png` in the server's collection folder.")


class Collected(BaseModel):
    counts: dict[str, int] = Field(description="Each label 0-9 -> the digits stored under it.")
    limit_per_class: int = Field(description="The most a label's folder may hold (`--collect_limit`).")


class Problem(BaseModel):
    detail: str = Field(description="What was wrong and what to do, in one line.")


UPLOAD_SCHEMA = {
    "type": "object",
    "properties": {"file": {"type": "array", "items": {"type": "string", "format": "binary"}}},
    "description": "One or more image files, under any field name.",
}
ERRORS = {
    "400": "Malformed request: empty body, not JSON, wrong JSON shape, bad base64, no file, too many images.",
    "408": f"The body did not arrive within the body timeout (default {BODY_TIMEOUT_S:g} s).",
    "413": f"The body is over {MAX_BODY_BYTES:,} bytes, or its images over {MAX_REQUEST_PIXELS:,} pixels (defaults).",
    "415": "Neither multipart/form-data, an image/* type nor application/json.",
    "422": f"An image that cannot be classified: not an image, truncated, over {MAX_PIXELS:,} pixels, blank.",
    "504": "A large request still waiting for its worker's thread for large requests after 30 s; try again.",
}
SAMPLE_SCHEMA = {
    "type": "object",
    "required": ["file", "label"],
    "properties": {
        "file": {"type": "string", "format": "binary", "description": "One image file, as for /predict."},
        "label": {"type": "string", "enum": [str(digit) for digit in range(10)], "description": "Its digit."},
    },
}
SAMPLE_ERRORS = {
    "400": "No label or one outside 0-9, no file or more than one, a malformed multipart body.",
    "404": "Collecting is off: the server was started without --collect_dir.",
    "408": ERRORS["408"],
    "409": "The label's folder holds its cap of files (--collect_limit); nothing was written.",
    "413": ERRORS["413"],
    "415": "Not multipart/form-data.",
    "422": ERRORS["422"],
    "507": "The disk refused the write (full, read-only); nothing was written.",
}
SAMPLE_DESCRIPTION = (
    "Store a person's digit with its label, for `lightning-digits adapt DIR`: the image is checked as "
    "/predict checks it (the same limits; it must hold ink), then written atomically as a PNG file under a new "
    "name in `<collect_dir>/<label>/`; nothing is ever overwritten. Only with `serve --collect_dir DIR`."
)
DESCRIPTION = (
    "Classify handwritten digits. Send image files as multipart/form-data, one image file as the body (with "
    "its image/* content type), or base64 images as JSON; "
    f"up to {MAX_IMAGES} images and {MAX_BODY_BYTES:,} bytes per request. Each image goes through the "
    'same MNIST-style preprocessing as `lightning-digits predict`. Errors answer `{"detail": ...}`.'
)


def _schemas(*models: type[BaseModel]) -> dict[str, Any]:
    schemas: dict[str, Any] = {}
    for model in models:
        schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
        schemas.update(schema.pop("$defs", {}))
        schemas[model.__name__] = schema
    return schemas


def _json_of(model: str) -> dict[str, Any]:
    return {"application/json": {"schema": {"$ref": f"#/components/schemas/{model}"}}}


@cache
def schema(path: str) -> dict[str, Any]:
    """The OpenAPI document: POST `path`, POST and GET /samples, GET /health and GET /info."""
    problem = {"application/json": {"schema": {"$ref": "#/components/schemas/Problem"}}}
    store = {
        "summary": "Store a labelled digit",
        "description": SAMPLE_DESCRIPTION,
        "requestBody": {"required": True, "content": {"multipart/form-data": {"schema": SAMPLE_SCHEMA}}},
        "responses": {
            "200": {"description": "Where it was stored.", "content": _json_of("Stored")},
            **{code: {"description": text, "content": problem} for code, text in SAMPLE_ERRORS.items()},
        },
    }
    counts = {
        "summary": "How many digits of each label are stored",
        "responses": {
            "200": {"description": "The counts.", "content": _json_of("Collected")},
            "404": {"description": SAMPLE_ERRORS["404"], "content": problem},
        },
    }
    predict = {
        "summary": "Classify digit images",
        "description": DESCRIPTION,
        "requestBody": {
            "required": True,
            "content": {
                "multipart/form-data": {"schema": UPLOAD_SCHEMA},
                "image/*": {"schema": {"type": "string", "format": "binary"}},
                "application/json": {"schema": {"$ref": "#/components/schemas/Base64Images"}},
            },
        },
        "responses": {
            "200": {
                "description": "The predictions and the model that made them.",
                "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Answer"}}},
            },
            **{code: {"description": text, "content": problem} for code, text in ERRORS.items()},
        },
    }
    return {
        "openapi": "3.1.0",
        "info": {"title": "lightning-digits", "version": __version__, "description": DESCRIPTION},
        "paths": {
            path: {"post": predict},
            SAMPLES_PATH: {"post": store, "get": counts},
            "/health": {"get": {"summary": "ok once the model is loaded", "responses": {"200": {"description": "ok"}}}},
            "/info": {
                "get": {
                    "summary": "The model's metadata, input contract, limits and engine",
                    "responses": {"200": {"description": "JSON"}},
                }
            },
        },
        "components": {"schemas": _schemas(Base64Images, Answer, Stored, Collected, Problem)},
    }
