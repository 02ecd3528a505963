"""The engine of `serve`: one listening socket per worker on the same address, and the supervisor that keeps a
worker process (`worker.py`) running on each until SIGTERM or Ctrl-C, then stops them all within a bounded
time. Knows nothing of HTTP, images or the model.

Written here rather than taken from uvicorn (`--workers`): uvicorn's supervisor checks each worker's health
with a blocking ping of up to 5 s in the loop that also handles signals, so a stop waits behind a starting or
busy worker; its stop waits for workers without a limit; and it starts them with multiprocessing, which adds
a resource-tracker process and re-imports the parent's main module (here, the whole CLI) in each worker.
"""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time

from lightning_digits.errors import UserError
from lightning_digits.serving.app import Settings
from lightning_digits.serving.worker import SETTINGS_VARIABLE, SOCKET_VARIABLE, STARTUP_FAILURE


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
