"""`lightning-digits evaluate | export | baselines | grid`: the original's reports, from a checkpoint, no Trainer.

Each command is a short sequence over the modules that do the work. Every file is written atomically into
the checkpoint's folder, so a killed run leaves the previous artifacts intact. They run in one process (cli.py
refuses them under a multi-process launcher: one writer is enough and the work is small).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

from lightning_digits import artifacts, run_lock
from lightning_digits.atomic import ensure_writable_dir, write_text
from lightning_digits.checkpoints import LoadedCheckpoint, load_checkpoint
from lightning_digits.data.sources import DATASETS, load_split, split_size, training_set_size
from lightning_digits.errors import UserError, say
from lightning_digits.evaluation import galleries, plots, report
from lightning_digits.evaluation.baselines import baselines_csv, run_baselines
from lightning_digits.evaluation.report_files import PARITY_IMAGES, float_images, write_test_reports
from lightning_digits.evaluation.run_info import environment, training_record
from lightning_digits.evaluation.training_logs import find_training_logs, training_curves
from lightning_digits.export import ExportCheckFailed, check_int8_accuracy, export_onnx, quantize_int8
from lightning_digits.models.averaging import views, with_views
from lightning_digits.tracking.runs import log_files_since

DEFAULT_CHECKPOINT = f"{artifacts.DEFAULT_DIR}/{artifacts.BEST_CHECKPOINT}"
CNN_ROW_NAME = "CNN (this project)"
CURVE_FILES = {"accuracy": "acc_curve.png", "loss": "loss_curve.png"}  # the original's names
CALIBRATION_IMAGES = 1000


def _data_dir(loaded: LoadedCheckpoint, data_dir: str | None) -> str | None:
    """`data_dir`, or else where the checkpoint's training run found its data set."""
    return data_dir or loaded.data_hparams.get("data_dir")


def _split(loaded: LoadedCheckpoint, data_dir: str | None, split: str) -> tuple[np.ndarray, np.ndarray]:
    return load_split(loaded.dataset, _data_dir(loaded, data_dir), split)


def _cnn_row(
    loaded: LoadedCheckpoint, results: report.TestResults, test_seconds: float, training: dict, training_file_count: int
) -> dict:
    """The CNN's row of the baselines table: how well, how fast, and from how many images its fit learned."""
    data = loaded.data_hparams
    learned_from = (
        training_set_size(training_file_count, data["val_size"], data.get("train_subset"))
        if "val_size" in data
        else float("nan")  # a checkpoint whose data settings are not on record
    )
    return {
        "model": CNN_ROW_NAME,
        "accuracy": results.accuracy,
        "fit_seconds": training.get("training_wall_seconds", float("nan")),
        "predict_seconds": test_seconds,
        "train_images": learned_from,
        "settings": json.dumps({k: v for k, v in loaded.model_hparams.items() if not k.startswith("_")}),
    }


def _write_baselines(rows: list[dict], out: Path) -> None:
    write_text(out / "baselines.csv", baselines_csv(rows))
    names, accuracies, seconds = ([row[key] for row in rows] for key in ("model", "accuracy", "fit_seconds"))
    plots.plot_baselines(names, accuracies, seconds, out / "baselines.png")


