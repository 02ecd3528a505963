"""The real command in a process group of its own (Lightning starts the other DDP ranks inside it), its output in
a file (a pipe nobody reads can fill up and stall a rank), and bounded waits: whatever happens, the whole group is
ended when the test ends, so a hung rank fails the test instead of outliving it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from .conftest import REPO

# Two CPU processes (gloo) with a process-group timeout of one minute instead of 30: a collective that waits for
# a rank that is gone gives up within the test rather than after it.
DDP_BOUNDED = [
    "--trainer.accelerator=cpu",
    "--trainer.devices=2",
    "--trainer.strategy=lightning.pytorch.strategies.DDPStrategy",
    "--trainer.strategy.timeout=0:01:00",
]


class CommandGroup:
    def __init__(self, args: list[str], folder: Path, cwd: Path = REPO) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.log = folder / "output.txt"
        with open(self.log, "w") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "lightning_digits", *args],
                cwd=cwd,
                env={**os.environ, "PYTHONPATH": str(REPO)},  # tests.faults, wherever it runs
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def __enter__(self) -> CommandGroup:
        return self

    def __exit__(self, *exc: object) -> None:
        if not self.gone(within=0):
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def until(self, path: Path, seconds: float) -> None:
        """Wait until `path` exists, failing if the command ends first or it takes longer than `seconds`."""
        deadline = time.monotonic() + seconds
        while not path.exists():
            if self.process.poll() is not None:
                pytest.fail(f"ended ({self.process.returncode}) before {path.name} appeared:\n{self.output()[-3000:]}")
            if time.monotonic() > deadline:
                pytest.fail(f"{path.name} did not appear within {seconds} s:\n{self.output()[-3000:]}")
            time.sleep(0.2)

    def wait(self, seconds: float, since: str) -> int:
        """The exit code, or a failure naming what it was still doing `seconds` after `since`."""
        try:
            return self.process.wait(timeout=seconds)
        except subprocess.TimeoutExpired:
            pytest.fail(f"still running {seconds} s after {since}:\n{self.output()[-3000:]}")

    def gone(self, within: float) -> bool:
        """Whether no process of the group is left (the ranks reaped), waiting up to `within` seconds."""
        deadline = time.monotonic() + within
        while True:
            try:
                os.killpg(self.process.pid, 0)
            except ProcessLookupError:
                return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.1)
