"""POST /samples and GET /samples: a person's digit with its label, checked at the same front door and decoded
the same way as an image sent to /predict, then stored by `samples`; and how many of each class are stored.
Both servers answer them with this code: the workers of `serve` and the page's server (`demo`). Off (404)
unless a collection folder is given. Knows nothing of the model or of how the server runs.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from starlette.requests import Request
from starlette.responses import Response

from lightning_digits.errors import UserError
from lightning_digits.serving.decode import digits_of, labelled_upload, opened_images
from lightning_digits.serving.guard import BodyRules, Disconnected, Refused, checked_body
from lightning_digits.serving.samples import Full, Samples, as_png

SAMPLES_PATH = "/samples"
OFF = Refused(404, "collecting digits is off: start the server with --collect_dir DIR to store them in DIR/<label>/")


class Collect:
    """The two endpoints over one collection (None: collecting is off)."""

    def __init__(self, samples: Samples | None, body: BodyRules, max_image_pixels: int, max_request_pixels: int):
        self.samples, self.body = samples, body
        self.max_image_pixels, self.max_request_pixels = max_image_pixels, max_request_pixels

    async def store(self, request: Request) -> Response:
        """POST: one image file and its `label` -> where it was stored, relative to the collection folder."""
        try:
            if (samples := self.samples) is None:
                raise OFF
            media_type, body = await checked_body(request, self.body)
            label, name, data = await labelled_upload(media_type, request.headers, body)
            # Off the event loop: a large image's decoding and the file's fsync take milliseconds or more.
            path = await asyncio.to_thread(self._store, samples, label, name, data)
        except Refused as refusal:
            return refusal.response()
        except Disconnected:
            return Response(status_code=400)  # nobody reads it; the connection is gone
        return _json({"label": label, "file": f"{label}/{path.name}"})

    async def counts(self, request: Request) -> Response:
        """GET: label -> digits stored, and the cap of each class."""
        if self.samples is None:
            return OFF.response()
        counts = await asyncio.to_thread(self.samples.counts)
        return _json({"counts": counts, "limit_per_class": self.samples.limit})

    def _store(self, samples: Samples, label: str, name: str, data: bytes) -> Path:
        opened, _ = opened_images([(name, data)], self.max_image_pixels, self.max_request_pixels)
        digits_of(opened)  # what /predict refuses is refused here too: not an image, too many pixels, no ink
        try:
            return samples.store(label, as_png(data))
        except Full as exc:
            raise Refused(409, str(exc)) from exc
        except UserError as exc:  # the disk refused the write (full, read-only): atomic.py's one line
            raise Refused(507, str(exc)) from exc


def _json(value: dict) -> Response:
    return Response(json.dumps(value), media_type="application/json")
