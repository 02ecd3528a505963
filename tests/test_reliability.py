"""Crashes, interruptions and reruns: kill -9 and Ctrl-C during fit resume, evaluate killed in the middle of a
write keeps the old artifacts whole, and two seeded deterministic fits in two processes are identical.
The processes killed or interrupted are real subprocesses; the runs around them go through main(argv)."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import onnx
import pytest
import torch
from PIL import Image

from .conftest import REPO, run_cli, sigint_as_from_a_terminal, tiny_fit_args, write_dataset


def _start(args: list[str]) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "lightning_digits", *args],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        preexec_fn=sigint_as_from_a_terminal,
    )


def _fit_until_first_epoch(data: Path, art: Path, max_epochs: int) -> tuple[subprocess.Popen, Path]:
    """Start `fit` in the background and return once the first epoch's final checkpoint exists."""
    final = art / "digits_cnn_final.ckpt"
    process = _start(tiny_fit_args(data, art, f"--trainer.max_epochs={max_epochs}"))
    deadline = time.monotonic() + 120
    while not final.is_file():
        assert process.poll() is None, process.stdout.read()[-3000:]
        assert time.monotonic() < deadline, f"{final} never appeared"
        time.sleep(0.2)
    return process, final


def _saved(path: Path) -> dict:
    return torch.load(path, map_location="cpu", weights_only=True)


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    # 640 training images after the 200 for validation, and the default config's 34 style digits (5%): 21 steps of 32
    # an epoch, several seconds apart to kill between.
    return write_dataset(tmp_path_factory.mktemp("reliability") / "data", n_train=840, n_test=200)


@pytest.mark.slow
def test_kill_9_during_fit_then_resume_finishes_the_same_run(tmp_path, data, cli):
    art = tmp_path / "art"
    process, final = _fit_until_first_epoch(data, art, max_epochs=4)
    process.send_signal(signal.SIGKILL)
    process.wait()
    killed_at = _saved(final)
    assert killed_at["epoch"] < 3, "the run must have been killed before its end"

    resumed = cli(*tiny_fit_args(data, art, "--trainer.max_epochs=4", "--ckpt_path=last"))
    assert resumed.code == 0, resumed.err[-3000:]
    finished = _saved(final)
    assert finished["epoch"] == 3 and finished["global_step"] > killed_at["global_step"]
    early_stopping = next(v for k, v in finished["callbacks"].items() if k.startswith("EarlyStopping"))
    assert "wait_count" in early_stopping and finished["optimizer_states"] and finished["lr_schedulers"]
    latest = max(art.glob("logs/version_*"), key=lambda p: int(p.name.removeprefix("version_")))
    epochs = sorted({int(r["epoch"]) for r in csv.DictReader(open(latest / "metrics.csv")) if r["val_loss"]})
    assert epochs[0] == killed_at["epoch"] + 1 and epochs[-1] == 3, "resumed after the last saved epoch"


@pytest.mark.slow
@pytest.mark.parametrize(
    ("fault", "saved_step"),
    [
        # Ctrl-C at the start of step 25 (in epoch 1 of 21 steps each): the state it reached is saved.
        (["tests.faults.SignalAtStep", "--trainer.callbacks.step=25", "--trainer.callbacks.name=SIGINT"], 25),
        # Ctrl-C while epoch 1 validates: a state saved there cannot be resumed (InterruptCheckpoint), so the
        # checkpoint of epoch 0's end (step 21) stays and the resume trains epoch 1 again.
        (["tests.faults.CtrlCInValidation", "--trainer.callbacks.epoch=1"], 21),
    ],
    ids=["while training", "while validating"],
)
def test_ctrl_c_stops_cleanly_with_a_resumable_checkpoint(tmp_path, data, cli, fault, saved_step):
    """The signal is real, sent by the run to itself at a chosen point (from outside, it would land wherever the run
    happens to be)."""
    art = tmp_path / "art"
    callback, *arguments = fault
    run = run_cli(
        *tiny_fit_args(data, art, "--trainer.max_epochs=50", f"--trainer.callbacks+={callback}", *arguments),
        timeout=120,
    )
    assert run.returncode != 0 and "Traceback" not in run.stderr, run.stderr[-3000:]
    interrupted = _saved(art / "digits_cnn_final.ckpt")
    assert interrupted["global_step"] == saved_step, "the interrupt saved the state it reached, if it can resume"
    resumed = cli(*tiny_fit_args(data, art, f"--trainer.max_epochs={interrupted['epoch'] + 2}", "--ckpt_path=last"))
    assert resumed.code == 0, resumed.err[-3000:]
    assert _saved(art / "digits_cnn_final.ckpt")["epoch"] == interrupted["epoch"] + 1


