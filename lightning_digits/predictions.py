"""The predictions table shared by `predict` (PyTorch) and the onnxruntime-only predictor: numpy only."""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence

import numpy as np


def predictions_csv(names: Sequence[str], probabilities: np.ndarray, class_names: Sequence[str]) -> str:
    """CSV text: file, predicted class, its probability, and the top 3 as `class:probability` pairs."""
    top = np.argsort(-probabilities, axis=1, kind="stable")[:, :3]
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["file", "predicted", "confidence", "top3"])
    for name, row, ks in zip(names, probabilities, top, strict=True):
        top3 = " ".join(f"{class_names[k]}:{row[k]:.4f}" for k in ks)
        writer.writerow([name, class_names[ks[0]], f"{row[ks[0]]:.4f}", top3])
    return out.getvalue()
