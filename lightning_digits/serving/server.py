"""The `serve` command: check the model and the address, build the LitServer (the API, the front-door guard,
the OpenAPI shapes, /info's metadata) and run it until Ctrl-C. Knows nothing of torch or training.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import sys
from pathlib import Path
from typing import Any

import litserve as ls

from lightning_digits import __version__
from lightning_digits.artifacts import DEFAULT_DIR, ONNX_MODEL
from lightning_digits.errors import UserError
from lightning_digits.onnx_predictor import OnnxDigits
from lightning_digits.serving.api import DigitsAPI
from lightning_digits.serving.guard import RequestGuard, answer_client_errors
from lightning_digits.serving.limits import ANSWER_TIMEOUT_S, BODY_TIMEOUT_S, MAX_BODY_BYTES, MAX_IMAGES
from lightning_digits.serving.openapi import document

API_PATH = "/predict"
HOSTS = ("127.0.0.1", "0.0.0.0", "::")  # the only ones LitServe 0.2.19 binds


def describe_model(path: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """Load the model once (a missing or corrupt file ends here, as one line) -> (what every answer names,
    what /info shows)."""
    if not path.is_file():
        raise UserError(f"{path} does not exist; run `lightning-digits export` (or `evaluate`) first, or pass --model")
    metadata = OnnxDigits(path, threads=1).metadata
    accuracy = metadata.get("test_accuracy")
    answer = {
        "file": path.name,
        "sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
        "test_accuracy": float(accuracy) if accuracy else None,
    }
    info = {
        "service": "lightning-digits",
        "version": __version__,
        **answer,
        "class_names": json.loads(metadata.get("class_names", "null")),
        "input_contract": metadata.get("input_contract"),
        "onnx_metadata": metadata,
        "limits": {
            "max_body_bytes": MAX_BODY_BYTES,
            "max_images_per_request": MAX_IMAGES,
            "answer_timeout_s": ANSWER_TIMEOUT_S,
        },
    }
    return answer, info


def _check_address(host: str, port: int) -> None:
    if host not in HOSTS:
        raise UserError(
            f"--host {host}: LitServe listens on 127.0.0.1 (this machine) or 0.0.0.0 / :: (every interface)"
        )
    if not 1024 <= port <= 65535:
        raise UserError(f"--port {port}: LitServe listens on ports 1024 to 65535; choose one of those")
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn does
        try:
            probe.bind((host, port))
        except OSError as exc:
            raise UserError(f"cannot listen on {host}:{port} ({exc.strerror}); choose another --port") from exc


def build_server(
    model: Path,
    answer: dict[str, Any],
    info: dict[str, Any],
    workers: int,
    max_batch_size: int,
    batch_timeout: float,
    body_timeout: float,
) -> ls.LitServer:
    api = DigitsAPI(
        str(model),
        answer,
        threads=1,  # one image at a time is the common case; more cores take more --workers
        max_batch_size=max_batch_size,
        batch_timeout=batch_timeout if max_batch_size > 1 else 0.0,
        api_path=API_PATH,
    )
    guard = {
        "path": API_PATH,
        "max_body_bytes": MAX_BODY_BYTES,
        "max_images": MAX_IMAGES,
        "body_timeout": body_timeout,
        "answer_timeout": ANSWER_TIMEOUT_S,
    }
    info = {**info, "batching": {"max_batch_size": max_batch_size, "batch_timeout_s": batch_timeout}}
    info["limits"] = {**info["limits"], "body_timeout_s": body_timeout}
    server = ls.LitServer(
        api,
        accelerator="cpu",
        workers_per_device=workers,
        timeout=ANSWER_TIMEOUT_S,  # LitServe's own: a request left waiting in the queue this long answers 504
        model_metadata=info,
        middlewares=[(RequestGuard, guard)],
        restart_workers=True,  # a worker that dies is started again; without it LitServe shuts everything down
    )
    document(server.app, API_PATH)
    answer_client_errors(server.app)
    return server


def serve(
    model: str = f"{DEFAULT_DIR}/{ONNX_MODEL}",
    host: str = "127.0.0.1",
    port: int = 8000,
    workers: int = 1,
    max_batch_size: int = 64,
    batch_timeout: float = 0.005,
    body_timeout: float = BODY_TIMEOUT_S,
) -> None:
    """Serve the ONNX model over HTTP: POST /predict (image uploads or base64 JSON), GET /health, /info, /docs.

    Args:
        model: the ONNX file to serve (e.g. artifacts_digits/digits_cnn_int8.onnx for the int8 model).
        host: 127.0.0.1 (this machine only), or 0.0.0.0 / :: (every interface).
        port: the port to listen on (1024 to 65535).
        workers: inference processes, each with its own onnxruntime session; one HTTP process per worker.
        max_batch_size: requests a worker runs through the model together (1 turns batching off).
        batch_timeout: seconds a worker waits for a batch to fill before running what it has.
        body_timeout: seconds a client has to send its whole request body (else 408).
    """
    if workers < 1 or max_batch_size < 1 or batch_timeout < 0 or body_timeout <= 0:
        raise UserError("--workers and --max_batch_size must be at least 1, --batch_timeout at least 0, "
                        "--body_timeout above 0")  # fmt: skip
    path = Path(model)
    answer, info = describe_model(path)
    _check_address(host, port)
    if "torch" in sys.modules:
        options = {"model": model, "host": host, "port": port, "workers": workers, "max_batch_size": max_batch_size,
                   "batch_timeout": batch_timeout, "body_timeout": body_timeout}  # fmt: skip
        _restart_without_torch([f"--{name}={value}" for name, value in options.items()])
    server = build_server(path, answer, info, workers, max_batch_size, batch_timeout, body_timeout)
    accuracy = f"test accuracy {answer['test_accuracy']:.4f}" if answer["test_accuracy"] else "no test accuracy"
    batching = (
        f"batches of up to {max_batch_size} within {batch_timeout * 1000:g} ms" if max_batch_size > 1 else "no batching"
    )
    shown_host = f"[{host}]" if ":" in host else host
    print(
        f"lightning-digits serve: POST http://{shown_host}:{port}{API_PATH} <- {path} ({accuracy}, "
        f"sha256 {answer['sha256'][:12]}); {workers} worker(s), {batching}; /docs /info /health; Ctrl-C stops",
        flush=True,
    )
    server.run(host=host, port=port, log_level="warning", generate_client_file=False)
    print("lightning-digits serve: stopped", file=sys.stderr, flush=True)


def _restart_without_torch(args: list[str]) -> None:
    """Replace this process (the `lightning-digits` console script, which loaded torch and Lightning for its
    other commands) with `python -m lightning_digits.serving`: LitServe spawns its workers, and a spawned
    worker re-runs the parent's main script, so every worker would load torch for nothing."""
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(sys.executable, [sys.executable, "-m", "lightning_digits.serving", *args])
