"""Faults of the disk lose nothing: every writer refused by a full disk ends in one line and leaves its previous
file as it was; a fit whose checkpoint save fails keeps the last good checkpoints and resumes from them; a
kill -9 in the middle of a checkpoint write leaves only loadable checkpoints.

A full disk without privileges: RLIMIT_FSIZE in the child (Python ignores SIGXFSZ, so a write past the limit
raises OSError(EFBIG) as a full disk raises ENOSPC). Where user namespaces are allowed, a real 6 MiB tmpfs
(full, then read-only) shows the same from the kernel's own errors; skipped with the reason elsewhere."""

from __future__ import annotations

import ast
import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from lightning_digits.checkpoints import load_checkpoint

from .conftest import REPO, tiny_fit_args, write_dataset

FAMILIES = [
    "checkpoint",
    "onnx",
    "int8",
    "report plots",
    "tune plots",
    "summary",
    "trials.csv",
    "predictions.csv",
    "best.yaml",
    "best.json",
    "mlflow_run.json",
    "classification_report.txt",
]
CHECKPOINTS = ("digits_cnn.ckpt", "digits_cnn_final.ckpt")


def _file_size_limit(size: int):
    return lambda: resource.setrlimit(resource.RLIMIT_FSIZE, (size, resource.RLIM_INFINITY))


def _the_one_error_line(stderr: str) -> str:
    assert "Traceback" not in stderr, stderr[-3000:]
    [line] = [line for line in stderr.splitlines() if "error" in line.lower()] or [""]
    assert line.startswith("lightning-digits: error: "), stderr[-3000:]
    return line


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    return write_dataset(tmp_path_factory.mktemp("disk") / "data", n_train=840, n_test=200)


