"""The `serve` command: check its options and the model, bind the address, say what is served, and hand over
to the supervisor of the workers (`supervisor.py`); check the model again on each reload. Knows nothing of
torch or training.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from lightning_digits import __version__
from lightning_digits.artifacts import DEFAULT_DIR, ONNX_MODEL
from lightning_digits.atomic import ensure_writable_dir
from lightning_digits.data.images import MAX_PIXELS
from lightning_digits.errors import UserError, check_ranges, require_onnx_file
from lightning_digits.onnx_predictor import OnnxDigits
from lightning_digits.serving.app import API_PATH, Settings
from lightning_digits.serving.guard import BodyRules
from lightning_digits.serving.limits import (
    ANSWER_TIMEOUT_S,
    BODY_TIMEOUT_S,
    GRACEFUL_TIMEOUT_S,
    MAX_BODY_BYTES,
    MAX_IMAGES,
    MAX_REQUEST_PIXELS,
)
from lightning_digits.serving.samples import DEFAULT_LIMIT
from lightning_digits.serving.supervisor import Supervisor, listening_sockets


def describe_model(path: Path, class_names: list[str] | None = None) -> tuple[bytes, dict[str, Any], dict[str, Any]]:
    """Read the file once and load it (a missing or corrupt file, or one of another contract, ends here as one
    line) -> (its bytes, which every worker loads; what every answer names of it; what /info shows of it).
    `class_names`: those of the model being served, which a reloaded one must keep (clients read them)."""
    require_onnx_file(path, ", or pass --model")
    modified = datetime.fromtimestamp(path.stat().st_mtime, UTC).isoformat(timespec="seconds")
    data = path.read_bytes()
    model = OnnxDigits(data, threads=1, name=str(path))
    if class_names is not None and model.class_names != class_names:
        raise UserError(
            f"{path}: its classes {model.class_names} are not those served ({class_names}); a model of "
            "other classes needs a new `serve`, not a reload"
        )
    accuracy = model.metadata.get("test_accuracy")
    answer = {
        "file": path.name,
        "sha256": hashlib.sha256(data).hexdigest(),
        "test_accuracy": float(accuracy) if accuracy else None,
    }
    info = {
        "service": "lightning-digits",
        "version": __version__,
        **answer,
        "modified": modified,
        "class_names": model.class_names,
        "input_contract": model.metadata.get("input_contract"),
        "onnx_metadata": model.metadata,
    }
    return data, answer, info


def reloaded(settings: Settings) -> tuple[Settings, bytes]:
    """The served settings with the model's file read and checked again (SIGHUP) -> (new settings, its bytes)."""
    data, answer, info = describe_model(Path(settings.model), settings.info["class_names"])
    return dataclasses.replace(settings, answer=answer, info={**settings.info, **info}), data


def serve(
    model: str = f"{DEFAULT_DIR}/{ONNX_MODEL}",
    host: str = "127.0.0.1",
    port: int = 8000,
    workers: int | None = None,
    body_timeout: float = BODY_TIMEOUT_S,
    graceful_timeout: float = GRACEFUL_TIMEOUT_S,
    max_image_pixels: int = MAX_PIXELS,
    max_request_pixels: int = MAX_REQUEST_PIXELS,
    collect_dir: str | None = None,
    collect_limit: int = DEFAULT_LIMIT,
) -> None:
    """Serve the ONNX model over HTTP: POST /predict (image uploads, a raw image body or base64 JSON),
    GET /health, /info, /docs; with --collect_dir, POST /samples stores labelled digits. SIGHUP (kill -HUP
    PID) reloads --model from disk without failing a request. Stops on Ctrl-C or SIGTERM.

    Args:
        model: the ONNX file to serve (e.g. artifacts_digits/digits_cnn_int8.onnx for the int8 model).
        host: the address to listen on: 127.0.0.1 (this machine only), 0.0.0.0 or :: (every interface), any other
            the machine has.
        port: the port to listen on.
        workers: processes answering requests, each with its own one-thread onnxruntime session (default: one
            per core this process may use).
        body_timeout: seconds a client has to send its whole request body (else 408).
        graceful_timeout: on SIGTERM or Ctrl-C, seconds the requests in flight get to be answered before the
            workers are stopped.
        max_image_pixels: the most pixels one image may have (else 422).
        max_request_pixels: the most pixels all the images of one request may have together (else 413).
        collect_dir: a folder where POST /samples (an image file and its label 0-9, multipart) stores each digit
            as a PNG file in DIR/<label>/, for `adapt DIR`; off if not given.
        collect_limit: the most files a class folder of --collect_dir may hold (else 409).
    """
    workers = len(os.sched_getaffinity(0)) if workers is None else workers
    check_ranges(
        "--",
        {
            "workers": (workers, workers >= 1, "at least 1"),
            "body_timeout": (body_timeout, body_timeout > 0, "above 0"),
            "graceful_timeout": (graceful_timeout, graceful_timeout >= 0, "at least 0"),
            "max_image_pixels": (max_image_pixels, max_image_pixels >= 1, "at least 1"),
            "max_request_pixels": (max_request_pixels, max_request_pixels >= 1, "at least 1"),
            "collect_limit": (collect_limit, collect_limit >= 1, "at least 1"),
        },
    )
    path = Path(model)
    data, answer, info = describe_model(path)
    if collect_dir is not None:
        ensure_writable_dir(collect_dir, "--collect_dir")
    sockets = listening_sockets(host, port, workers)
    rules = BodyRules(max_body_bytes=MAX_BODY_BYTES, max_images=MAX_IMAGES, body_timeout=body_timeout)
    info["limits"] = {
        "max_body_bytes": MAX_BODY_BYTES,
        "max_images_per_request": MAX_IMAGES,
        "max_image_pixels": max_image_pixels,
        "max_request_pixels": max_request_pixels,
        "body_timeout_s": body_timeout,
        "answer_timeout_s": ANSWER_TIMEOUT_S,
    }
    info["engine"] = {"workers": workers, "graceful_timeout_s": graceful_timeout}
    info["collect"] = {"limit_per_class": collect_limit} if collect_dir else None
    settings = Settings(
        str(path),
        answer,
        info,
        rules,
        max_image_pixels,
        max_request_pixels,
        graceful_timeout,
        collect_dir,
        collect_limit,
    )
    collecting = f"; POST /samples -> {collect_dir}/<label>/" if collect_dir else ""
    accuracy = f"test accuracy {answer['test_accuracy']:.4f}" if answer["test_accuracy"] else "no test accuracy"
    bound_host, bound_port = sockets[0].getsockname()[:2]
    shown_host = f"[{bound_host}]" if ":" in bound_host else bound_host
    print(
        f"lightning-digits serve: POST http://{shown_host}:{bound_port}{API_PATH} <- {path} ({accuracy}, "
        f"sha256 {answer['sha256'][:12]}){collecting}; {workers} worker(s); /docs /info /health; SIGHUP to "
        f"pid {os.getpid()} reloads the model; Ctrl-C or SIGTERM stops",
        flush=True,
    )
    try:
        Supervisor(sockets, settings, data, reloaded).run()
    finally:
        for sock in sockets:
            sock.close()
    print("lightning-digits serve: stopped", file=sys.stderr, flush=True)
