"""The LitAPI behind POST /predict: a request's images (uploads or base64) -> `data/images.py`'s preprocessing
-> one onnxruntime run per batch of requests -> one JSON answer per request.

A bad image must not fail the other requests of its batch (LitServe answers a whole batch with the exception
raised for one of them), so decode_request never raises: it returns a `Rejection`, which predict passes
by and encode_response answers as a 4xx of its own. Knows nothing of torch, training, or HTTP limits
other than the image count.
"""

import base64
import binascii
import json
from dataclasses import dataclass
from typing import Any

import litserve as ls
import numpy as np
from starlette.datastructures import FormData, UploadFile
from starlette.responses import Response

from lightning_digits.data.images import read_digit
from lightning_digits.errors import UserError
from lightning_digits.onnx_predictor import OnnxDigits
from lightning_digits.serving.limits import MAX_IMAGES, too_many_images

JSON_SHAPE = 'send {"image": "<base64>"} or {"images": ["<base64>", ...]}'


class Rejection(Exception):
    """Why a request's images cannot be classified, with the HTTP status that says so."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(status, detail)
        self.status, self.detail = status, detail


@dataclass(frozen=True)
class Digits:
    names: list[str]
    images: np.ndarray  # float32 [N, 28, 28] in [0, 1]


def _named_uploads(form: FormData) -> list[tuple[str, bytes]]:
    uploads = [(field, value) for field, value in form.multi_items() if isinstance(value, UploadFile)]
    if not uploads:
        raise Rejection(400, "no file in the upload: send each image as a file field, e.g. curl -F file=@digit.png")
    return [(upload.filename or field, upload.file.read()) for field, upload in uploads]


def _named_base64(body: Any) -> list[tuple[str, bytes]]:
    if not isinstance(body, dict) or len(body.keys() & {"image", "images"}) != 1:
        raise Rejection(400, f"wrong JSON shape: {JSON_SHAPE}")
    if "image" in body:
        named = [("image", body["image"])]
    elif isinstance(body["images"], list) and body["images"]:
        named = [(f"images[{i}]", text) for i, text in enumerate(body["images"])]
    else:
        raise Rejection(400, f'wrong JSON shape: "images" must be a non-empty list; {JSON_SHAPE}')
    if len(named) > MAX_IMAGES:
        raise Rejection(400, too_many_images(len(named)))
    return [(name, _from_base64(name, text)) for name, text in named]


def _from_base64(name: str, text: Any) -> bytes:
    if not isinstance(text, str):
        raise Rejection(400, f"{name}: expected a base64 string, got {type(text).__name__}; {JSON_SHAPE}")
    if text.startswith("data:") and "," in text:  # a data URL, as a browser's FileReader gives it
        text = text.split(",", 1)[1]
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise Rejection(400, f"{name}: not valid base64 ({exc}); encode the image file's bytes as base64") from exc


def decode_images(request: Any) -> Digits | Rejection:
    """An upload form or a JSON body -> the request's digits, or why they cannot be classified."""
    try:
        named = _named_uploads(request) if isinstance(request, FormData) else _named_base64(request)
        if len(named) > MAX_IMAGES:
            raise Rejection(400, too_many_images(len(named)))
        images = np.stack([read_digit(data, name) for name, data in named])
    except Rejection as rejection:
        return rejection
    except UserError as exc:  # not an image, truncated, too many pixels, blank: the CLI's own words
        return Rejection(422, str(exc))
    return Digits([name for name, _ in named], images)


class DigitsAPI(ls.LitAPI):
    def __init__(self, model_path: str, model_info: dict[str, Any], threads: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.model_path, self.model_info, self.threads = model_path, model_info, threads

    def setup(self, device: str) -> None:
        self.model = OnnxDigits(self.model_path, threads=self.threads)

    # No annotation on `request`: LitServe reads it to choose how FastAPI parses the body, and only its default
    # lets one route take uploads (a starlette FormData arrives) and JSON (a dict arrives) alike.
    def decode_request(self, request) -> Digits | Rejection:
        return decode_images(request)

    def batch(self, inputs: list[Digits | Rejection]) -> list[Digits | Rejection]:
        return inputs  # predict stacks the images of the whole batch itself

    def unbatch(self, outputs: list[Any]) -> list[Any]:
        return outputs

    def predict(self, x: Any) -> Any:
        if self.max_batch_size > 1:
            return self.predict_batch(x)
        return self.predict_batch([x])[0]

    def predict_batch(self, requests: list[Digits | Rejection]) -> list[tuple[Digits, np.ndarray] | Rejection]:
        """One onnxruntime run over every image of every request in the batch."""
        accepted = [r for r in requests if isinstance(r, Digits)]
        if not accepted:
            return list(requests)
        probabilities = self.model.probabilities(np.concatenate([r.images for r in accepted]))
        per_request = iter(np.split(probabilities, np.cumsum([len(r.images) for r in accepted])[:-1]))
        return [(r, next(per_request)) if isinstance(r, Digits) else r for r in requests]

    def encode_response(self, output: tuple[Digits, np.ndarray] | Rejection) -> Response:
        # A ready Response passes through LitServe and FastAPI untouched: the JSON is written here, in the
        # inference worker, rather than in the HTTP process that every request crosses.
        if isinstance(output, Rejection):
            return Response(json.dumps({"detail": output.detail}), output.status, media_type="application/json")
        digits, probabilities = output
        return Response(json.dumps(self.answer(digits.names, probabilities)), media_type="application/json")

    def answer(self, names: list[str], probabilities: np.ndarray) -> dict[str, Any]:
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
        return {"predictions": predictions, "model": self.model_info}