def evaluate(
    checkpoint: str = DEFAULT_CHECKPOINT,
    data_dir: str | None = None,
    baselines: bool = True,
    baseline_subset: int | None = None,
    samples: int = 9,
    mistakes: int = 36,
    seed: int = 0,
    tta: str = "none",
) -> None:
    """Write every report, plot and the baseline comparison, and export ONNX, into the checkpoint's folder.

    Args:
        checkpoint: the model to evaluate (default: the best one of the last `fit`).
        data_dir: folder of the IDX files (default: as the checkpoint's run found them).
        baselines: also fit Logistic Regression, a linear SVM and a Random Forest (their times: README).
        baseline_subset: fit the baselines on this many random training images instead of all 60,000.
        samples: images in the inference grid.
        mistakes: misclassified images shown, most confident first.
        seed: picks the inference grid's images and the baselines' subset.
        tta: test-time augmentation: average the probabilities over these views of each image (none, shifts,
            rotations, shifts_rotations); the reports and the exported ONNX model include it.
    """
    started = time.time()
    views(tta)  # an unknown name ends here, before the checkpoint and the data are read
    loaded = load_checkpoint(checkpoint)
    out = Path(checkpoint).parent
    ensure_writable_dir(out, "--checkpoint (files go beside it)")
    run_lock.hold(out, "evaluate", "--checkpoint")
    test = _split(loaded, data_dir, "test")
    say(f"evaluating {checkpoint}" + (f" with test-time augmentation ({tta})" if tta != "none" else ""))
    written = write_test_reports(
        with_views(loaded.net, tta),
        DATASETS[loaded.dataset].class_names,
        test,
        out,
        {"samples": samples, "mistakes": mistakes, "seed": seed},
        {"dataset": loaded.dataset, "test_time_augmentation": tta},
        say,
    )

    say("accuracy and loss curves")
    log_dirs = find_training_logs(out)
    for curve in training_curves(log_dirs):
        plots.plot_curves(curve.epochs, curve.train, curve.val, curve.metric, out / CURVE_FILES[curve.metric])
    if not log_dirs:
        say(f"        no fit log under {out / artifacts.LOGS}: accuracy and loss curves skipped")

    training = training_record(loaded, out, log_dirs[-1] if log_dirs else None)
    train_count = split_size(loaded.dataset, _data_dir(loaded, data_dir), "train")
    cnn_row = _cnn_row(loaded, written.results, written.test_seconds, training, train_count)
    summary = {
        "dataset": loaded.dataset,
        "checkpoint": str(checkpoint),
        "test_time_augmentation": tta,
        **written.summary,
        **training,
        "cnn_row": cnn_row,
    }
    if baselines:
        say("baselines")
        rows = run_baselines(_split(loaded, data_dir, "train"), test, baseline_subset, seed, say)
        _write_baselines([cnn_row, *rows], out)
        summary["baselines"] = {r["model"]: {"accuracy": r["accuracy"], "fit_seconds": r["fit_seconds"]} for r in rows}
    write_summary(summary, out)
    say(f"done: test accuracy {written.results.accuracy:.4f}, loss {written.results.loss:.4f}; files in {out}/")
    if run_id := log_files_since(out, started):  # when the fit there logged to MLflow
        say(f"        and logged to MLflow run {run_id}")


def write_summary(summary: dict, out: Path) -> None:
    """summary.json (with the machine and versions) and summary.txt, the short read."""
    summary = {**summary, **environment()}
    write_text(out / artifacts.SUMMARY_JSON, json.dumps(summary, indent=2) + "\n")
    write_text(out / artifacts.SUMMARY_TEXT, report.summary_text(summary))


