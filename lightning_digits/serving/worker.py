"""`python -m lightning_digits.serving.worker`: one worker process of `serve`. It inherits the listening socket
and its settings from the supervisor (`server.py`), runs the app of `app.py` under uvicorn until SIGTERM, and
ends with the supervisor however that ends. Knows nothing of torch or training.
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
STARTUP_FAILURE = 3  # the exit code that tells the supervisor not to start another
_PR_SET_PDEATHSIG = 1  # prctl(2): the signal this process gets when its parent ends


def main() -> None:
    # Ctrl-C reaches the whole process group; a worker stops when the supervisor says so (SIGTERM), answering
    # what is in flight, rather than dying mid-start or mid-request on the terminal's signal. Set before the
    # imports below, which take most of a worker's start.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:  # even a supervisor killed with -9 leaves no worker holding the port
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    except (OSError, AttributeError):  # not Linux: such a worker outlives its supervisor
        pass
    import uvicorn

    from lightning_digits.errors import UserError
    from lightning_digits.serving.app import Settings, build_app

    settings = Settings.from_json(json.loads(os.environ[SETTINGS_VARIABLE]))
    listening = socket.socket(fileno=int(os.environ[SOCKET_VARIABLE]))
    try:
        app = build_app(settings)
    except UserError as exc:  # the model file changed or vanished since the supervisor checked it
        print(f"lightning-digits: error: {exc}", file=sys.stderr, flush=True)
        sys.exit(STARTUP_FAILURE)
    config = uvicorn.Config(
        app, log_level="warning", timeout_graceful_shutdown=settings.graceful_timeout, server_header=False
    )
    uvicorn.Server(config).run(sockets=[listening])


if __name__ == "__main__":
    main()
