"""One pass over the test set, and the tables made from it: confusion matrix, classification report,
most confident mistakes, label map, and the short summary a person reads. Knows nothing of training or
plotting."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.metrics import classification_report, confusion_matrix
from torch import nn

from lightning_digits.data.augment import as_model_input


@dataclass
class TestResults:
    labels: np.ndarray  # [N] int
    probabilities: np.ndarray  # [N, C] float32
    loss: float  # mean cross-entropy

    @property
    def predictions(self) -> np.ndarray:
        return self.probabilities.argmax(axis=1)

    @property
    def accuracy(self) -> float:
        return float((self.predictions == self.labels).mean())

    @property
    def misclassified(self) -> int:
        return int((self.predictions != self.labels).sum())


@torch.no_grad()
def test_pass(net: nn.Module, images: np.ndarray, labels: np.ndarray, batch_size: int = 1000) -> TestResults:
    net.eval()
    # A copy per batch: IDX arrays are read-only views of the file's bytes, which torch will not wrap.
    batches = (torch.from_numpy(images[i : i + batch_size].copy()) for i in range(0, len(images), batch_size))
    logits = torch.cat([net(as_model_input(batch)) for batch in batches])
    targets = torch.from_numpy(labels.astype(np.int64))
    loss = float(F.cross_entropy(logits, targets))
    return TestResults(labels.astype(np.int64), logits.softmax(dim=1).numpy(), loss)


def confusion(results: TestResults, num_classes: int) -> np.ndarray:
    """Counts [true, predicted]."""
    return confusion_matrix(results.labels, results.predictions, labels=list(range(num_classes)))


def report_text(results: TestResults, class_names: tuple[str, ...] | list[str]) -> str:
    """Per-class precision, recall, F1 and support, with macro and weighted averages."""
    return classification_report(
        results.labels,
        results.predictions,
        labels=list(range(len(class_names))),
        target_names=list(class_names),
        digits=4,
        zero_division=0,
    )


def most_confident_mistakes(results: TestResults, limit: int) -> np.ndarray:
    """Indices of misclassified samples, the most confident (wrong) prediction first."""
    wrong = np.flatnonzero(results.predictions != results.labels)
    confidence = results.probabilities[wrong].max(axis=1)
    return wrong[np.argsort(-confidence, kind="stable")][:limit]


def label_map_text(class_names: tuple[str, ...] | list[str]) -> str:
    return "".join(f"{index}\t{name}\n" for index, name in enumerate(class_names))


def summary_text(summary: dict) -> str:
    """A few lines a person reads at a glance, like the original's; summary.json holds the complete record."""
    lines = [
        f"test accuracy {summary['test_accuracy']:.4f}, loss {summary['test_loss']:.4f} "
        f"({summary['misclassified']:,} of {summary['test_images']:,} {summary['dataset']} test images misclassified)"
    ]
    members = summary.get("members")
    if members:
        accuracies = ", ".join(f"{member['test_accuracy']:.4f}" for member in members)
        lines.append(f"ensemble of {len(members)} networks (their own test accuracies: {accuracies})")
    if summary.get("test_time_augmentation", "none") != "none":
        lines.append(
            f"test-time augmentation: probabilities averaged over the {summary['test_time_augmentation']} views"
        )
    if "epochs_run" in summary:
        time = summary.get("training_wall_seconds")
        lines.append(
            f"training: {summary['epochs_run']} epochs, best epoch {summary['best_epoch']}"
            + (f", {time:.1f} s" if time is not None else "")
        )
    onnx = summary["onnx"]
    lines.append(
        f"{summary['parameters']:,} parameters; ONNX: {onnx['file']}, agrees with PyTorch "
        f"(max |logit difference| {onnx['max_logit_difference']:.1e})"
    )
    baselines = summary.get("baselines")
    if baselines:
        lines.append("baselines: " + ", ".join(f"{name} {row['accuracy']:.4f}" for name, row in baselines.items()))
    hardware, versions = summary["hardware"], summary["versions"]
    lines.append(
        f"hardware: {hardware['cpu']} ({hardware['cpu_cores']} cores, {hardware['cpu_capability']}), "
        f"GPU {hardware['gpu']}; "
        f"torch {versions['torch']}, lightning {versions['lightning']}"
    )
    source = f"checkpoint: {summary['checkpoint']}" if "checkpoint" in summary else "members: see summary.json"
    config = f", config: {summary['config_file']}" if summary.get("config_file") else ""
    lines.append(f"{source}; everything else: summary.json{config}")
    return "\n".join(lines) + "\n"
