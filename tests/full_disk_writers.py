"""Run by tests/test_disk_faults.py in a child process: every family of the project's file writers, each over a
previous version of its file, under a file-size limit (RLIMIT_FSIZE) so small that every write fails as on a
full disk. Prints one JSON line: per family, what it raised and whether the previous file survived unchanged.
Not a test module itself: the limit must not apply to the pytest process (its own capture files)."""

from __future__ import annotations

import json
import resource
import sys
import traceback
from collections.abc import Callable
from pathlib import Path

import numpy as np
import optuna

from lightning_digits import artifacts
from lightning_digits.atomic import write_text
from lightning_digits.evaluation import plots
from lightning_digits.evaluation.commands import write_summary
from lightning_digits.export import export_onnx, quantize_int8
from lightning_digits.models.cnn import Architecture, DigitsCNN
from lightning_digits.tracking.runs import RUN_RECORD
from lightning_digits.training.atomic_checkpoints import AtomicCheckpointIO
from lightning_digits.tuning import study_files

LIMIT = 64  # bytes: below every file written here
NAMES = [str(d) for d in range(10)]


def _study() -> optuna.Study:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    study.optimize(lambda trial: trial.suggest_float("lr", 1e-4, 1e-2, log=True), n_trials=4)
    return study


def families(out: Path) -> dict[str, tuple[str, Callable[[], object]]]:
    """family -> (the file it writes first, the real call that writes it)."""
    net = DigitsCNN(Architecture.from_hparams({"channels": [4, 8], "hidden": 16})).eval()
    images = np.random.default_rng(0).random((8, 1, 28, 28), dtype=np.float32)
    fp32 = out / "fp32" / artifacts.ONNX_MODEL
    export_onnx(net, fp32, NAMES, images)  # int8's input, written before the limit
    study = _study()
    text_files = ["predictions.csv", study_files.BEST_YAML, "best.json", RUN_RECORD, "classification_report.txt"]
    return {
        "checkpoint": (
            artifacts.FINAL_CHECKPOINT,
            lambda: AtomicCheckpointIO().save_checkpoint(
                {"state_dict": net.state_dict()}, out / artifacts.FINAL_CHECKPOINT
            ),
        ),
        "onnx": (artifacts.ONNX_MODEL, lambda: export_onnx(net, out / artifacts.ONNX_MODEL, NAMES, images)),
        "int8": ("digits_cnn_int8.onnx", lambda: quantize_int8(fp32, out / "digits_cnn_int8.onnx", images)),
        "report plots": (
            "confusion_matrix.png",
            lambda: plots.plot_confusion(np.eye(10, dtype=int) * 9, NAMES, out / "confusion_matrix.png"),
        ),
        "tune plots": ("history.png", lambda: study_files.write_plots(study, out, print)),
        "summary": (artifacts.SUMMARY_JSON, lambda: write_summary({"test_accuracy": 0.99}, out)),
        "trials.csv": (study_files.TRIALS_CSV, lambda: study_files.write_trials(study.trials, out)),
        **{name: (name, lambda name=name: write_text(out / name, "x" * 1000)) for name in text_files},
    }


def main(out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    writers = families(out)
    previous = {}
    for family, (name, _) in writers.items():
        previous[family] = f"previous {family}\n".encode()
        (out / name).write_bytes(previous[family])
    resource.setrlimit(resource.RLIMIT_FSIZE, (LIMIT, resource.RLIM_INFINITY))
    results = {}
    for family, (name, write) in writers.items():
        try:
            write()
            raised = None
        except Exception as exc:
            raised = {"type": type(exc).__name__, "message": str(exc), "traceback": traceback.format_exc()[-1500:]}
        results[family] = {
            "file": name,
            "raised": raised,
            "previous_intact": (out / name).read_bytes() == previous[family],
            "left_behind": sorted(p.name for p in out.glob(f".{name}.*")),
        }
    print(json.dumps(results))


if __name__ == "__main__":
    main(Path(sys.argv[1]))
