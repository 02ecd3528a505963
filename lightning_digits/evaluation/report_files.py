"""What `evaluate` and `ensemble` both write for a network on the test set: one test pass, the confusion matrix,
classification report, label map, the two galleries, and the ONNX export with its check against PyTorch.
The network may be one checkpoint's or several averaged over views (models/averaging.py): the same files
either way. Knows nothing of checkpoints or training logs."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from lightning_digits import artifacts
from lightning_digits.atomic import write_text
from lightning_digits.data.augment import as_model_input
from lightning_digits.evaluation import galleries, plots, report
from lightning_digits.export import export_onnx

PARITY_IMAGES = 1000


@dataclass
class TestReports:
    results: report.TestResults
    test_seconds: float  # the test pass alone
    summary: dict  # the figures for summary.json


def float_images(images: np.ndarray) -> np.ndarray:
    """uint8 [N, 28, 28] -> the model's float32 input [N, 1, 28, 28], as numpy for onnxruntime."""
    return as_model_input(torch.from_numpy(images.copy())).numpy()  # a copy: IDX arrays are read-only


def write_test_reports(
    net: nn.Module,
    class_names: Sequence[str],
    test: tuple[np.ndarray, np.ndarray],
    out: Path,
    gallery: dict,
    onnx_metadata: dict[str, str],
    say: Callable[[str], None],
) -> TestReports:
    """`gallery`: samples, mistakes and seed for the two pictures of test images."""
    images, labels = test
    say(f"test pass on {len(labels):,} images")
    start = time.perf_counter()
    results = report.test_pass(net, images, labels)
    test_seconds = time.perf_counter() - start
    say(f"        accuracy {results.accuracy:.4f}, loss {results.loss:.4f}, {test_seconds:.1f} s")

    say("confusion matrix, classification report, label map, misclassifications, inference grid")
    plots.plot_confusion(report.confusion(results, len(class_names)), class_names, out / "confusion_matrix.png")
    write_text(out / "classification_report.txt", report.report_text(results, class_names))
    write_text(out / "label_map.txt", report.label_map_text(class_names))
    galleries.misclassifications(results, images, class_names, gallery["mistakes"], out / "misclassifications.png")
    grid_path = out / "inference_grid.png"
    galleries.inference_grid(results, images, class_names, gallery["samples"], gallery["seed"], grid_path)

    say(f"ONNX export to {out / artifacts.ONNX_MODEL}, checked against PyTorch")
    metadata = {**onnx_metadata, "test_accuracy": f"{results.accuracy:.4f}"}
    parity = export_onnx(net, out / artifacts.ONNX_MODEL, class_names, float_images(images[:PARITY_IMAGES]), metadata)
    summary = {
        "test_images": len(labels),
        "test_accuracy": results.accuracy,
        "test_loss": results.loss,
        "misclassified": results.misclassified,
        "test_seconds": round(test_seconds, 2),
        "parameters": sum(p.numel() for p in net.parameters()),
        "onnx": {"file": artifacts.ONNX_MODEL, **parity.as_dict()},
    }
    return TestReports(results, test_seconds, summary)
