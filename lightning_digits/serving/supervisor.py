"""The engine of `serve`: one listening socket per worker on the same address, and the supervisor that keeps a
worker process (`worker.py`) running on each until SIGTERM or Ctrl-C, then stops them all within a bounded
time. On SIGHUP it reloads the model: the new file is checked here first, then each worker in turn gets a
successor on its socket, and is stopped only once that one serves. Knows nothing of HTTP or images; of the
model, only the function that checks it (`server.py`).

Written here rather than taken from uvicorn (`--workers`): uvicorn's supervisor checks each worker's health
with a blocking ping of up to 5 s in the loop that also handles signals, so a stop waits behind a starting or
busy worker; its stop waits for workers without a limit; and it starts them with multiprocessing, which adds
a resource-tracker process and re-imports the parent's main module (here, the whole CLI) in each worker.
"""

from __future__ import annotations

import dataclasses
import json
import os
import select
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable

from lightning_digits.errors import UserError
from lightning_digits.serving.app import Settings
from lightning_digits.serving.limits import DRAIN_S
from lightning_digits.serving.worker import (
    MODEL_VARIABLE,
    READY_VARIABLE,
    SETTINGS_VARIABLE,
    SOCKET_VARIABLE,
    STARTUP_FAILURE,
)

PROG = "lightning-digits serve"
READY_TIMEOUT_S = 60.0  # a successor not serving by then is stopped and the reload abandoned


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


class Served:
    """What a set of workers serves: the settings, and the model's bytes in an unlinked temporary file that
    each worker inherits and reads. Every worker, a replacement for one that died included, loads the bytes
    that were checked, whatever the model's file holds by then: the model changes only on a reload."""

    def __init__(self, settings: Settings, model: bytes) -> None:
        self.settings = settings
        self.file = tempfile.TemporaryFile()
        self.file.write(model)
        self.file.flush()
        self.environment = {
            **os.environ,
            SETTINGS_VARIABLE: json.dumps(dataclasses.asdict(settings)),
            MODEL_VARIABLE: str(self.file.fileno()),
        }


