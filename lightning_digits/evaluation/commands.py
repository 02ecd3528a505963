"""`lightning-digits evaluate | export | baselines | grid`: the original's reports, from a checkpoint, no Trainer.

Each command reads its inputs, then writes every file atomically into the checkpoint's folder, so a killed
run leaves the previous artifacts intact. They run in one process: under a multi-process launcher they
refuse, since one writer is enough and the work is small.
"""

from __future__ import annotations

import csv
import io
import json
import os
import platform
import sys
import time
from importlib.metadata import version
from pathlib import Path

import numpy as np
import yaml

from lightning_digits.atomic import ensure_writable_dir, write_text
from lightning_digits.checkpoints import LoadedCheckpoint, load_checkpoint
from lightning_digits.data.datamodule import DATASETS, load_split, training_set_size
from lightning_digits.errors import UserError
from lightning_digits.evaluation import plots, report
from lightning_digits.evaluation.baselines import run_baselines
from lightning_digits.export import ExportCheckFailed, check_int8_accuracy, export_onnx, quantize_int8

DEFAULT_CHECKPOINT = "artifacts_digits/digits_cnn.ckpt"
FINAL_CHECKPOINT_NAME = "digits_cnn_final.ckpt"
ONNX_NAME = "digits_cnn.onnx"
PARITY_IMAGES = 1000


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _refuse_multiprocess(command: str) -> None:
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        raise UserError(f"`{command}` runs in one process; start it without torchrun/srun (WORLD_SIZE > 1 here)")


def _class_names(loaded: LoadedCheckpoint) -> tuple[str, ...]:
    return DATASETS[loaded.dataset].class_names


def _split(loaded: LoadedCheckpoint, data_dir: str | None, split: str) -> tuple[np.ndarray, np.ndarray]:
    """The checkpoint's data set, from `data_dir` or else where its training run found it."""
    return load_split(loaded.dataset, data_dir or loaded.data_hparams.get("data_dir"), split)


def _grid(
    loaded: LoadedCheckpoint, results: report.TestResults, images: np.ndarray, samples: int, seed: int, out: Path
):
    names = _class_names(loaded)
    chosen = np.random.default_rng(seed).choice(len(images), size=min(samples, len(images)), replace=False)
    predictions, confidence = results.predictions[chosen], results.probabilities[chosen].max(axis=1)
    captions = [
        f"pred {names[p]} ({100 * c:.1f}%)\ntrue {names[t]}"
        for p, c, t in zip(predictions, confidence, results.labels[chosen], strict=True)
    ]
    right = predictions == results.labels[chosen]
    title = f"Inference on {len(chosen)} random test images (seed {seed}): {int(right.sum())} right"
    plots.plot_image_grid(images[chosen], captions, right, title, out / "inference_grid.png")


def _mistakes(loaded: LoadedCheckpoint, results: report.TestResults, images: np.ndarray, limit: int, out: Path):
    names = _class_names(loaded)
    wrong = report.most_confident_mistakes(results, limit)
    confidence = results.probabilities[wrong].max(axis=1)
    captions = [
        f"true {names[results.labels[i]]} -> {names[results.predictions[i]]}\n{100 * c:.1f}%"
        for i, c in zip(wrong, confidence, strict=True)
    ]
    total = int((results.predictions != results.labels).sum())
    title = f"The {len(wrong)} most confident of {total} misclassified test images (true -> predicted, confidence)"
    plots.plot_image_grid(images[wrong], captions, [False] * len(wrong), title, out / "misclassifications.png", 6)


def find_training_logs(artifacts_dir: Path) -> list[Path]:
    """The newest `fit` run's CSV log folders, oldest first: that run's and, when it resumed from a checkpoint
    (`--ckpt_path`), those of the fit runs before it back to one that started fresh, since a resumed run logs
    only the epochs it trained. `test` and `predict` runs log here too, but no training metrics."""

    def is_fit_run(folder: Path) -> bool:
        metrics = folder / "metrics.csv"
        if not (metrics.is_file() and (folder / "config.yaml").is_file()):
            return False
        with open(metrics) as f:
            return "train_loss" in f.readline().split(",")

    runs = sorted(
        (p for p in artifacts_dir.glob("logs/version_*") if is_fit_run(p)),
        key=lambda p: int(p.name.removeprefix("version_")),
    )
    chain: list[Path] = []
    for run in reversed(runs):
        chain.insert(0, run)
        if (yaml.safe_load((run / "config.yaml").read_text()) or {}).get("ckpt_path") is None:
            break
    return chain