def export(
    checkpoint: str = DEFAULT_CHECKPOINT,
    output: str | None = None,
    data_dir: str | None = None,
    int8: bool = False,
    tta: str = "none",
) -> None:
    """Export the checkpoint to a self-contained ONNX file and check it against PyTorch on real test images.

    Args:
        checkpoint: the model to export.
        output: the .onnx file (default: digits_cnn.onnx beside the checkpoint).
        data_dir: folder of the IDX files (default: as the checkpoint's run found them).
        int8: also write an int8-quantized model (<output>_int8.onnx, faster on CPU), kept only if it
            loses at most 0.05 points of accuracy on the whole test set.
        tta: bake test-time augmentation into the graph: the probabilities averaged over these views of each
            image (none, shifts, rotations, shifts_rotations); same input and output as without.
    """
    views(tta)  # an unknown name ends here, before the checkpoint and the data are read
    loaded = load_checkpoint(checkpoint)
    target = Path(output) if output else Path(checkpoint).parent / artifacts.ONNX_MODEL
    run_lock.check_not_written(Path(checkpoint).parent, "--checkpoint")
    ensure_writable_dir(target.parent, "--output")
    run_lock.hold(target.parent, "export", "--output")
    images, labels = _split(loaded, data_dir, "test")
    metadata = {"dataset": loaded.dataset, "test_time_augmentation": tta}
    net, names = with_views(loaded.net, tta), DATASETS[loaded.dataset].class_names
    parity = export_onnx(net, target, names, float_images(images[:PARITY_IMAGES]), metadata)
    say(f"wrote {target}: onnxruntime matches PyTorch (max |logit difference| {parity.max_logit_difference:.1e})")
    if int8:
        int8_target = target.with_name(f"{target.stem}_int8.onnx")
        train_images, _ = _split(loaded, data_dir, "train")
        say(f"quantizing to {int8_target} (calibration: {CALIBRATION_IMAGES:,} training images)")
        quantize_int8(target, int8_target, float_images(train_images[:CALIBRATION_IMAGES]))
        try:
            check = check_int8_accuracy(target, int8_target, float_images(images), labels)
        except ExportCheckFailed:
            int8_target.unlink()
            raise
        say(
            f"wrote {int8_target}: test accuracy {check['int8_test_accuracy']:.4f} "
            f"(fp32 {check['fp32_test_accuracy']:.4f}) on {check['test_images']:,} images"
        )


def baselines(
    data_dir: str | None = None,
    dataset: str = "mnist",
    subset: int | None = None,
    seed: int = 0,
    artifacts_dir: str = artifacts.DEFAULT_DIR,
) -> None:
    """Fit Logistic Regression, a linear SVM and a Random Forest; write baselines.csv and baselines.png.

    Args:
        data_dir: folder of the IDX files (default: LIGHTNING_DIGITS_DATA or ./data).
        dataset: mnist or fashion_mnist.
        subset: fit on this many random training images instead of all.
        seed: picks the subset and seeds the models.
        artifacts_dir: where to write; the CNN's row comes from the summary.json that `evaluate` wrote there.
    """
    if dataset not in DATASETS:
        raise UserError(f"dataset {dataset!r} is unknown; choose one of {', '.join(DATASETS)}")
    out = Path(artifacts_dir)
    ensure_writable_dir(out, "--artifacts_dir")
    run_lock.hold(out, "baselines", "--artifacts_dir")
    rows = run_baselines(
        load_split(dataset, data_dir, "train"), load_split(dataset, data_dir, "test"), subset, seed, say
    )
    summary_path = out / artifacts.SUMMARY_JSON
    cnn_row = json.loads(summary_path.read_text()).get("cnn_row") if summary_path.is_file() else None
    if cnn_row is None:
        say(f"no CNN row: {summary_path} from `lightning-digits evaluate` is not there (or is from an older version)")
    _write_baselines([cnn_row, *rows] if cnn_row else rows, out)
    say(f"wrote {out / 'baselines.csv'} and {out / 'baselines.png'}")


def grid(checkpoint: str = DEFAULT_CHECKPOINT, samples: int = 9, seed: int = 0, data_dir: str | None = None) -> None:
    """The original's `--infer --samples N`: random test images with prediction and confidence.

    Args:
        checkpoint: the model to use.
        samples: how many images.
        seed: which images.
        data_dir: folder of the IDX files (default: as the checkpoint's run found them).
    """
    if samples < 1:
        raise UserError(f"--samples must be at least 1, got {samples}")
    loaded = load_checkpoint(checkpoint)
    target = Path(checkpoint).parent / "inference_grid.png"
    run_lock.hold(target.parent, "grid", "--checkpoint")
    images, labels = _split(loaded, data_dir, "test")
    results = report.test_pass(loaded.net, images, labels)
    galleries.inference_grid(results, images, DATASETS[loaded.dataset].class_names, samples, seed, target)
    say(f"wrote {target}")