class Supervisor:
    """Keeps a worker running on each listening socket until SIGTERM or SIGINT, then stops them: SIGTERM to
    each (it drains its connections for up to DRAIN_S, then answers what is in flight for up to
    `graceful_timeout` s), SIGKILL to any still alive a second later. A worker that dies is replaced on its
    socket; connections that arrive meanwhile wait in its queue.
    SIGHUP reloads: `check(settings)` reads the model again -> (new settings, the model's bytes), or raises
    UserError to keep the old one."""

    def __init__(
        self,
        sockets: list[socket.socket],
        settings: Settings,
        model: bytes,
        check: Callable[[Settings], tuple[Settings, bytes]],
    ) -> None:
        self.sockets = sockets
        self.stop_within = DRAIN_S + settings.graceful_timeout + 1.0  # a worker's drain, its shutdown, a margin
        self.served = Served(settings, model)
        self.check = check
        self.stopping = threading.Event()
        self.reload_asked = threading.Event()
        self.workers: list[subprocess.Popen] = []  # one per socket
        self.retiring: list[tuple[subprocess.Popen, float]] = []  # replaced workers and when to kill them

    def start_worker(self, slot: int, served: Served, ready: int | None = None) -> subprocess.Popen:
        """A worker on socket `slot`; `ready`: the write end of a pipe that gets a byte once it serves."""
        fd = self.sockets[slot].fileno()
        environment = {**served.environment, SOCKET_VARIABLE: str(fd)}
        if ready is not None:
            environment[READY_VARIABLE] = str(ready)
        command = [sys.executable, "-m", "lightning_digits.serving.worker"]
        passed = [fd, served.file.fileno(), *([ready] if ready is not None else [])]
        return subprocess.Popen(command, env=environment, pass_fds=passed)

    def run(self) -> None:
        """Serve until told to stop; raises UserError, once every worker is stopped, if one could not start."""
        for stop_signal in (signal.SIGTERM, signal.SIGINT):
            signal.signal(stop_signal, lambda *_: self.stopping.set())
        signal.signal(signal.SIGHUP, lambda *_: self.reload_asked.set())
        self.workers = [self.start_worker(slot, self.served) for slot in range(len(self.sockets))]
        while not self.stopping.wait(0.1):
            self.replace_ended()
            if any(worker.returncode == STARTUP_FAILURE for worker in self.workers):  # another would fail alike
                break
            if self.reload_asked.is_set():
                self.reload_asked.clear()
                self.reload()
        self.stop([*self.workers, *(worker for worker, _ in self.retiring)])
        if any(worker.returncode == STARTUP_FAILURE for worker in self.workers):
            raise UserError("a worker could not start (its error is above); nothing is being served")

    def replace_ended(self) -> None:
        """Start another worker in place of each that ended; reap the retired ones, killing any past its time."""
        for slot, worker in enumerate(self.workers):
            if worker.poll() is None or worker.returncode == STARTUP_FAILURE:
                continue
            print(
                f"{PROG}: worker {worker.pid} ended (exit code {worker.returncode}); starting another",
                file=sys.stderr,
                flush=True,
            )
            self.workers[slot] = self.start_worker(slot, self.served)
        now = time.monotonic()
        for worker, deadline in self.retiring:
            if worker.poll() is None and now > deadline:
                worker.kill()
        self.retiring = [(worker, deadline) for worker, deadline in self.retiring if worker.poll() is None]

    def reload(self) -> None:
        """Check the model's file again; if it passes, replace the workers one at a time, each only once its
        successor serves on the same socket, so no request is refused or cut. One line says how it ended."""
        old = self.served.settings
        try:
            settings, model = self.check(old)
        except UserError as exc:
            print(
                f"{PROG}: reload refused, still serving sha256 {old.answer['sha256'][:12]}: {exc}",
                file=sys.stderr,
                flush=True,
            )
            return
        served = Served(settings, model)
        for slot in range(len(self.workers)):
            if not self.hand_over(slot, served):
                if self.stopping.is_set():
                    return
                # The slots already handed over serve the new model, the others the old one; say so.
                print(
                    f"{PROG}: reload stopped: a new worker did not start serving within {READY_TIMEOUT_S:g} s "
                    f"(its error, if any, is above); {slot} of {len(self.workers)} worker(s) serve sha256 "
                    f"{settings.answer['sha256'][:12]}, the others {old.answer['sha256'][:12]}",
                    file=sys.stderr,
                    flush=True,
                )
                self.served = served  # a worker that dies from now on is replaced with what the reload checked
                return
        self.served = served
        print(
            f"{PROG}: reloaded {settings.model} (sha256 {settings.answer['sha256'][:12]}); "
            f"{len(self.workers)} worker(s) replaced",
            flush=True,
        )

    def hand_over(self, slot: int, served: Served) -> bool:
        """Start a successor on `slot`'s socket and wait until it serves (bounded, and given up on a stop); then
        SIGTERM the old worker, which answers what it has in flight. False, and the successor stopped, if it
        did not come up."""
        read, write = os.pipe()
        try:
            successor = self.start_worker(slot, served, ready=write)
        finally:
            os.close(write)  # the successor's copy is then the only one: its exit reads as end of file
        try:
            serving = self._wait_ready(read)
        finally:
            os.close(read)
        if not serving:
            self.stop([successor])
            return False
        self.workers[slot].send_signal(signal.SIGTERM)
        self.retiring.append((self.workers[slot], time.monotonic() + self.stop_within))
        self.workers[slot] = successor
        return True

    def _wait_ready(self, read: int) -> bool:
        deadline = time.monotonic() + READY_TIMEOUT_S
        while not self.stopping.is_set() and (left := deadline - time.monotonic()) > 0:
            readable, _, _ = select.select([read], [], [], min(left, 0.1))
            if readable:
                return os.read(read, 1) == b"\n"  # b"": it ended before serving
        return False

    def stop(self, workers: list[subprocess.Popen]) -> None:
        for worker in workers:
            if worker.poll() is None:
                worker.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + self.stop_within
        for worker in workers:
            try:
                worker.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                worker.kill()
                worker.wait()
