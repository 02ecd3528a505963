"""The two pictures of individual test images: the inference grid (random images, the original's
`--infer --samples N`) and the most confident mistakes; which images to show and how to caption them."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from lightning_digits.evaluation import plots
from lightning_digits.evaluation.report import TestResults, most_confident_mistakes


def inference_grid(
    results: TestResults, images: np.ndarray, names: Sequence[str], samples: int, seed: int, path: Path
) -> None:
    chosen = np.random.default_rng(seed).choice(len(images), size=min(samples, len(images)), replace=False)
    predictions, confidence = results.predictions[chosen], results.probabilities[chosen].max(axis=1)
    captions = [
        f"pred {names[p]} ({100 * c:.1f}%)\ntrue {names[t]}"
        for p, c, t in zip(predictions, confidence, results.labels[chosen], strict=True)
    ]
    right = predictions == results.labels[chosen]
    title = f"Inference on {len(chosen)} random test images (seed {seed}): {int(right.sum())} right"
    plots.plot_image_grid(images[chosen], captions, right, title, path)


def misclassifications(results: TestResults, images: np.ndarray, names: Sequence[str], limit: int, path: Path) -> None:
    wrong = most_confident_mistakes(results, limit)
    confidence = results.probabilities[wrong].max(axis=1)
    captions = [
        f"true {names[results.labels[i]]} -> {names[results.predictions[i]]}\n{100 * c:.1f}%"
        for i, c in zip(wrong, confidence, strict=True)
    ]
    title = (
        f"The {len(wrong)} most confident of {results.misclassified} misclassified test images "
        "(true -> predicted, confidence)"
    )
    plots.plot_image_grid(images[wrong], captions, [False] * len(wrong), title, path, 6)
