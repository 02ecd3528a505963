"""Two runs, one folder: the second stops before any work with one line naming the folder and the first run's
pid; the lock goes with its holder, kill -9 included; only the launching process of a multi-process run locks.
The holder is always another process (flock locks belong to open files, and one process's second open of the
lock file would conflict with its first)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from lightning_digits import run_lock
from lightning_digits.errors import UserError

from .conftest import REPO, run_cli, tiny_fit_args, write_dataset

HOLDER = """
import sys, time
from lightning_digits import run_lock
with run_lock.command_scope():
    run_lock.hold(sys.argv[1], "fit", "--artifacts_dir")
    time.sleep(300)
"""


def _wait_until_held(folder: Path, process: subprocess.Popen, timeout: float = 120) -> None:
    """Until `process` has written its pid into the folder's lock file (it does so once it holds the lock)."""
    lock, deadline = folder / run_lock.LOCK_FILE, time.monotonic() + timeout
    while not (lock.is_file() and lock.read_text().startswith(f"{process.pid} ")):
        assert process.poll() is None, f"the holder ended (exit {process.returncode})"
        assert time.monotonic() < deadline, f"{folder} was never locked by pid {process.pid}"
        time.sleep(0.05)


@pytest.fixture
def holder(tmp_path):
    """Another process holding tmp_path/art's lock, as a running fit does; killed afterwards."""
    folder = tmp_path / "art"
    folder.mkdir()
    process = subprocess.Popen([sys.executable, "-c", HOLDER, str(folder)], cwd=REPO)
    try:
        _wait_until_held(folder, process, timeout=30)
        yield folder, process
    finally:
        process.kill()
        process.wait(timeout=30)


def test_a_second_run_into_a_held_folder_is_refused_naming_the_folder_and_the_pid(holder):
    folder, process = holder
    expected = (
        f"{folder} is in use by another lightning-digits run (`fit`, pid {process.pid}); wait for it to end, "
        "or choose another --checkpoint"
    )
    with run_lock.command_scope(), pytest.raises(UserError) as refused:
        run_lock.hold(folder, "evaluate", "--checkpoint")
    assert str(refused.value) == expected
    with pytest.raises(UserError) as refused:  # reading (ensemble, export): refused the same way
        run_lock.check_not_written(folder, "--checkpoint")
    assert str(refused.value) == expected


def test_kill_9_of_the_holder_releases_the_folder(holder):
    folder, process = holder
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)
    with run_lock.command_scope():
        run_lock.hold(folder, "fit", "--artifacts_dir")
        run_lock.hold(folder, "fit", "--artifacts_dir")  # the same command twice (a folder named by two options)
        assert (folder / run_lock.LOCK_FILE).read_text().split()[0] == str(os.getpid())
    run_lock.check_not_written(folder, "--checkpoint")  # and released again when the command ends


@pytest.mark.parametrize("variable", ["LOCAL_RANK", "RANK", "NODE_RANK", "SLURM_PROCID"])
def test_the_other_ranks_of_a_run_do_not_lock(variable, holder, monkeypatch):
    """Lightning's DDP launcher re-executes the command with LOCAL_RANK=1..; torchrun and SLURM set the others."""
    folder, _ = holder
    monkeypatch.setenv(variable, "1")
    with run_lock.command_scope():
        run_lock.hold(folder, "fit", "--artifacts_dir")  # no refusal: the launching process (rank 0) holds it


@pytest.mark.slow
def test_two_fits_into_one_folder_the_second_stops_before_any_work_and_readers_refuse(tmp_path, cli):
    data = write_dataset(tmp_path / "data", n_train=840, n_test=200)
    art = tmp_path / "art"
    # It must outlive the readers below: 100 epochs, and early stopping off (on this easy data the validation loss
    # stops falling within a few epochs).
    longer = ("--trainer.max_epochs=100", "--early_stopping.patience=1000")
    command = [sys.executable, "-m", "lightning_digits", *tiny_fit_args(data, art, *longer)]
    # One thread: it only has to be alive, not to take both cores from the rest of the test.
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    first = subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        _wait_until_held(art, first)
        held_by = f"{art} is in use by another lightning-digits run (`fit`, pid {first.pid}); wait for it to end"
        second = run_cli(*tiny_fit_args(data, art, "--trainer.max_epochs=1"), timeout=180)
        assert second.returncode == 2 and "Traceback" not in second.stderr, second.stderr[-3000:]
        [line] = [line for line in second.stderr.splitlines() if "error" in line]
        assert line == f"lightning-digits: error: {held_by}, or choose another --artifacts_dir"
        assert [p.name for p in (art / "logs").iterdir()] == ["version_0"], "the second run started a log"

        deadline = time.monotonic() + 120
        while not (art / "digits_cnn_final.ckpt").is_file():
            assert first.poll() is None and time.monotonic() < deadline, "the first fit saved no checkpoint"
            time.sleep(0.1)
        checkpoints = [str(art / "digits_cnn.ckpt"), str(art / "digits_cnn_final.ckpt")]
        for command in (["evaluate", f"--checkpoint={checkpoints[0]}"], ["ensemble", *checkpoints]):
            refused = cli(*command)
            assert refused.code == 2 and held_by in refused.err, refused.err[-3000:]

    finally:
        first.kill()
        first.wait(timeout=30)
