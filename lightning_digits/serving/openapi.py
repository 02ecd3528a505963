"""The request and response shapes of POST /predict, written down for the OpenAPI page at /docs.

LitServe registers /predict with a bare `Request` (it must accept uploads and JSON alike), so FastAPI
cannot infer these; they are added to the generated schema through FastAPI's documented hook (`app.openapi`).
Knows nothing of images or the model.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic import BaseModel, Field

from lightning_digits import __version__
from lightning_digits.serving.limits import BODY_TIMEOUT_S, MAX_BODY_BYTES, MAX_IMAGES


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
    "413": f"The body is over {MAX_BODY_BYTES:,} bytes.",
    "415": "Neither multipart/form-data nor application/json.",
    "422": "An image that cannot be classified: not an image, truncated, above the pixel limit, blank.",
    "504": "No answer in time (server overloaded or a worker restarting); try again.",
}
DESCRIPTION = (
    "Classify handwritten digits. Send image files as multipart/form-data or base64 images as JSON; "
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


def document(app: FastAPI, path: str) -> None:
    """Describe POST `path` on the app's OpenAPI page."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(
                title="lightning-digits", version=__version__, description=DESCRIPTION, routes=app.routes
            )
            schema.setdefault("components", {}).setdefault("schemas", {}).update(
                _schemas(Base64Images, Answer, Problem)
            )
            problem = {"application/json": {"schema": {"$ref": "#/components/schemas/Problem"}}}
            schema["paths"][path]["post"].update(
                summary="Classify digit images",
                description=DESCRIPTION,
                requestBody={
                    "required": True,
                    "content": {
                        "multipart/form-data": {"schema": UPLOAD_SCHEMA},
                        "application/json": {"schema": {"$ref": "#/components/schemas/Base64Images"}},
                    },
                },
                responses={
                    "200": {
                        "description": "The predictions and the model that made them.",
                        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Answer"}}},
                    },
                    **{code: {"description": text, "content": problem} for code, text in ERRORS.items()},
                },
            )
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]  # FastAPI's documented way to extend the schema
