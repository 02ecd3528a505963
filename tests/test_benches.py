"""Every script in bench/ in a tiny form, so that none rots where nobody runs it: each runs its own main() in this
process (bench/ is on the path, as for a script run from the checkout) on generated data, and must end with the
JSON line it promises; the `lightning-digits` commands a bench starts run in this process too. The figures prove
nothing; the run proves the script still works with the package.
bench/gpu_check.py has tests/test_gpu_check.py and robustness.py's mnist-c suite tests/test_mnist_c.py, both run the
same way; bench/devices.py and bench/harness.py are imported by the others.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import pytest

from lightning_digits import artifacts
from lightning_digits.evaluation.rendered import installed_families

from .conftest import BENCH, REPO, TINY_MODEL, run_bench, write_dataset

HELPERS = ("devices", "harness")
# Flags that make any fit a bench starts tiny: a small network, 50 validation images, two batches of 32.
TINY_FIT = [
    *TINY_MODEL,
    "--data.val_size=50",
    "--data.batch_size=32",
    "--trainer.max_epochs=1",
    "--trainer.limit_train_batches=2",
    "--trainer.enable_model_summary=false",
]
# Each bench's tiny arguments, as a person would type them after the script's name; RUNS and DATA stand for the
# module's fitted runs and data set.
TINY = {
    "baselines": ["--subset=100"],
    "teacher": ["RUNS/seed_0", "RUNS/seed_1"],
    "tta": [f"RUNS/seed_0/{artifacts.FINAL_CHECKPOINT}", "--view_sets", "none", "shifts"],
    "inference": [f"--checkpoint=RUNS/seed_0/{artifacts.BEST_CHECKPOINT}", "--seconds=0"],
    "fit_overhead": ["--rounds=1", "--steps=3", "--warmup=1", "--", *TINY_FIT],
    "train_throughput": ["--steps=2", "--windows=1", "--batch-size=16"],
    # The ood suite; the mnist-c suite is tests/test_mnist_c.py's, the hands suite is below.
    "robustness": [f"RUNS/seed_0/{artifacts.ONNX_MODEL}", "--suite=ood", "--per_class=1"],
    "ensembles": ["RUNS", "--members=2"],
    "ddp_throughput": ["--images=256", "--rounds=1", "--processes", "1", "1"],
    "time_to_accuracy": ["--seeds=1", "--", *TINY_FIT],
    "tune": ["--trials=1", "--seeds=1", "--overhead-repeats=1", "--", *TINY_FIT],
    "serve": [f"--model=RUNS/seed_0/{artifacts.ONNX_MODEL}", "--seconds=0.2", "--concurrency=2", "--stage-repeats=5"],
    "vs_keras": ["--rounds=1", "--epochs=1", "--data=DATA"],
}
# Those that start processes (a fit, `ensemble`, servers) or fit three times take longer.
SLOW = {"ensembles", "ddp_throughput", "time_to_accuracy", "tune", "serve", "fit_overhead"}


def test_every_bench_has_a_tiny_form_here():
    scripts = sorted(path.stem for path in BENCH.glob("*.py") if path.stem not in HELPERS)
    assert scripts == sorted([*TINY, "gpu_check"]), "give a new bench its tiny arguments in TINY"


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    """More training images than the data module's default validation split (5,000) and a 128-image batch: the
    benches that keep the default split train on the rest."""
    return write_dataset(tmp_path_factory.mktemp("bench_data"), n_train=5300, n_test=100)


@pytest.fixture(scope="module")
def runs(tmp_path_factory, data, _cli_main) -> Path:
    """Two tiny fits, as bench/time_to_accuracy.py --keep leaves them (seed_0, seed_1), the first exported."""
    root = tmp_path_factory.mktemp("bench_runs")
    for seed in (0, 1):
        art = root / f"seed_{seed}"
        _cli_main(
            [
                "fit",
                f"--data.data_dir={data}",
                f"--artifacts_dir={art}",
                f"--seed_everything={seed}",
                "--progress_bar.refresh_rate=0",
                *TINY_FIT,
            ]
        )
    _cli_main(["export", f"--checkpoint={root / 'seed_0' / artifacts.BEST_CHECKPOINT}", f"--data_dir={data}"])
    return root


@pytest.mark.parametrize("name", [pytest.param(name, marks=[pytest.mark.slow] * (name in SLOW)) for name in TINY])
@pytest.mark.usefixtures("commands_in_process")
def test_each_bench_runs_in_its_tiny_form(name, data, runs, monkeypatch, capsys, tmp_path):
    if name == "vs_keras" and not (REPO / ".tfvenv" / "bin" / "python").is_file():
        pytest.skip("bench/vs_keras.py runs Keras from .tfvenv (its docstring says how to make it)")
    if name == "robustness" and not installed_families():
        pytest.skip("no font family installed; `make fonts` installs them")
    monkeypatch.setenv("LIGHTNING_DIGITS_DATA", str(data))
    monkeypatch.chdir(tmp_path)  # whatever a bench writes beside it
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # and its scratch folders (tune's, serve's), not in /tmp
    args = [arg.replace("RUNS", str(runs)).replace("DATA", str(data)) for arg in TINY[name]]
    summary = json.loads(run_bench(name, args, monkeypatch, capsys)[-1])
    assert isinstance(summary, dict) and summary


@pytest.mark.slow
@pytest.mark.skipif(not installed_families("report"), reason="no font family installed; `make fonts` installs them")
@pytest.mark.usefixtures("commands_in_process")
def test_the_hands_suite_runs_in_a_tiny_form(data, runs, monkeypatch, capsys):
    monkeypatch.setenv("LIGHTNING_DIGITS_DATA", str(data))
    family = installed_families("report")[0].name
    model = str(runs / "seed_0" / artifacts.BEST_CHECKPOINT)
    args = [model, "--suite=hands", f"--families={family}", "--k=1", "--per_class=2", "--adapt_args", *TINY_FIT]
    summary = json.loads(run_bench("robustness", args, monkeypatch, capsys)[-1])
    assert [run["family"] for run in summary["runs"]] == [family]
