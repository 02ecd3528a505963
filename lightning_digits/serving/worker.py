"""`python -m lightning_digits.serving.worker`: one worker process of `serve`. It inherits the listening socket,
the model's bytes and its settings from the supervisor (`supervisor.py`), runs the app of `app.py` under uvicorn
until SIGTERM, says when it is serving if asked to (a reload waits for that), and ends with the supervisor
however that ends. Knows nothing of torch or training.
"""

from __future__ import annotations

import ctypes
import json
import os
import signal
import socket
import sys

SETTINGS_VARIABLE = "LIGHTNING_DIGITS_SERVE_SETTINGS"
SOCKET_VARIABLE = "LIGHTNING_DIGITS_SERVE_FD"
MODEL_VARIABLE = "LIGHTNING_DIGITS_SERVE_MODEL_FD"  # a file holding the model's bytes, as the supervisor checked them
READY_VARIABLE = "LIGHTNING_DIGITS_SERVE_READY_FD"  # optional: a pipe that gets one byte once this worker serves
STARTUP_FAILURE = 3  # the exit code that tells the supervisor not to start another
_PR_SET_PDEATHSIG = 1  # prctl(2): the signal this process gets when its parent ends


def main() -> None:
    # Ctrl-C reaches the whole process group; a worker stops when the supervisor says so (SIGTERM), answering
    # what is in flight, rather than dying mid-start or mid-request on the terminal's signal. Set before the
    # imports below, which take most of a worker's start.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)  # a reload is the supervisor's to do, by replacing workers
    try:  # even a supervisor killed with -9 leaves no worker holding the port
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    except (OSError, AttributeError):  # not Linux: such a worker outlives its supervisor
        pass
    from lightning_digits.errors import UserError
    from lightning_digits.serving.app import Settings, build_app
    from lightning_digits.serving.draining import DrainingServer

    settings = Settings.from_json(json.loads(os.environ[SETTINGS_VARIABLE]))
    listening = socket.socket(fileno=int(os.environ[SOCKET_VARIABLE]))
    model_fd = int(os.environ[MODEL_VARIABLE])
    try:  # pread: the file offset is shared with the other workers that inherit this file
        app = build_app(settings, os.pread(model_fd, os.fstat(model_fd).st_size, 0))
    except UserError as exc:  # onnxruntime refuses here what it loaded in the supervisor (memory, say)
        print(f"lightning-digits: error: {exc}", file=sys.stderr, flush=True)
        sys.exit(STARTUP_FAILURE)
    os.close(model_fd)
    ready_fd = int(os.environ[READY_VARIABLE]) if READY_VARIABLE in os.environ else None

    async def say_ready() -> None:
        """uvicorn's own notification hook: first called on the first tick after it began accepting on the
        socket, then every `timeout_notify` seconds; the first call writes the byte."""
        nonlocal ready_fd
        if ready_fd is not None:
            os.write(ready_fd, b"\n")
            os.close(ready_fd)
            ready_fd = None

    DrainingServer(
        app,
        log_level="warning",
        timeout_graceful_shutdown=settings.graceful_timeout,
        server_header=False,
        callback_notify=say_ready,
    ).run(sockets=[listening])


if __name__ == "__main__":
    main()
