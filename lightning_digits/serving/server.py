"""The `serve` command: check the model and the address, then supervise worker processes (`worker.py`, each
the app of `app.py` under uvicorn) that share one listening socket: a worker that dies is replaced, and
SIGTERM or Ctrl-C stops them all within a bounded time. Knows nothing of torch or training.

The supervisor is written here rather than taken from uvicorn (`--workers`): uvicorn's checks each worker's
health with a blocking ping of up to 5 s in the loop that also handles signals, so a stop waits behind a
starting or busy worker, its stop waits for workers without a limit, and it starts them with
multiprocessing, which adds a resource-tracker process and re-imports the parent's main module in each.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from lightning_digits import __version__
from lightning_digits.artifacts import DEFAULT_DIR, ONNX_MODEL
from lightning_digits.data.images import MAX_PIXELS
from lightning_digits.errors import UserError
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
from lightning_digits.serving.worker import SETTINGS_VARIABLE, SOCKET_VARIABLE, STARTUP_FAILURE


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
    }
    return answer, info


def listening_sockets(host: str, port: int, count: int) -> list[socket.socket]:
    """One listening socket per worker, all on the same address with SO_REUSEPORT, so that the kernel spreads
    new connections evenly over the workers; workers sharing one socket take them unevenly (whichever wakes
    first accepts a burst). They are bound here, in the supervisor, so that a host that does not resolve or an
    address in use is one line before any worker starts; a first bind without SO_REUSEPORT finds an address
    held by anyone else, another `serve` included."""
    try:
        family, kind, protocol, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
    except socket.gaierror as exc:
        raise UserError(f"--host {host}: not an address this machine can listen on ({exc.strerror})") from exc
    sockets: list[socket.socket] = []
    try:
        for reuse_port in (False, *[True] * count):
            sock = socket.socket(family, kind, protocol)
            sockets.append(sock)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn does
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, reuse_port)
            sock.bind(address)
            address = sock.getsockname()  # the port the system chose, for --port 0
            if not reuse_port:
                sock.close()
            else:  # connections made while a worker starts wait in its queue rather than being refused
                sock.listen(2048)
    except OSError as exc:
        for sock in sockets:
            sock.close()
        raise UserError(f"cannot listen on {host}:{port} ({exc.strerror}); choose another --port or --host") from exc
    return sockets[1:]


class Supervisor:
    """Keeps a worker running on each listening socket until SIGTERM or SIGINT, then stops them: SIGTERM to
    each (it answers what is in flight for up to `graceful_timeout` s), SIGKILL to any still alive a second
    later. A worker that dies is replaced on its socket; connections that arrive meanwhile wait in its queue."""

    def __init__(self, sockets: list[socket.socket], settings: Settings) -> None:
        self.sockets = sockets
        self.graceful_timeout = settings.graceful_timeout
        self.environment = {**os.environ, SETTINGS_VARIABLE: json.dumps(dataclasses.asdict(settings))}
        self.stopping = threading.Event()

    def start_worker(self, slot: int) -> subprocess.Popen:
        fd = self.sockets[slot].fileno()
        command = [sys.executable, "-m", "lightning_digits.serving.worker"]
        return subprocess.Popen(command, env={**self.environment, SOCKET_VARIABLE: str(fd)}, pass_fds=[fd])

    def run(self) -> None:
        """Serve until told to stop; raises UserError, once every worker is stopped, if one could not start."""
        for stop_signal in (signal.SIGTERM, signal.SIGINT):
            signal.signal(stop_signal, lambda *_: self.stopping.set())
        workers = [self.start_worker(slot) for slot in range(len(self.sockets))]
        while not self.stopping.wait(0.1):
            for slot, worker in enumerate(workers):
                if worker.poll() is None or worker.returncode == STARTUP_FAILURE:
                    continue
                print(f"lightning-digits serve: worker {worker.pid} ended (exit code {worker.returncode}); "
                      "starting another", file=sys.stderr, flush=True)  # fmt: skip
                workers[slot] = self.start_worker(slot)
            if any(worker.returncode == STARTUP_FAILURE for worker in workers):  # another would fail the same way
                break
        self.stop(workers)
        if any(worker.returncode == STARTUP_FAILURE for worker in workers):
            raise UserError("a worker could not start (its error is above); nothing is being served")

    def stop(self, workers: list[subprocess.Popen]) -> None:
        for worker in workers:
            if worker.poll() is None:
                worker.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + self.graceful_timeout + 1.0
        for worker in workers:
            try:
                worker.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                worker.kill()
                worker.wait()


def serve(
    model: str = f"{DEFAULT_DIR}/{ONNX_MODEL}",
    host: str = "127.0.0.1",
    port: int = 8000,
    workers: int | None = None,
    body_timeout: float = BODY_TIMEOUT_S,
    graceful_timeout: float = GRACEFUL_TIMEOUT_S,
    max_image_pixels: int = MAX_PIXELS,
    max_request_pixels: int = MAX_REQUEST_PIXELS,
) -> None:
    """Serve the ONNX model over HTTP: POST /predict (image uploads, a raw image body or base64 JSON),
    GET /health, /info, /docs. Stops on Ctrl-C or SIGTERM.

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
    """
    workers = len(os.sched_getaffinity(0)) if workers is None else workers
    if workers < 1 or body_timeout <= 0 or graceful_timeout < 0 or min(max_image_pixels, max_request_pixels) < 1:
        raise UserError("--workers and the pixel limits must be at least 1, --body_timeout above 0, "
                        "--graceful_timeout at least 0")  # fmt: skip
    path = Path(model)
    answer, info = describe_model(path)
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
    settings = Settings(str(path), answer, info, rules, max_image_pixels, max_request_pixels, graceful_timeout)
    accuracy = f"test accuracy {answer['test_accuracy']:.4f}" if answer["test_accuracy"] else "no test accuracy"
    bound_host, bound_port = sockets[0].getsockname()[:2]
    shown_host = f"[{bound_host}]" if ":" in bound_host else bound_host
    print(
        f"lightning-digits serve: POST http://{shown_host}:{bound_port}{API_PATH} <- {path} ({accuracy}, "
        f"sha256 {answer['sha256'][:12]}); {workers} worker(s); /docs /info /health; Ctrl-C or SIGTERM stops",
        flush=True,
    )
    try:
        Supervisor(sockets, settings).run()
    finally:
        for sock in sockets:
            sock.close()
    print("lightning-digits serve: stopped", file=sys.stderr, flush=True)
