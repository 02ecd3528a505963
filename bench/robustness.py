"""A model's accuracy on digits unlike MNIST's beside its MNIST test accuracy: the out-of-distribution set of
lightning_digits/data/rendered.py (digits rendered from Debian's fonts like scans of forms, and drawn with the
browser page's pen; never MNIST), read back from files through `load_digit` as `predict` reads a user's images,
per part, per source, per font family and per class, with the most frequent mistakes.

    LIGHTNING_DIGITS_DATA=../shared/data/mnist .venv/bin/python bench/robustness.py artifacts_digits/digits_cnn.onnx
    .venv/bin/python bench/robustness.py runs/x/digits_cnn.ckpt --part choose --per_class 20

Choose settings on the "choose" part; report the "report" part (its fonts are never used for choosing).
A checkpoint runs in PyTorch on the CPU, an .onnx file in onnxruntime. Prints tables and one JSON line.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import numpy as np

from lightning_digits.data.images import load_digit
from lightning_digits.data.rendered import RenderedDigit, installed_families, write_rendered_set
from lightning_digits.data.sources import load_split

Probabilities = Callable[[np.ndarray], np.ndarray]  # float [N, 28, 28] in [0, 1] -> [N, 10]


def model_probabilities(path: str) -> Probabilities:
    if path.endswith(".onnx"):
        from lightning_digits.onnx_predictor import OnnxDigits

        return OnnxDigits(path).probabilities
    import torch

    from lightning_digits.checkpoints import load_checkpoint
    from lightning_digits.evaluation.report import test_pass

    net = load_checkpoint(path).net

    def probabilities(images: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            return test_pass(net, images, np.zeros(len(images), dtype=np.int64)).probabilities

    return probabilities


def accuracy_by(key: Callable[[RenderedDigit], object], digits: list[RenderedDigit], right: np.ndarray) -> dict:
    counts, correct = Counter(), Counter()
    for digit, ok in zip(digits, right, strict=True):
        counts[key(digit)] += 1
        correct[key(digit)] += int(ok)
    return {k: {"accuracy": correct[k] / counts[k], "images": counts[k]} for k in sorted(counts, key=str)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("model", help="a .ckpt (PyTorch) or .onnx (onnxruntime) model")
    parser.add_argument("--part", choices=["choose", "report", "both"], default="both")
    parser.add_argument("--per_class", type=int, default=20, help="images per digit per font family")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--images", help="write the generated images here and keep them (default: a temp folder)")
    parser.add_argument("--data_dir", help="MNIST's folder (default: LIGHTNING_DIGITS_DATA)")
    args = parser.parse_args()
    families = installed_families(None if args.part == "both" else args.part)
    if not families:
        raise SystemExit("robustness.py: error: no font family installed; run `make fonts` (Debian's font packages)")
    probabilities = model_probabilities(args.model)

    mnist_images, mnist_labels = load_split("mnist", args.data_dir, "test")
    mnist_predicted = probabilities(mnist_images.astype(np.float32) / 255).argmax(1)
    mnist_accuracy = float((mnist_predicted == mnist_labels).mean())

    with tempfile.TemporaryDirectory() as scratch:
        digits = write_rendered_set(Path(args.images or scratch), families, args.per_class, args.seed)
        images = np.stack([load_digit(d.path) for d in digits])
    labels = np.array([d.label for d in digits])
    predicted = probabilities(images).argmax(1)
    right = predicted == labels

    by_part = accuracy_by(lambda d: d.part, digits, right)
    by_source = accuracy_by(lambda d: (d.part, d.source), digits, right)
    by_family = accuracy_by(lambda d: (d.part, d.family), digits, right)
    by_class = accuracy_by(lambda d: (d.part, d.label), digits, right)
    mistakes = Counter((d.part, d.label, int(p)) for d, p, ok in zip(digits, predicted, right, strict=True) if not ok)

    print(f"model {args.model}: MNIST test {mnist_accuracy:.4f} ({len(mnist_labels)} images)")
    for part, row in by_part.items():
        sources = ", ".join(f"{s} {r['accuracy']:.4f} ({r['images']})" for (p, s), r in by_source.items() if p == part)
        print(f"out of distribution, {part} part: {row['accuracy']:.4f} ({row['images']} images: {sources})")
    print(f"\n{'part':>6} {'font family':>18} {'accuracy':>8} {'images':>6}")
    for (part, family), row in by_family.items():
        print(f"{part:>6} {family:>18} {row['accuracy']:8.4f} {row['images']:6}")
    print(f"\n{'part':>6} " + " ".join(f"{digit:>6}" for digit in range(10)))
    for part in by_part:
        print(f"{part:>6} " + " ".join(f"{by_class[(part, digit)]['accuracy']:6.3f}" for digit in range(10)))
    print("\nmost frequent mistakes (part: true -> predicted, count): " + ", ".join(
        f"{part}: {true} -> {guess} x{n}" for (part, true, guess), n in mistakes.most_common(8)
    ))  # fmt: skip
    print(json.dumps({
        "model": args.model, "mnist_test": mnist_accuracy, "per_class": args.per_class, "seed": args.seed,
        "ood": {part: row["accuracy"] for part, row in by_part.items()},
        "ood_source": {f"{part}/{source}": row["accuracy"] for (part, source), row in by_source.items()},
        "ood_family": {f"{part}/{family}": row["accuracy"] for (part, family), row in by_family.items()},
        "ood_class": {f"{part}/{digit}": row["accuracy"] for (part, digit), row in by_class.items()},
    }))  # fmt: skip


if __name__ == "__main__":
    main()
