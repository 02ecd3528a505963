"""Processes that benches and tests start and must stop: a free localhost port, a server started in a process
group of its own, waited on until healthy, and stopped the way process managers and terminals stop it, with
every wait bounded and the survivors named when a stop fails. bench/serve.py imports it as a sibling; the tests
import it from here (tests/conftest.py puts bench/ on the path), so bench/ needs nothing of tests/."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
import urllib.request
from pathlib import Path


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class ProcessGroup:
    """A command started as the leader of a new process group (so a signal reaches all it starts, and nothing
    of the test's own group), with its output going to `log`."""

    def __init__(self, command: list[str], log: Path, cwd: Path | None = None, env: dict | None = None) -> None:
        self.log = log
        with log.open("w") as out:
            self.process = subprocess.Popen(
                command,
                cwd=cwd,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                # A child of a non-interactive shell inherits SIGINT as ignored; Ctrl-C must reach this one.
                preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
            )
        self.pgid = self.process.pid

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def members(self) -> dict[int, str]:
        """pid -> command line of every live process in the group (zombies, already exited, left out)."""
        found = {}
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
                if int(fields[2]) != self.pgid or fields[0] == "Z":
                    continue
                found[int(entry.name)] = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode().strip()
            except (OSError, IndexError):
                continue
        return found

    def wait_healthy(self, url: str, within: float = 60.0) -> float:
        """Seconds until `url` answered 200; fails naming the output when it does not within `within`."""
        started = time.monotonic()
        while time.monotonic() - started < within and self.process.poll() is None:
            try:
                with urllib.request.urlopen(url, timeout=1) as answer:
                    if answer.status == 200:
                        return time.monotonic() - started
            except OSError:
                time.sleep(0.05)
        self.kill()
        raise AssertionError(
            f"{url} not healthy within {within:g} s (exit code {self.process.poll()}):\n{self.output()[-3000:]}"
        )

    def send(self, sig: int, group: bool = False) -> None:
        """`sig` to the leader (as systemd, Docker and Kubernetes send SIGTERM), or to the whole group (as a
        terminal sends Ctrl-C)."""
        if group:
            os.killpg(self.pgid, sig)
        else:
            self.process.send_signal(sig)

    def wait_gone(self, within: float) -> None:
        """Wait until the leader has exited and no process of the group is left; else kill them all and fail,
        naming each survivor."""
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            if self.process.poll() is not None and not self.members():
                return
            time.sleep(0.05)
        survivors = self.members()
        self.kill()
        raise AssertionError(f"still alive {within:g} s after the stop: {survivors}\n{self.output()[-3000:]}")

    def stop(self, sig: int = signal.SIGINT, group: bool = True, within: float = 10.0) -> int:
        """Stop it (Ctrl-C to the group by default) and return the leader's exit code."""
        if self.process.poll() is None:
            self.send(sig, group)
        self.wait_gone(within)
        return self.process.returncode

    def kill(self) -> None:
        try:
            os.killpg(self.pgid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.process.wait(timeout=10)
