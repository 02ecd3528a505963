"""Reading a run's CSV fit logs: which log folders make up the newest `fit` run (following it back through
resumes), and its per-epoch training and validation curves. Knows nothing of plotting or checkpoints."""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import yaml

from lightning_digits import artifacts


@dataclass(frozen=True)
class Curve:
    metric: str  # "accuracy" or "loss"
    epochs: list[int]  # from 1
    train: list[float]
    val: list[float]


def _is_fit_run(folder: Path) -> bool:
    metrics = folder / "metrics.csv"
    if not (metrics.is_file() and (folder / "config.yaml").is_file()):
        return False
    with open(metrics) as f:
        return "train_loss" in f.readline().split(",")


def run_config(log_dir: Path) -> dict:
    """The config that a run's CLI saved beside its log."""
    return yaml.safe_load((log_dir / "config.yaml").read_text()) or {}


def find_training_logs(artifacts_dir: Path) -> list[Path]:
    """The newest `fit` run's CSV log folders, oldest first: that run's and, when it resumed from a checkpoint
    (`--ckpt_path`), those of the fit runs before it back to one that started fresh, since a resumed run logs
    only the epochs it trained. `test` and `predict` runs log here too, but no training metrics."""
    runs = sorted(
        (p for p in (artifacts_dir / artifacts.LOGS).glob("version_*") if _is_fit_run(p)),
        key=lambda p: int(p.name.removeprefix("version_")),
    )
    chain: list[Path] = []
    for run in reversed(runs):
        chain.insert(0, run)
        if run_config(run).get("ckpt_path") is None:
            break
    return chain


def epoch_values(log_dirs: list[Path]) -> dict[str, dict[int, float]]:
    """Per logged metric, epoch (from 1) -> value; a later run's figure for an epoch replaces an earlier one's
    (a run resumed from the final checkpoint repeats no epoch, one resumed from an older checkpoint does)."""
    values: dict[str, dict[int, float]] = {}
    for log_dir in log_dirs:
        with open(log_dir / "metrics.csv") as f:
            for row in csv.DictReader(f):
                for key in ("train_loss", "train_acc", "val_loss", "val_acc"):
                    if row.get(key):
                        values.setdefault(key, {})[int(row["epoch"]) + 1] = float(row[key])
    return values


def training_curves(log_dirs: list[Path]) -> list[Curve]:
    """Accuracy and loss over the epochs that have both a training and a validation figure."""
    values = epoch_values(log_dirs)
    curves = []
    for metric, suffix in (("accuracy", "acc"), ("loss", "loss")):
        train, val = values.get(f"train_{suffix}", {}), values.get(f"val_{suffix}", {})
        epochs = sorted(set(train) & set(val))
        if epochs:
            curves.append(Curve(metric, epochs, [train[e] for e in epochs], [val[e] for e in epochs]))
    return curves
