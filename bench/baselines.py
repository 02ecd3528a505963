"""Baselines: scikit-learn's defaults (the reference) vs the settings `lightning-digits baselines` uses,
fitted on the full 60,000 MNIST training images and scored on the 10,000 test images, in one process.

    LIGHTNING_DIGITS_DATA=../shared/data/mnist .venv/bin/python bench/baselines.py [--subset N]

Prints a table and, last, one JSON line.
"""

from __future__ import annotations

import argparse
import json
import time
import warnings

from sklearn.ensemble import RandomForestClassifier
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.svm import LinearSVC

from lightning_digits.data.sources import load_split
from lightning_digits.evaluation.baselines import BASELINES, flatten

DEFAULTS = {
    "Logistic Regression": lambda seed: LogisticRegression(),
    "Linear SVM": lambda seed: LinearSVC(),
    "Random Forest": lambda seed: RandomForestClassifier(random_state=seed),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--subset", type=int, default=None, help="fit on the first N training images")
    args = parser.parse_args()
    train_images, train_labels = load_split("mnist", None, "train")
    test_images, test_labels = load_split("mnist", None, "test")
    x_train, y_train = flatten(train_images[: args.subset]), train_labels[: args.subset]
    x_test = flatten(test_images)
    results = []
    print(f"{'model':22} {'settings':9} {'accuracy':>9} {'fit s':>7}")
    for name in BASELINES:
        for settings, make in (("default", DEFAULTS[name]), ("ours", BASELINES[name])):
            model = make(0)
            start = time.perf_counter()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ConvergenceWarning)
                model.fit(x_train, y_train)
            seconds = time.perf_counter() - start
            accuracy = float((model.predict(x_test) == test_labels).mean())
            results.append({"model": name, "settings": settings, "accuracy": accuracy, "fit_seconds": seconds})
            print(f"{name:22} {settings:9} {accuracy:9.4f} {seconds:7.1f}", flush=True)
    total = {s: sum(r["fit_seconds"] for r in results if r["settings"] == s) for s in ("default", "ours")}
    print(
        f"total fit time: default {total['default']:.1f} s, ours {total['ours']:.1f} s "
        f"({total['default'] / total['ours']:.2f}x faster)"
    )
    print(json.dumps({"results": results, "total_fit_seconds": total}))


if __name__ == "__main__":
    main()
