"""A model's accuracy on digits unlike MNIST's beside its MNIST test accuracy, in one of two suites.

`--suite ood` (the default): the out-of-distribution set of lightning_digits/evaluation/rendered.py (digits rendered
from Debian's fonts like scans of forms, and drawn with the browser page's pen; never MNIST), read back from files
through `load_digit` as `predict` reads a user's images, per part, per source, per font family and per class, with
the most frequent mistakes. Choose settings on the "choose" part; report the "report" part.

`--suite mnist-c`: MNIST-C's fifteen corruptions (lightning_digits/evaluation/mnist_c.py) of MNIST's test images,
per corruption, their mean and the clean accuracy, in two columns: the 28x28 arrays straight into the network (the
benchmark's protocol), and through `predict`'s preprocessing as a user's file would go (an image it refuses as
blank counts as wrong). `--split choose` makes the same corruptions with other draws of the validation split
instead: the only corrupted images to choose settings on.

`--suite hands` (MODEL: a checkpoint): one person's handwriting learnt with `lightning-digits adapt`. Each font
family of a part (the report part unless `--part choose`) is one hand: for k in `--k`, `adapt` learns k digits
per class of that hand (nothing held out) and the adapted model reads the hand's other digits (the same ones for
every k: those beyond the largest k). Prints accuracy
against k (mean and worst family), MNIST test beside it, and the seconds per adaptation (the command's wall
time, reading the digits and the ONNX export included); `--plot` draws the curve.

    LIGHTNING_DIGITS_DATA=../shared/data/mnist .venv/bin/python bench/robustness.py artifacts_digits/digits_cnn.onnx
    .venv/bin/python bench/robustness.py runs/x/digits_cnn.ckpt --part choose --per_class 20
    .venv/bin/python bench/robustness.py artifacts_digits/digits_cnn.onnx --suite mnist-c
    .venv/bin/python bench/robustness.py runs/x/digits_cnn.ckpt --suite mnist-c --split choose
    .venv/bin/python bench/robustness.py MODEL.onnx --suite mnist-c --limit 1 --picture docs/mnist_c.png
    .venv/bin/python bench/robustness.py artifacts_digits/digits_cnn.ckpt --suite hands --plot docs/hands.png

A checkpoint runs in PyTorch on the CPU, an .onnx file in onnxruntime. Prints tables and one JSON line.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import numpy as np

from lightning_digits.data.images import load_digit, to_mnist
from lightning_digits.data.sources import load_split
from lightning_digits.evaluation.mnist_c import CORRUPTIONS, benchmark_images, corrupt
from lightning_digits.evaluation.rendered import RenderedDigit, installed_families, write_rendered_set

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


def accuracy(probabilities: Probabilities, images: np.ndarray, labels: np.ndarray) -> float:
    """Accuracy of uint8 [N, 28, 28] (MNIST's storage) or float [N, 28, 28] in [0, 1] images."""
    floats = images.astype(np.float32) / 255 if images.dtype == np.uint8 else images
    return float((probabilities(floats).argmax(1) == labels).mean())


def as_user_file(image: np.ndarray) -> np.ndarray | None:
    """A uint8 28x28 array as `predict` sees it when saved as an image file: its preprocessing (paper and ink
    found from the border, cropped, fitted, centred); None where it refuses the image as blank."""
    try:
        return to_mnist(image.astype(np.float32) / 255)
    except ValueError:
        return None


def preprocessed_accuracy(probabilities: Probabilities, images: np.ndarray, labels: np.ndarray) -> float:
    seen = [as_user_file(image) for image in images]
    kept = np.array([s is not None for s in seen])
    right = np.zeros(len(labels), dtype=bool)
    if kept.any():
        batch = np.stack([s for s in seen if s is not None])
        right[kept] = probabilities(batch).argmax(1) == labels[kept]
    return float(right.mean())


def draw_corruptions(images: np.ndarray, seed: int, path: str) -> None:
    """One picture of the first image clean and under every corruption, for the docs."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    shown = {"clean": images[0], **{name: corrupt(images[:1], name, seed)[0] for name in CORRUPTIONS}}
    figure, axes = plt.subplots(2, 8, figsize=(12, 3.4))
    for axis, (name, image) in zip(axes.flat, shown.items(), strict=True):
        axis.imshow(image, cmap="gray", vmin=0, vmax=255)
        axis.set_title(name.replace("_", " "), fontsize=9)
        axis.axis("off")
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    print(f"wrote {path}")


def mnist_c_suite(args: argparse.Namespace, probabilities: Probabilities) -> None:
    images, labels, seed = benchmark_images(args.split, args.data_dir)
    seed += args.seed
    if args.limit:
        images, labels = images[: args.limit], labels[: args.limit]
    if args.picture:
        draw_corruptions(images, seed, args.picture)
    names = args.corruptions or list(CORRUPTIONS)
    clean = {"network": accuracy(probabilities, images, labels)}
    if not args.network_only:
        clean["predict"] = preprocessed_accuracy(probabilities, images, labels)
    rows = {}
    print(f"model {args.model}: MNIST-C on the {args.split} split ({len(labels)} images each, seed {seed})")
    print(f"{'corruption':>14} {'network':>8} {'predict':>8}")
    for name in names:
        corrupted = corrupt(images, name, seed)
        rows[name] = {"network": accuracy(probabilities, corrupted, labels)}
        if not args.network_only:
            rows[name]["predict"] = preprocessed_accuracy(probabilities, corrupted, labels)
        print(f"{name:>14} " + " ".join(f"{value:8.4f}" for value in rows[name].values()), flush=True)
    mean = {column: float(np.mean([row[column] for row in rows.values()])) for column in clean}
    worst = min(rows, key=lambda name: rows[name]["network"])
    print(f"{'mean':>14} " + " ".join(f"{value:8.4f}" for value in mean.values()))
    print(f"{'clean':>14} " + " ".join(f"{value:8.4f}" for value in clean.values()))
    print(
        json.dumps(
            {
                "model": args.model,
                "suite": "mnist-c",
                "split": args.split,
                "seed": seed,
                "images": len(labels),
                "clean": clean,
                "mean": mean,
                "worst": {"corruption": worst, **rows[worst]},
                "corruptions": rows,
            }
        )
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("model", help="a .ckpt (PyTorch) or .onnx (onnxruntime) model")
    parser.add_argument("--suite", choices=["ood", "mnist-c", "hands"], default="ood")
    parser.add_argument(
        "--part",
        choices=["choose", "report", "both"],
        help="ood, hands: which fonts (default: both for ood, report for hands)",
    )
    parser.add_argument("--per_class", type=int, default=20, help="ood, hands: images per digit per font family")
    parser.add_argument("--k", type=int, nargs="+", default=[1, 3, 5, 10], help="hands: digits per class learnt")
    parser.add_argument("--families", nargs="+", help="hands: these font families only")
    parser.add_argument("--plot", help="hands: draw accuracy against k to this PNG")
    parser.add_argument(
        "--adapt_args",
        nargs=argparse.REMAINDER,
        default=[],
        help="hands: the rest goes to every `adapt` (e.g. --trainer.limit_train_batches 2)",
    )
    parser.add_argument("--split", choices=["test", "choose"], default="test", help="mnist-c: corrupt which images")
    parser.add_argument("--corruptions", nargs="+", choices=list(CORRUPTIONS), help="mnist-c: these only")
    parser.add_argument("--network_only", action="store_true", help="mnist-c: skip the predict column (faster)")
    parser.add_argument("--picture", help="mnist-c: also draw the first image under every corruption to this PNG")
    parser.add_argument("--limit", type=int, help="mnist-c: the first N images only (a quick look)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--images", help="ood: write the generated images here and keep them (default: a temp folder)")
    parser.add_argument("--data_dir", help="MNIST's folder (default: LIGHTNING_DIGITS_DATA)")
    args = parser.parse_args()
    if args.suite == "hands":
        return hands_suite(args)
    probabilities = model_probabilities(args.model)
    if args.suite == "mnist-c":
        mnist_c_suite(args, probabilities)
    else:
        ood_suite(args, probabilities)


def ood_suite(args: argparse.Namespace, probabilities: Probabilities) -> None:
    families = installed_families(None if args.part in (None, "both") else args.part)
    if not families:
        raise SystemExit("robustness.py: error: no font family installed; run `make fonts` (Debian's font packages)")
    mnist_images, mnist_labels = load_split("mnist", args.data_dir, "test")
    mnist_accuracy = accuracy(probabilities, mnist_images, mnist_labels)

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
    print(
        "\nmost frequent mistakes (part: true -> predicted, count): "
        + ", ".join(f"{part}: {true} -> {guess} x{n}" for (part, true, guess), n in mistakes.most_common(8))
    )
    print(
        json.dumps(
            {
                "model": args.model,
                "mnist_test": mnist_accuracy,
                "per_class": args.per_class,
                "seed": args.seed,
                "ood": {part: row["accuracy"] for part, row in by_part.items()},
                "ood_source": {f"{part}/{source}": row["accuracy"] for (part, source), row in by_source.items()},
                "ood_family": {f"{part}/{family}": row["accuracy"] for (part, family), row in by_family.items()},
                "ood_class": {f"{part}/{digit}": row["accuracy"] for (part, digit), row in by_class.items()},
            }
        )
    )


def adapt_to(model: str, digits: Path, out: Path, adapt_args: list[str]) -> dict:
    """One `lightning-digits adapt` of `digits` (all learnt, none held out) in a process of its own, as a user
    runs it: its adapt.json, with `wall_seconds` the whole command's (start-up included)."""
    command = [
        sys.executable,
        "-m",
        "lightning_digits",
        "adapt",
        str(digits),
        "--checkpoint",
        model,
        "--output_dir",
        str(out),
        "--data.extra_val_fraction",
        "0",
        *adapt_args,
    ]
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"robustness.py: adapt failed: {' '.join(command)}\n{done.stderr[-2000:]}")
    return {**json.loads((out / "adapt.json").read_text()), "wall_seconds": time.perf_counter() - started}