def _epoch_curves(log_dirs: list[Path]) -> dict[str, dict[int, float]]:
    """Per metric, epoch (from 1) -> value; a later run's figure for an epoch replaces an earlier one's (a run
    resumed from the final checkpoint repeats no epoch, one resumed from an older checkpoint does)."""
    curves: dict[str, dict[int, float]] = {}
    for log_dir in log_dirs:
        with open(log_dir / "metrics.csv") as f:
            for row in csv.DictReader(f):
                for key in ("train_loss", "train_acc", "val_loss", "val_acc"):
                    if row.get(key):
                        curves.setdefault(key, {})[int(row["epoch"]) + 1] = float(row[key])
    return curves


def _plot_curves(log_dirs: list[Path], out: Path) -> None:
    curves = _epoch_curves(log_dirs)
    for metric, train_key, val_key, name in (
        ("accuracy", "train_acc", "val_acc", "acc_curve.png"),
        ("loss", "train_loss", "val_loss", "loss_curve.png"),
    ):
        epochs = sorted(set(curves.get(train_key, {})) & set(curves.get(val_key, {})))
        if epochs:
            train = [curves[train_key][e] for e in epochs]
            plots.plot_curves(epochs, train, [curves[val_key][e] for e in epochs], metric, out / name)


def _training_record(out: Path, best: LoadedCheckpoint, log_dir: Path | None) -> dict:
    """Epochs, best epoch and wall time from the final checkpoint's Timer state; config from the fit log."""
    record: dict = {"best_epoch": best.epoch + 1}
    final_path = out / FINAL_CHECKPOINT_NAME
    final = load_checkpoint(final_path) if final_path.is_file() else best
    record["epochs_run"] = final.epoch + 1
    timer = final.callbacks.get("Timer", {}).get("time_elapsed", {})
    if "train" in timer:
        record["training_wall_seconds"] = round(float(timer["train"]), 1)  # the fit loop, validation included
    if log_dir is not None:
        record["config"] = yaml.safe_load((log_dir / "config.yaml").read_text())
    return record


def _environment() -> dict:
    cpu = platform.processor() or platform.machine()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        models = [
            line.split(":", 1)[1].strip() for line in cpuinfo.read_text().splitlines() if line.startswith("model name")
        ]
        cpu = models[0] if models else cpu
    import torch

    device = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none"
    packages = ("torch", "lightning", "torchmetrics", "onnx", "onnxruntime", "scikit-learn", "numpy")
    return {
        "hardware": {"cpu": cpu, "cpu_cores": os.cpu_count(), "gpu": device, "torch_threads": torch.get_num_threads()},
        "versions": {"python": platform.python_version(), **{p: version(p) for p in packages}},
    }


def _cnn_training_images(data_hparams: dict, available: int) -> int | float:
    """The CNN's row in the baselines table: how many images its fit learned from (NaN where the run's data
    settings are not on record)."""
    if "val_size" not in data_hparams:
        return float("nan")
    return training_set_size(available, data_hparams["val_size"], data_hparams.get("train_subset"))


def _write_baselines(rows: list[dict], cnn: dict | None, out: Path) -> None:
    table = ([cnn] if cnn else []) + rows
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    for row in table:
        writer.writerow({**row, **{k: f"{row[k]:.4f}" for k in ("accuracy", "fit_seconds", "predict_seconds")}})
    write_text(out / "baselines.csv", buffer.getvalue())
    plots.plot_baselines(
        [r["model"] for r in table],
        [r["accuracy"] for r in table],
        [r["fit_seconds"] for r in table],
        out / "baselines.png",
    )


def _export(loaded: LoadedCheckpoint, images: np.ndarray, target: Path, metadata: dict[str, str]) -> dict:
    check = report.as_model_input(images[:PARITY_IMAGES]).numpy()
    return export_onnx(loaded.net, target, _class_names(loaded), check, metadata).as_dict()


