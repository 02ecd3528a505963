"""bench/gpu_check.py, the script the first person with GPUs runs as is, in its reduced form on 2 CPU processes
(so that it cannot rot where nobody has a GPU): every row runs and the table and JSON line come out."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from .conftest import REPO, write_dataset


@pytest.mark.slow
def test_the_gpu_check_runs_every_row_in_its_reduced_form(tmp_path):
    data = write_dataset(tmp_path / "data", n_train=840, n_test=200)
    command = [sys.executable, str(REPO / "bench" / "gpu_check.py"), "--cpu", f"--data={data}", "--timeout=240"]
    done = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    assert list(summary["rows"]) == ["fast bf16-mixed", "fast 32-true", "default config", "fast DDP x2"]
    assert all(row["steps"] == 10 and 0 <= row["test_accuracy"] <= 1 for row in summary["rows"].values())
    assert summary["onnx_max_logit_difference"] < 1e-4
    assert "fast DDP x2" in done.stdout and "(reduced form: figures prove nothing)" in done.stdout
