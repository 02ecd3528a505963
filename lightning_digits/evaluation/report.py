"""One pass over the test set, and the tables made from it: confusion matrix, classification report,
most confident mistakes, label map, summary. Knows nothing of training or plotting."""

from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.metrics import classification_report, confusion_matrix

from lightning_digits.models.cnn import DigitsCNN


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


def as_model_input(images: np.ndarray) -> torch.Tensor:
    """uint8 [N, 28, 28] -> float [N, 1, 28, 28] in [0, 1], the model's input contract."""
    return torch.from_numpy(images.astype(np.float32)).div_(255).unsqueeze(1)


@torch.no_grad()
def test_pass(net: DigitsCNN, images: np.ndarray, labels: np.ndarray, batch_size: int = 1000) -> TestResults:
    net.eval()
    logits = torch.cat([net(as_model_input(images[i : i + batch_size])) for i in range(0, len(images), batch_size)])
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
    """The human-readable twin of summary.json: every scalar on a line, nested tables as indented JSON."""
    lines = []
    for key, value in summary.items():
        if isinstance(value, dict):
            lines.append(f"{key}:")
            lines += [f"  {line}" for line in json.dumps(value, indent=2).splitlines()[1:-1]]
        elif isinstance(value, float):
            lines.append(f"{key}: {value:.4f}")
        else:
            lines.append(f"{key}: {value}")
    return "\n".join(lines) + "\n"