def evaluate(
    checkpoint: str = DEFAULT_CHECKPOINT,
    data_dir: str | None = None,
    baselines: bool = True,
    baseline_subset: int | None = None,
    samples: int = 9,
    mistakes: int = 36,
    seed: int = 0,
) -> None:
    """Write every report, plot and the baseline comparison, and export ONNX, into the checkpoint's folder.

    Args:
        checkpoint: the model to evaluate (default: the best one of the last `fit`).
        data_dir: folder of the IDX files (default: as the checkpoint's run found them).
        baselines: also fit Logistic Regression, a linear SVM and a Random Forest (about a minute).
        baseline_subset: fit the baselines on this many random training images instead of all 60,000.
        samples: images in the inference grid.
        mistakes: misclassified images shown, most confident first.
        seed: picks the inference grid's images and the baselines' subset.
    """
    _refuse_multiprocess("evaluate")
    steps = 5 + baselines
    loaded = load_checkpoint(checkpoint)
    out = Path(checkpoint).parent
    ensure_writable_dir(out, "--checkpoint (files go beside it)")
    names = _class_names(loaded)
    _say(f"[1/{steps}] test pass with {checkpoint}")
    images, labels = _split(loaded, data_dir, "test")
    start = time.perf_counter()
    results = report.test_pass(loaded.net, images, labels)
    test_seconds = time.perf_counter() - start
    _say(f"        accuracy {results.accuracy:.4f}, loss {results.loss:.4f} on {len(labels):,} images")

    _say(f"[2/{steps}] confusion matrix, classification report, label map")
    counts = report.confusion(results, len(names))
    plots.plot_confusion(counts, names, out / "confusion_matrix.png")
    write_text(out / "classification_report.txt", report.report_text(results, names))
    write_text(out / "label_map.txt", report.label_map_text(names))

    _say(f"[3/{steps}] misclassifications, inference grid, curves")
    _mistakes(loaded, results, images, mistakes, out)
    _grid(loaded, results, images, samples, seed, out)
    log_dirs = find_training_logs(out)
    if log_dirs:
        _plot_curves(log_dirs, out)
    else:
        _say(f"        no fit log under {out / 'logs'}: accuracy and loss curves skipped")

    training = _training_record(out, loaded, log_dirs[-1] if log_dirs else None)
    summary = {
        "dataset": loaded.dataset,
        "checkpoint": str(checkpoint),
        "test_images": len(labels),
        "test_accuracy": results.accuracy,
        "test_loss": results.loss,
        "misclassified": int((results.predictions != results.labels).sum()),
        "parameters": sum(p.numel() for p in loaded.net.parameters()),
        **{k: v for k, v in training.items() if k != "config"},
    }
    _say(f"[4/{steps}] ONNX export to {out / ONNX_NAME}, checked against PyTorch")
    metadata = {"dataset": loaded.dataset, "test_accuracy": f"{results.accuracy:.4f}"}
    summary["onnx"] = {"file": ONNX_NAME, **_export(loaded, images, out / ONNX_NAME, metadata)}

    if baselines:
        _say(f"[5/{steps}] baselines")
        train = _split(loaded, data_dir, "train")
        cnn = {
            "model": "CNN (this project)",
            "accuracy": results.accuracy,
            "fit_seconds": training.get("training_wall_seconds", float("nan")),
            "predict_seconds": test_seconds,
            "train_images": _cnn_training_images(loaded.data_hparams, len(train[1])),
            "settings": json.dumps({k: v for k, v in loaded.model_hparams.items() if not k.startswith("_")}),
        }
        rows = run_baselines(train, (images, labels), baseline_subset, seed, _say)
        _write_baselines(rows, cnn, out)
        summary["baselines"] = {r["model"]: {"accuracy": r["accuracy"], "fit_seconds": r["fit_seconds"]} for r in rows}

    _say(f"[{steps}/{steps}] summary")
    summary.update(_environment())
    summary["config"] = training.get("config")
    write_text(out / "summary.json", json.dumps(summary, indent=2) + "\n")
    write_text(out / "summary.txt", report.summary_text(summary))
    _say(f"done: test accuracy {results.accuracy:.4f}, loss {results.loss:.4f}; files in {out}/")


