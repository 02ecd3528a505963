"""Every figure, one function each, written atomically as PNG with the Agg backend.

Functions take plain arrays and rows; they know nothing of where the data came from.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from lightning_digits.atomic import atomic_path

RIGHT, WRONG = "#1a7f37", "#cf222e"


def _save(figure: plt.Figure, path: Path | str) -> None:
    with atomic_path(path) as tmp:
        figure.savefig(tmp, format="png", dpi=110, bbox_inches="tight")
    plt.close(figure)


def plot_curves(epochs: Sequence[int], train: Sequence[float], val: Sequence[float], metric: str, path: Path) -> None:
    """Train and validation `metric` per epoch (1-based), the best validation epoch marked."""
    figure, axes = plt.subplots(figsize=(6.4, 4.2))
    axes.plot(epochs, train, "o-", label=f"train {metric} (augmented, dropout on)")
    axes.plot(epochs, val, "s-", label=f"validation {metric}")
    best = int(np.argmax(val) if metric == "accuracy" else np.argmin(val))
    axes.annotate(
        f"best val {val[best]:.4f}",
        (epochs[best], val[best]),
        textcoords="offset points",
        xytext=(0, -18 if metric == "accuracy" else 12),
        ha="center",
    )
    axes.set(xlabel="epoch", ylabel=metric, title=f"{metric.capitalize()} per epoch")
    axes.set_xticks(list(epochs))
    axes.grid(alpha=0.3)
    axes.legend()
    _save(figure, path)


def plot_confusion(counts: np.ndarray, class_names: Sequence[str], path: Path) -> None:
    """Colour: row-normalised rate (recall per true class) on a log scale so that mistakes show;
    text: the count, and the rate off the diagonal."""
    rates = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)
    figure, axes = plt.subplots(figsize=(8.5, 7.5))
    shown = np.where(rates > 0, rates, np.nan)
    image = axes.imshow(shown, cmap="Blues", norm=matplotlib.colors.LogNorm(vmin=1e-4, vmax=1))
    for (row, col), count in np.ndenumerate(counts):
        if count == 0:
            continue
        dark = rates[row, col] > 0.1
        text = f"{count}" if row == col else f"{count}\n{100 * rates[row, col]:.1f}%"
        axes.text(col, row, text, ha="center", va="center", fontsize=8, color="white" if dark else "black")
    axes.set_xticks(range(len(class_names)), class_names, rotation=45 if max(map(len, class_names)) > 2 else 0)
    axes.set_yticks(range(len(class_names)), class_names)
    accuracy = np.trace(counts) / counts.sum()
    axes.set(
        xlabel="predicted",
        ylabel="true",
        title=f"Confusion matrix: {counts.sum():,} test images, accuracy {accuracy:.4f}",
    )
    figure.colorbar(image, ax=axes, label="fraction of the true class (log scale)")
    _save(figure, path)


def plot_image_grid(
    images: np.ndarray, captions: Sequence[str], correct: Sequence[bool], title: str, path: Path, columns: int = 0
) -> None:
    """Digits (uint8 or float [N, 28, 28]) with a caption each, green when right and red when wrong."""
    count = len(images)
    columns = columns or int(np.ceil(np.sqrt(count)))
    rows = max(1, int(np.ceil(count / columns)))
    # Cells as wide as their longest caption line (about 0.075 inch a character at size 9): class names such
    # as Fashion-MNIST's "Ankle boot" would otherwise run into the neighbouring caption.
    longest = max((len(line) for caption in captions for line in caption.splitlines()), default=0)
    width = max(1.9, 0.075 * longest + 0.3)
    figure, grid = plt.subplots(
        rows, columns, figsize=(width * columns, 2.1 * rows + 0.4), squeeze=False, layout="constrained"
    )
    for axes in grid.ravel():
        axes.axis("off")
    for axes, image, caption, right in zip(grid.ravel(), images, captions, correct, strict=False):
        axes.imshow(image, cmap="gray", vmin=0, vmax=255 if image.dtype == np.uint8 else 1)
        axes.set_title(caption, fontsize=9, color=RIGHT if right else WRONG)
    figure.suptitle(title)
    _save(figure, path)


def plot_baselines(names: Sequence[str], accuracies: Sequence[float], fit_seconds: Sequence[float], path: Path) -> None:
    """Test accuracy per model as bars, with fit time beside each."""
    figure, axes = plt.subplots(figsize=(7.5, 0.7 * len(names) + 1.4))
    positions = np.arange(len(names))
    axes.barh(positions, [100 * a for a in accuracies], color="#4c72b0")
    for y, accuracy, seconds in zip(positions, accuracies, fit_seconds, strict=True):
        axes.text(100 * accuracy + 0.1, y, f"{100 * accuracy:.2f}%  (fit {seconds:.1f} s)", va="center", fontsize=9)
    axes.set_yticks(positions, names)
    axes.invert_yaxis()
    low = min(100 * a for a in accuracies)
    axes.set_xlim(max(0.0, low - 3), 101.5)
    axes.set(xlabel="test accuracy (%)", title="CNN vs classical baselines on the MNIST test set")
    axes.grid(axis="x", alpha=0.3)
    _save(figure, path)