@pytest.fixture(scope="module")
def writers_under_a_full_disk(tmp_path_factory) -> tuple[dict, Path]:
    out = tmp_path_factory.mktemp("writers")
    ran = subprocess.run(
        [sys.executable, "-m", "tests.full_disk_writers", str(out)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert ran.returncode == 0, ran.stderr[-3000:]
    return json.loads(ran.stdout.strip().splitlines()[-1]), out


@pytest.mark.slow  # ~15 s of real processes: `make test-fast` (the edit loop) leaves them to `make test`
def test_the_writers_tried_are_every_family(writers_under_a_full_disk):
    results, _ = writers_under_a_full_disk
    assert list(results) == FAMILIES


@pytest.mark.slow  # ~15 s of real processes: `make test-fast` (the edit loop) leaves them to `make test`
@pytest.mark.parametrize("family", FAMILIES)
def test_a_writer_refused_by_a_full_disk_says_so_in_one_line_and_keeps_the_previous_file(
    family, writers_under_a_full_disk
):
    results, out = writers_under_a_full_disk
    result = results[family]
    raised = result["raised"]
    assert raised is not None, f"{family}: the write past the limit did not fail"
    assert raised["type"] == "UserError", raised["traceback"]
    name = result["file"]
    assert raised["message"].startswith(f"file size limit reached on {out} while saving {name}; "), raised["message"]
    assert f"the previous {name} is intact" in raised["message"] and "\n" not in raised["message"]
    assert result["previous_intact"], f"{name} changed"
    assert result["left_behind"] == [], "the temporary file was not removed"


# Calls that write a file, and the only places allowed to write other than to atomic_path's temporary file.
WRITE_CALLS = {
    "write_text",
    "write_bytes",
    "savefig",
    "save",
    "save_model",
    "dump",
    "export",
    "quantize_static",
    "to_csv",
    "writelines",
    "copyfile",
    "copy2",
    "move",
}
NOT_ATOMIC = {
    ("lightning_digits/training/atomic_checkpoints.py", "torch.save(checkpoint, buffer)"): "serialises into memory",
    ("lightning_digits/data/idx.py", "path.write_bytes"): "write_idx, the tests' data set writer",
    ("lightning_digits/serving/samples.py", "image.save(buffer"): "encodes a collected digit into memory",
}


def _writes_elsewhere(path: Path) -> list[str]:
    """The calls in `path` that write a file other than through atomic.py (its temporary `tmp`, or write_text)."""
    tree = ast.parse(path.read_text())
    imports = [node for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)]
    atomic_write_text = any(
        node.module == "lightning_digits.atomic" and "write_text" in {alias.name for alias in node.names}
        for node in imports
    )
    found = []
    for call in (node for node in ast.walk(tree) if isinstance(node, ast.Call)):
        name = getattr(call.func, "attr", getattr(call.func, "id", None))
        text = ast.unparse(call)
        named = {node.id for node in ast.walk(call) if isinstance(node, ast.Name)}
        if name == "open" and isinstance(call.func, ast.Name):
            mode = (
                call.args[1] if len(call.args) > 1 else next((k.value for k in call.keywords if k.arg == "mode"), None)
            )
            writes = isinstance(mode, ast.Constant) and set(str(mode.value)) & set("wax+")
        else:
            writes = name in WRITE_CALLS and "tmp" not in named
            writes = writes and not (name == "write_text" and isinstance(call.func, ast.Name) and atomic_write_text)
        key = str(path.relative_to(REPO))
        if writes and not any(file == key and text.startswith(start) for file, start in NOT_ATOMIC):
            found.append(f"{key}:{call.lineno}: {text[:100]}")
    return found


def test_every_file_the_package_writes_goes_through_the_atomic_writer():
    """Files of our own; Lightning's logs and config.yaml, Optuna's and MLflow's databases are theirs."""
    offenders = [line for path in sorted((REPO / "lightning_digits").rglob("*.py")) for line in _writes_elsewhere(path)]
    assert offenders == [], "write through lightning_digits.atomic (atomic_path / write_text):\n" + "\n".join(offenders)


@pytest.mark.slow
def test_a_fit_that_cannot_save_keeps_the_previous_checkpoints_and_resumes_from_them(tmp_path, data, cli):
    art = tmp_path / "art"
    short = "--trainer.limit_train_batches=4"  # what is tested is the saving, not the training
    first = cli(*tiny_fit_args(data, art, "--trainer.max_epochs=1", short))
    assert first.code == 0, first.err[-3000:]
    before = {name: (art / name).read_bytes() for name in CHECKPOINTS}

    # A limit above the logs and config files but below a checkpoint (~400 KB): the first save fails.
    full = subprocess.run(
        [
            sys.executable,
            "-m",
            "lightning_digits",
            *tiny_fit_args(data, art, "--trainer.max_epochs=3", "--ckpt_path=last", short),
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=240,
        preexec_fn=_file_size_limit(150_000),
    )
    assert full.returncode == 2, full.stderr[-3000:]
    line = _the_one_error_line(full.stderr)
    assert f"file size limit reached on {art} while saving digits_cnn" in line, line
    assert "is intact; free space or choose another --artifacts_dir" in line, line
    assert {name: (art / name).read_bytes() for name in CHECKPOINTS} == before, "a previous checkpoint changed"
    assert not list(art.glob(".digits_cnn*")), "temporary files left behind"

    resumed = cli(*tiny_fit_args(data, art, "--trainer.max_epochs=2", "--ckpt_path=last", short))
    assert resumed.code == 0, resumed.err[-3000:]
    assert load_checkpoint(art / "digits_cnn_final.ckpt").epoch == 1


def _being_written(art: Path) -> str | None:
    """A checkpoint's temporary file (atomic.py's `.<name>.<random>.ckpt`) in `art` now, if any."""
    return next((entry.name for entry in os.scandir(art) if entry.name.startswith(".digits_cnn")), None)


@pytest.mark.slow
def test_kill_9_during_a_checkpoint_write_leaves_loadable_checkpoints_and_resume_works(tmp_path, data, cli):
    art = tmp_path / "art"
    # A wide hidden layer (checkpoints of about 5 MB) saved every step: writes long and many enough to catch.
    args = tiny_fit_args(data, art, "--model.hidden=512", "--final_checkpoint.every_n_train_steps=1")
    process = subprocess.Popen(
        [sys.executable, "-m", "lightning_digits", *args, "--trainer.max_epochs=20"],
        cwd=REPO,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 180
    caught = None
    try:
        while process.poll() is None and time.monotonic() < deadline:
            # Once the first checkpoints are whole: a kill before then proves nothing about them.
            if all((art / name).is_file() for name in CHECKPOINTS) and (caught := _being_written(art)):
                process.send_signal(signal.SIGKILL)
                break
            time.sleep(0.001)
    finally:
        if process.poll() is None and caught is None:
            process.kill()
        _, stderr = process.communicate(timeout=60)
    assert caught, f"no checkpoint write caught (exit {process.returncode}):\n{stderr[-3000:]}"
    assert process.returncode == -signal.SIGKILL
    for name in CHECKPOINTS:
        torch.load(art / name, map_location="cpu", weights_only=True)  # raises if it is not whole
    killed_at = load_checkpoint(art / "digits_cnn_final.ckpt").epoch

    resumed = cli(*args, f"--trainer.max_epochs={killed_at + 2}", "--ckpt_path=last")
    assert resumed.code == 0, resumed.err[-3000:]
    assert load_checkpoint(art / "digits_cnn_final.ckpt").epoch == killed_at + 1
    assert not list(art.glob(".digits_cnn*")), "the killed write's temporary file is still there"


def _user_namespaces() -> str | None:
    """Why a tmpfs of our own cannot be mounted here (None: it can)."""
    if not shutil.which("unshare"):
        return "no unshare(1)"
    tried = subprocess.run(
        ["unshare", "--user", "--map-root-user", "--mount", "true"], capture_output=True, text=True, timeout=30
    )
    return None if tried.returncode == 0 else f"user namespaces not allowed here: {tried.stderr.strip()}"


# Inside a user and mount namespace: a 6 MiB tmpfs as the artifacts folder (read-only from the start for
# "readonly": a folder remounted read-only under a running fit is refused by the kernel while files there are
# open for writing), a fit into it, and a copy of what it left for the test to read (the tmpfs ends with the
# namespace). A checkpoint here is about 2.4 MB: the first two fit, a third (the temporary copy) does not.
IN_A_SMALL_FILESYSTEM = """
set -u
mount -t tmpfs -o "size=6m,$MOUNT" tmpfs "$ART"
"$PYTHON" -m lightning_digits "$@" 2> "$OUT/stderr"
echo $? > "$OUT/code"
cp -a "$ART/." "$OUT/art/"
"""


def _fit_in_a_small_filesystem(tmp_path: Path, data: Path, mount: str) -> tuple[Path, Path, str]:
    """The artifacts folder, the copy of what the fit left there, and the fit's stderr (its exit code: 2)."""
    if reason := _user_namespaces():
        pytest.skip(reason)
    art, out = tmp_path / "art", tmp_path / "out"
    art.mkdir()
    (out / "art").mkdir(parents=True)
    args = tiny_fit_args(data, art, "--model.hidden=256", "--trainer.max_epochs=3")
    env = {**os.environ, "ART": str(art), "OUT": str(out), "PYTHON": sys.executable, "MOUNT": mount}
    subprocess.run(
        ["unshare", "--user", "--map-root-user", "--mount", "bash", "-c", IN_A_SMALL_FILESYSTEM, "fit", *args],
        cwd=REPO,
        env=env,
        timeout=300,
        check=True,
    )
    stderr = (out / "stderr").read_text()
    assert (out / "code").read_text().strip() == "2", stderr[-3000:]
    return art, out / "art", stderr


@pytest.mark.slow
def test_a_real_full_filesystem_warns_first_then_ends_in_one_line_keeping_the_last_checkpoints(tmp_path, data):
    art, left, stderr = _fit_in_a_small_filesystem(tmp_path, data, "rw")
    line = _the_one_error_line(stderr)
    assert line.startswith(f"lightning-digits: error: no space left on {art} while saving digits_cnn"), line
    assert "the previous digits_cnn" in line and "is intact; free space or choose another" in line, line
    assert "warning: " in stderr and f"free on {art}, but saving this run's checkpoints needs about" in stderr, stderr
    for name in CHECKPOINTS:
        load_checkpoint(left / name)  # the last good ones: whole
    assert not list(left.glob(".digits_cnn*")), "temporary files left behind"


@pytest.mark.slow
def test_a_read_only_artifacts_folder_is_one_line(tmp_path, data):
    art, _, stderr = _fit_in_a_small_filesystem(tmp_path, data, "ro")
    expected = f"cannot write to {art} (Read-only file system); choose another folder with --artifacts_dir"
    assert _the_one_error_line(stderr).endswith(expected)