def plot_hands(summary: dict, path: str) -> None:
    """Accuracy on a hand's other digits against the digits per class learnt: mean and worst family."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ks = list(summary)
    figure, axis = plt.subplots(figsize=(5.5, 3.5))
    axis.plot([0, *ks], [summary[ks[0]]["before"], *(summary[k]["mean"] for k in ks)], "o-", label="mean of hands")
    axis.plot(ks, [summary[k]["worst"] for k in ks], "s--", label="worst hand")
    axis.set_xlabel("digits per class learnt (k)")
    axis.set_ylabel("accuracy on the hand's other digits")
    axis.set_xticks([0, *ks])
    axis.grid(alpha=0.3)
    axis.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    print(f"wrote {path}")


def _index(digit: RenderedDigit) -> int:
    """Which image of its digit and family it is (write_rendered_set's file names end in _<index>)."""
    return int(digit.path.stem.rsplit("_", 1)[1])


def hands_suite(args: argparse.Namespace) -> None:
    from lightning_digits.evaluation.run_info import environment
    from lightning_digits.onnx_predictor import OnnxDigits

    families = installed_families(args.part if args.part in ("choose", "report") else "report")
    families = [f for f in families if not args.families or f.name in args.families]
    if not families:
        raise SystemExit("robustness.py: error: no font family installed; run `make fonts` (Debian's font packages)")
    if max(args.k) >= args.per_class:
        raise SystemExit(
            f"robustness.py: error: --k must stay below --per_class ({args.per_class}) to leave digits to test"
        )
    start = model_probabilities(args.model)
    rows = []
    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch)
        for family in families:
            digits = write_rendered_set(root / "all", [family], args.per_class, args.seed)
            # The same digits are read after every k: the family's images beyond the largest k.
            tested = [d for d in digits if _index(d) >= max(args.k)]
            images = np.stack([load_digit(d.path) for d in tested])
            labels = np.array([d.label for d in tested])
            hand_before = accuracy(start, images, labels)
            for k in args.k:
                learnt = [d for d in digits if _index(d) < k]
                folder = root / f"{family.name}_k{k}"
                for digit in learnt:
                    (folder / str(digit.label)).mkdir(parents=True, exist_ok=True)
                    (folder / str(digit.label) / digit.path.name).symlink_to(digit.path)
                record = adapt_to(args.model, folder, root / f"out_{family.name}_k{k}", args.adapt_args)
                hand = accuracy(OnnxDigits(record["output"]["onnx"]).probabilities, images, labels)
                row = {
                    "family": family.name,
                    "k": k,
                    "hand": hand,
                    "hand_before": hand_before,
                    "mnist_test": record["mnist_test"]["after"],
                    "mnist_test_before": record["mnist_test"]["before"],
                    "mnist_validation": record["validation"],  # none of the hand held out: MNIST's alone
                    "seconds": record["wall_seconds"],
                    "tested": len(tested),
                }
                rows.append(row)
                print(
                    f"{family.name:>16} k={k:<3} hand {hand_before:.4f} -> {hand:.4f} ({len(tested)} digits)  "
                    f"MNIST {row['mnist_test']:.4f} (before {row['mnist_test_before']:.4f}) {row['seconds']:.1f} s",
                    flush=True,
                )
    summary = {}
    for k in args.k:
        at_k = [row for row in rows if row["k"] == k]
        worst = min(at_k, key=lambda row: row["hand"])
        summary[k] = {
            "before": float(np.mean([r["hand_before"] for r in at_k])),
            "mean": float(np.mean([r["hand"] for r in at_k])),
            "worst": worst["hand"],
            "worst_family": worst["family"],
            "mnist_test": float(np.mean([r["mnist_test"] for r in at_k])),
            "mnist_validation": float(np.mean([r["mnist_validation"] for r in at_k])),
            "seconds": float(np.mean([r["seconds"] for r in at_k])),
        }
    print(f"\n{'k':>3} {'before':>7} {'mean':>7} {'worst':>7} {'(family)':>16} {'MNIST val':>9} {'test':>7} {'s':>5}")
    for k, row in summary.items():
        print(
            f"{k:>3} {row['before']:7.4f} {row['mean']:7.4f} {row['worst']:7.4f} {row['worst_family']:>16} "
            f"{row['mnist_validation']:9.4f} {row['mnist_test']:7.4f} {row['seconds']:5.1f}"
        )
    if args.plot:
        plot_hands(summary, args.plot)
    print(
        json.dumps(
            {
                "model": args.model,
                "suite": "hands",
                "part": families[0].part,
                "per_class": args.per_class,
                "seed": args.seed,
                "adapt_args": args.adapt_args,
                "tested": len(tested),
                **environment(),
                "by_k": summary,
                "runs": rows,
            }
        )
    )


if __name__ == "__main__":
    main()
