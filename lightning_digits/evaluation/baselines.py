"""Classical baselines on the same MNIST training images and test set as the CNN, timed, and the table that
sets them beside the CNN.

The settings finish faster than scikit-learn's defaults with at least their accuracy; bench/baselines.py
runs both side by side and docs/benchmarks.md ("Baselines") has its figures. Knows nothing of torch.
"""

from __future__ import annotations

import csv
import io
import time
from collections.abc import Callable

import numpy as np
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.svm import LinearSVC

BASELINES: dict[str, Callable[[int], object]] = {
    # Newton-CG converges where scikit-learn's default (lbfgs, 100 iterations) stops unconverged; C=0.3 is
    # mildly stronger regularisation than the default C=1.
    "Logistic Regression": lambda seed: LogisticRegression(solver="newton-cg", C=0.3),
    # liblinear on the primal problem, which suits more samples (60k) than features (784), with a looser
    # tolerance than the default.
    "Linear SVM": lambda seed: LinearSVC(dual=False, C=0.3, tol=1e-2),
    # The default 100 trees, on both cores.
    "Random Forest": lambda seed: RandomForestClassifier(n_estimators=100, n_jobs=-1, random_state=seed),
}


def flatten(images: np.ndarray) -> np.ndarray:
    """uint8 [N, 28, 28] -> float32 [N, 784] in [0, 1]."""
    return images.reshape(len(images), -1).astype(np.float32) / 255


def run_baselines(
    train: tuple[np.ndarray, np.ndarray],
    test: tuple[np.ndarray, np.ndarray],
    subset: int | None = None,
    seed: int = 0,
    progress: Callable[[str], None] = print,
) -> list[dict]:
    """Fit each baseline on `train` (or a seeded random `subset` of it) and score it on `test`."""
    train_images, train_labels = train
    if subset is not None and subset < len(train_images):
        keep = np.random.default_rng(seed).choice(len(train_images), size=subset, replace=False)
        train_images, train_labels = train_images[keep], train_labels[keep]
    x_train, x_test = flatten(train_images), flatten(test[0])
    rows = []
    for name, make in BASELINES.items():
        progress(f"  {name}: fitting on {len(x_train):,} images ...")
        model = make(seed)
        start = time.perf_counter()
        model.fit(x_train, train_labels)
        fit_seconds = time.perf_counter() - start
        start = time.perf_counter()
        predictions = model.predict(x_test)
        predict_seconds = time.perf_counter() - start
        accuracy = float((predictions == test[1]).mean())
        progress(f"  {name}: accuracy {accuracy:.4f}, fit {fit_seconds:.1f} s")
        rows.append(
            {
                "model": name,
                "accuracy": accuracy,
                "fit_seconds": fit_seconds,
                "predict_seconds": predict_seconds,
                "train_images": len(x_train),
                "settings": repr(model),
            }
        )
    return rows


def baselines_csv(rows: list[dict]) -> str:
    """The comparison table as CSV, one row per model (the CNN's first when given), figures to 4 decimals."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({**row, **{k: f"{row[k]:.4f}" for k in ("accuracy", "fit_seconds", "predict_seconds")}})
    return buffer.getvalue()
