"""bench/gpu_check.py, the script the first person with GPUs runs as is, in its reduced form on 2 CPU processes
(so that it cannot rot where nobody has a GPU): every row runs, and each row's test accuracy is its own final
checkpoint's on the test set, counted here apart from the bench."""

from __future__ import annotations

import json

import pytest
import torch

from lightning_digits import artifacts
from lightning_digits.checkpoints import load_checkpoint
from lightning_digits.data.augment import as_model_input
from lightning_digits.data.sources import load_split

from .conftest import run_bench, write_dataset

ROWS = ["fast bf16-mixed", "fast 32-true", "default config", "fast DDP x2"]


@pytest.mark.slow
@pytest.mark.usefixtures("commands_in_process")  # the DDP row's fit in processes of its own, the others in this one
def test_the_gpu_check_runs_every_row_in_its_reduced_form_and_tests_each_rows_own_checkpoint(
    tmp_path, monkeypatch, capsys
):
    data = write_dataset(tmp_path / "data", n_train=840, n_test=200)
    runs = tmp_path / "runs"
    lines = run_bench("gpu_check", ["--cpu", f"--data={data}", f"--keep={runs}", "--timeout=240"], monkeypatch, capsys)
    summary = json.loads(lines[-1])
    assert list(summary["rows"]) == ROWS and all(row["steps"] == 10 for row in summary["rows"].values())
    images, labels = load_split("mnist", str(data), "test")
    for index, name in enumerate(ROWS):
        net = load_checkpoint(runs / str(index) / artifacts.FINAL_CHECKPOINT).net.eval()
        with torch.no_grad():
            predicted = net(as_model_input(torch.from_numpy(images.copy()))).argmax(1).numpy()
        assert summary["rows"][name]["test_accuracy"] == pytest.approx((predicted == labels).mean(), abs=1e-9), name
    assert summary["onnx_max_logit_difference"] < 1e-4
    assert any("fast DDP x2" in line for line in lines) and "(reduced form: figures prove nothing)" in "\n".join(lines)
