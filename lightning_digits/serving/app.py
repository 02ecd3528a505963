"""The ASGI app that each worker process runs: POST /predict (body checked by `guard`, images by `decode`,
one onnxruntime run over the request's images, the answer as JSON), POST and GET /samples (`collect`), GET
/health, /info, /openapi.json and /docs. A request to /predict is answered inside the worker's event loop,
start to finish: on a model of a fraction of a millisecond, handing it to another thread or process costs
more than it saves. Only a request with many pixels goes to the worker's one thread for large requests, so
that it cannot hold up the small ones.
Knows nothing of torch, training, or how workers are started and stopped.
"""

from __future__ import annotations

import asyncio
import json
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from lightning_digits.onnx_predictor import OnnxDigits
from lightning_digits.serving.collect import SAMPLES_PATH, Collect
from lightning_digits.serving.decode import digits_of, named_images, opened_images
from lightning_digits.serving.guard import BodyRules, Disconnected, Refused, checked_body
from lightning_digits.serving.limits import ANSWER_TIMEOUT_S, LARGE_REQUEST_PIXELS
from lightning_digits.serving.samples import DEFAULT_LIMIT, Samples

API_PATH = "/predict"


@dataclass(frozen=True)
class Settings:
    """What every worker needs to build its app, but the model's bytes; plain values, so they cross to a worker
    process as JSON."""

    model: str  # the file's path, as errors name it
    answer: dict[str, Any]  # what every answer says of the model
    info: dict[str, Any]  # what /info shows
    body: BodyRules
    max_image_pixels: int
    max_request_pixels: int
    graceful_timeout: float
    collect_dir: str | None = None  # None: POST /samples is off
    collect_limit: int = DEFAULT_LIMIT

    @classmethod
    def from_json(cls, values: dict[str, Any]) -> Settings:
        """The inverse of `dataclasses.asdict` followed by a JSON round trip."""
        return cls(**{**values, "body": BodyRules(**values["body"])})


class Predict:
    """POST /predict of one worker: its own one-thread onnxruntime session of `model` (the file's bytes)."""

    def __init__(self, settings: Settings, model: bytes) -> None:
        self.settings = settings
        self.model = OnnxDigits(model, threads=1, name=settings.model)
        self.large = ThreadPoolExecutor(1, thread_name_prefix="large-request")

    async def respond(self, request: Request) -> Response:
        try:
            media_type, body = await checked_body(request, self.settings.body)
            named = await named_images(media_type, request.headers, body)
            opened, pixels = opened_images(named, self.settings.max_image_pixels, self.settings.max_request_pixels)
            if pixels <= LARGE_REQUEST_PIXELS:
                images = digits_of(opened)
            else:
                images = await self._decode_large(opened)
        except Refused as refusal:
            return refusal.response()
        except Disconnected:
            return Response(status_code=400)  # nobody reads it; the connection is gone
        probabilities = self.model.probabilities(images)
        return Response(self.answer([name for name, _ in named], probabilities), media_type="application/json")

    async def _decode_large(self, opened: list) -> np.ndarray:
        future = asyncio.get_running_loop().run_in_executor(self.large, digits_of, opened)
        try:
            async with asyncio.timeout(ANSWER_TIMEOUT_S):
                return await future
        except TimeoutError:
            raise Refused(504, f"no answer within {ANSWER_TIMEOUT_S:g} s (large requests queued); try again") from None

    def answer(self, names: list[str], probabilities: np.ndarray) -> str:
        classes = self.model.class_names
        predictions = [
            {
                "name": name,
                "predicted": classes[int(row.argmax())],
                "confidence": float(row.max()),
                "probabilities": dict(zip(classes, row.tolist(), strict=True)),
            }
            for name, row in zip(names, probabilities, strict=True)
        ]
        return json.dumps({"predictions": predictions, "model": self.settings.answer})


def build_app(settings: Settings, model: bytes) -> Starlette:
    predict = Predict(settings, model)
    samples = Samples(settings.collect_dir, settings.collect_limit) if settings.collect_dir else None
    collect = Collect(samples, settings.body, settings.max_image_pixels, settings.max_request_pixels)
    info = {"model": settings.info}

    async def health(request: Request) -> Response:
        return PlainTextResponse("ok")

    async def show_info(request: Request) -> Response:
        return JSONResponse(info)

    # Imported on first use: pydantic and FastAPI's page cost a worker half a second at start.
    async def schema(request: Request) -> Response:
        from lightning_digits.serving.openapi import schema

        return JSONResponse(schema(API_PATH))

    async def docs(request: Request) -> Response:
        from fastapi.openapi.docs import get_swagger_ui_html

        return get_swagger_ui_html(openapi_url="/openapi.json", title="lightning-digits")

    routes = [
        Route(API_PATH, predict.respond, methods=["POST"]),
        Route(SAMPLES_PATH, collect.store, methods=["POST"]),
        Route(SAMPLES_PATH, collect.counts, methods=["GET"]),
        Route("/health", health),
        Route("/info", show_info),
        Route("/openapi.json", schema),
        Route("/docs", docs),
    ]
    return Starlette(routes=routes)