@pytest.mark.slow
def test_sigterm_stops_after_the_step_with_its_state_saved_and_says_so(tmp_path, data):
    """One process (DDP's case is in test_ddp.py): the signal comes at step 3, from inside, as from a scheduler."""
    art = tmp_path / "art"
    run = run_cli(
        *tiny_fit_args(
            data,
            art,
            "--trainer.max_epochs=5",
            "--trainer.callbacks+=tests.faults.SignalAtStep",
            "--trainer.callbacks.step=3",
        ),
        timeout=120,
    )
    assert run.returncode == 128 + signal.SIGTERM, run.stderr[-3000:]
    assert "SIGTERM: stopped after step 4; resume with --ckpt_path last" in run.stderr
    assert "Traceback" not in run.stderr, run.stderr[-3000:]
    assert _saved(art / "digits_cnn_final.ckpt")["global_step"] == 4


@pytest.mark.slow
def test_two_seeded_deterministic_fits_are_identical(tmp_path, data, cli):
    """One fit in this process, one in a fresh one: nothing may depend on the process (hash seeds, ...)."""
    args = {
        name: tiny_fit_args(
            data,
            tmp_path / name,
            "--trainer.max_epochs=2",
            "--trainer.limit_train_batches=4",
            "--trainer.deterministic=true",
            "--seed_everything=7",
        )
        for name in ("a", "b")
    }
    try:
        in_process = cli(*args["a"])
    finally:
        torch.use_deterministic_algorithms(False)  # Lightning turned it on for this whole process
    assert in_process.code == 0, in_process.err[-3000:]
    fresh = run_cli(*args["b"])
    assert fresh.returncode == 0, fresh.stderr[-3000:]
    runs = []
    for name in ("a", "b"):
        art = tmp_path / name
        metrics = [r["val_loss"] + r["val_acc"] for r in csv.DictReader(open(art / "logs/version_0/metrics.csv"))]
        runs.append((metrics, _saved(art / "digits_cnn_final.ckpt")["state_dict"]))
    (metrics_a, weights_a), (metrics_b, weights_b) = runs
    assert metrics_a and metrics_a == metrics_b
    assert weights_a.keys() == weights_b.keys()
    assert all(torch.equal(weights_a[k], weights_b[k]) for k in weights_a)


def _artifact_being_written(art: Path, names: set[str]) -> str | None:
    """The artifact whose temporary file (atomic.py's `.<name>.<random><suffix>`) is in `art` now, if any."""
    for entry in os.scandir(art):
        for name in names:
            if entry.name.startswith(f".{name}."):
                return name
    return None


def _kill_during_a_write(args: list[str], art: Path, names: set[str], timeout: float = 180) -> str:
    """Start `args` and SIGKILL it as soon as one of `names` is being written; that name."""
    process = _start(args)
    deadline = time.monotonic() + timeout
    try:
        while process.poll() is None:
            if name := _artifact_being_written(art, names):
                process.send_signal(signal.SIGKILL)
                process.wait()
                return name
            assert time.monotonic() < deadline, "evaluate neither wrote nor ended"
            time.sleep(0.002)
        output = process.stdout.read()[-3000:]
        raise AssertionError(f"evaluate ended (exit {process.returncode}) before a write of {sorted(names)}:\n{output}")
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def _assert_whole(path: Path) -> None:
    assert path.is_file() and path.stat().st_size > 0, f"{path.name} vanished or is empty"
    if path.suffix == ".png":
        with Image.open(path) as image:
            image.verify()
    elif path.suffix == ".json":
        json.loads(path.read_text())
    elif path.suffix == ".onnx":
        onnx.checker.check_model(onnx.load(str(path)))
    elif path.suffix == ".csv":
        assert len(list(csv.reader(path.read_text().splitlines()))) > 1, f"{path.name} has no rows"


@pytest.mark.slow
def test_killed_evaluate_leaves_the_previous_artifacts_whole(tmp_path, data, cli):
    art = tmp_path / "art"
    fit = cli(*tiny_fit_args(data, art, "--trainer.max_epochs=1"))
    assert fit.code == 0, fit.err[-3000:]
    evaluate = ["evaluate", f"--checkpoint={art / 'digits_cnn.ckpt'}", f"--data_dir={data}", "--baseline_subset=500"]
    first = cli(*evaluate)
    assert first.code == 0, first.err[-3000:]
    reports = {p.name for p in art.iterdir() if p.is_file() and not p.name.endswith(".ckpt")}
    assert len(reports) >= 10, reports
    interrupted: list[str] = []
    for _ in range(3):  # in the middle of three different writes: each run goes on past the writes already hit
        interrupted.append(_kill_during_a_write(evaluate, art, reports - set(interrupted)))
        for report in reports:
            _assert_whole(art / report)
    assert len(set(interrupted)) == 3, interrupted