def export(
    checkpoint: str = DEFAULT_CHECKPOINT, output: str | None = None, data_dir: str | None = None, int8: bool = False
) -> None:
    """Export the checkpoint to a self-contained ONNX file and check it against PyTorch on real test images.

    Args:
        checkpoint: the model to export.
        output: the .onnx file (default: digits_cnn.onnx beside the checkpoint).
        data_dir: folder of the IDX files (default: as the checkpoint's run found them).
        int8: also write an int8-quantized model (<output>_int8.onnx, about 2x faster on CPU), kept only if it
            loses at most 0.05 points of accuracy on the whole test set.
    """
    _refuse_multiprocess("export")
    loaded = load_checkpoint(checkpoint)
    images, labels = _split(loaded, data_dir, "test")
    target = Path(output) if output else Path(checkpoint).parent / ONNX_NAME
    metadata = {"dataset": loaded.dataset}
    parity = _export(loaded, images, target, metadata)
    _say(f"wrote {target}: onnxruntime matches PyTorch (max |logit difference| {parity['max_logit_difference']:.1e})")
    if int8:
        int8_target = target.with_name(f"{target.stem}_int8.onnx")
        train_images, _ = _split(loaded, data_dir, "train")
        _say(f"quantizing to {int8_target} (calibration: 1,000 training images)")
        quantize_int8(target, int8_target, report.as_model_input(train_images[:1000]).numpy())
        try:
            check = check_int8_accuracy(target, int8_target, report.as_model_input(images).numpy(), labels)
        except ExportCheckFailed:
            int8_target.unlink()
            raise
        _say(f"wrote {int8_target}: test accuracy {check['int8_test_accuracy']:.4f} "
             f"(fp32 {check['fp32_test_accuracy']:.4f}) on {check['test_images']:,} images")  # fmt: skip


def baselines(
    data_dir: str | None = None,
    dataset: str = "mnist",
    subset: int | None = None,
    seed: int = 0,
    artifacts_dir: str = "artifacts_digits",
) -> None:
    """Fit Logistic Regression, a linear SVM and a Random Forest; write baselines.csv and baselines.png.

    Args:
        data_dir: folder of the IDX files (default: LIGHTNING_DIGITS_DATA or ./data).
        dataset: mnist or fashion_mnist.
        subset: fit on this many random training images instead of all.
        seed: picks the subset and seeds the models.
        artifacts_dir: where to write; the CNN's row comes from summary.json there, when present.
    """
    _refuse_multiprocess("baselines")
    if dataset not in DATASETS:
        raise UserError(f"dataset {dataset!r} is unknown; choose one of {', '.join(DATASETS)}")
    out = Path(artifacts_dir)
    ensure_writable_dir(out, "--artifacts_dir")
    train = load_split(dataset, data_dir, "train")
    rows = run_baselines(train, load_split(dataset, data_dir, "test"), subset, seed, _say)
    cnn = None
    if (out / "summary.json").is_file():
        summary = json.loads((out / "summary.json").read_text())
        cnn = {
            "model": "CNN (this project)",
            "accuracy": summary["test_accuracy"],
            "fit_seconds": summary.get("training_wall_seconds", float("nan")),
            "predict_seconds": float("nan"),
            "train_images": _cnn_training_images((summary.get("config") or {}).get("data") or {}, len(train[1])),
            "settings": "see summary.json",
        }
    _write_baselines(rows, cnn, out)
    _say(f"wrote {out / 'baselines.csv'} and {out / 'baselines.png'}")


def grid(checkpoint: str = DEFAULT_CHECKPOINT, samples: int = 9, seed: int = 0, data_dir: str | None = None) -> None:
    """The original's `--infer --samples N`: random test images with prediction and confidence.

    Args:
        checkpoint: the model to use.
        samples: how many images.
        seed: which images.
        data_dir: folder of the IDX files (default: as the checkpoint's run found them).
    """
    _refuse_multiprocess("grid")
    if samples < 1:
        raise UserError(f"--samples must be at least 1, got {samples}")
    loaded = load_checkpoint(checkpoint)
    images, labels = _split(loaded, data_dir, "test")
    results = report.test_pass(loaded.net, images, labels)
    _grid(loaded, results, images, samples, seed, Path(checkpoint).parent)
    _say(f"wrote {Path(checkpoint).parent / 'inference_grid.png'}")


COMMANDS = {"evaluate": evaluate, "export": export, "baselines": baselines, "grid": grid}
