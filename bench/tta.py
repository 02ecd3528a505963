"""Choose the test-time augmentation views on the validation split, never the test set: for each checkpoint and
each named view set (models/averaging.py VIEW_SETS), the validation accuracy and the cost per image.

    LIGHTNING_DIGITS_DATA=../shared/data/mnist .venv/bin/python bench/tta.py runs/fast/seed_*/digits_cnn_final.ckpt

The validation split is the one each checkpoint's fit held out (its own val_size and split_seed), so a
checkpoint never sees its own validation images in training. Prints a table per view set (mean over the
checkpoints) and one JSON line.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

from lightning_digits.checkpoints import load_checkpoint
from lightning_digits.data.datamodule import fit_validation_set
from lightning_digits.evaluation.report import test_pass
from lightning_digits.models.averaging import VIEW_SETS, with_views


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("checkpoints", nargs="+")
    parser.add_argument("--view_sets", nargs="+", default=list(VIEW_SETS))
    args = parser.parse_args()
    rows: dict[str, list[dict]] = {name: [] for name in args.view_sets}
    for path in args.checkpoints:
        loaded = load_checkpoint(path)
        images, labels = fit_validation_set(loaded.data_hparams)
        for name in args.view_sets:
            start = time.perf_counter()
            accuracy = test_pass(with_views(loaded.net, name), images, labels).accuracy
            seconds = time.perf_counter() - start
            per_image = 1000 * seconds / len(labels)
            rows[name].append({"checkpoint": path, "val_accuracy": accuracy, "ms_per_image": per_image})
            print(f"{path}  {name:>17}: val accuracy {accuracy:.4f}, {per_image:.3f} ms/image", flush=True)
    print(f"\n{'views':>17} {'count':>5} {'mean val acc':>12} {'min':>7} {'max':>7} {'ms/image':>8}")
    summary = {}
    for name, results in rows.items():
        accuracies = [r["val_accuracy"] for r in results]
        cost = statistics.median(r["ms_per_image"] for r in results)
        summary[name] = {"mean_val_accuracy": statistics.mean(accuracies), "ms_per_image": cost}
        print(
            f"{name:>17} {len(VIEW_SETS[name]):5} {statistics.mean(accuracies):12.4f} {min(accuracies):7.4f} "
            f"{max(accuracies):7.4f} {cost:8.3f}"
        )
    print(json.dumps({"checkpoints": args.checkpoints, "view_sets": summary}))


if __name__ == "__main__":
    main()
