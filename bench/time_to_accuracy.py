"""Time to accuracy: fit a config with N seeds and test each run on the official 10,000 test images.

    LIGHTNING_DIGITS_DATA=../shared/data/mnist .venv/bin/python bench/time_to_accuracy.py -c configs/fast.yaml --seeds 5

Each run is the real command in a subprocess (`lightning-digits fit`, then `test` on the final checkpoint:
fixed epochs, the test set is never used to stop). The fit time is the Timer's time in the fit loop
(validation included, process start-up and imports not). Prints a table, the mean and median, and one JSON line.
"""

from __future__ import annotations

import argparse
import csv
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from lightning_digits import artifacts
from lightning_digits.checkpoints import load_checkpoint


def run(config: list[str], seed: int, folder: Path, extra: list[str]) -> dict:
    common = [*config, f"--artifacts_dir={folder}", f"--seed_everything={seed}", "--progress_bar.refresh_rate=0"]
    fit = [sys.executable, "-m", "lightning_digits", "fit", *common, *extra]
    subprocess.run(fit, check=True, capture_output=True, text=True)
    final = folder / artifacts.FINAL_CHECKPOINT
    test = [sys.executable, "-m", "lightning_digits", "test", *common, f"--ckpt_path={final}"]
    subprocess.run(test, check=True, capture_output=True, text=True)
    latest = max(folder.glob("logs/version_*"), key=lambda p: int(p.name.removeprefix("version_")))
    [row] = [r for r in csv.DictReader(open(latest / "metrics.csv")) if r.get("test_acc")]
    run = load_checkpoint(final)
    return {"seed": seed, "test_accuracy": float(row["test_acc"]), "fit_seconds": run.training_seconds,
            "epochs": run.epoch + 1}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("-c", "--config", action="append", default=[], help="config file(s) layered on the default")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("extra", nargs="*", help="more `fit` flags, after --")
    args = parser.parse_args()
    config = [f"--config={c}" for c in args.config]
    results = []
    print(f"{'seed':>4} {'test acc':>9} {'fit s':>7} {'epochs':>6}", flush=True)
    for seed in range(args.seeds):
        with tempfile.TemporaryDirectory() as tmp:
            result = run(config, seed, Path(tmp), args.extra)
        results.append(result)
        print(f"{seed:4} {result['test_accuracy']:9.4f} {result['fit_seconds']:7.1f} {result['epochs']:6}", flush=True)
    accuracies = [r["test_accuracy"] for r in results]
    seconds = [r["fit_seconds"] for r in results]
    print(f"mean test accuracy {statistics.mean(accuracies):.4f} (min {min(accuracies):.4f}), "
          f"median fit {statistics.median(seconds):.1f} s (max {max(seconds):.1f} s)")  # fmt: skip
    summary = {"mean_test_accuracy": statistics.mean(accuracies), "median_fit_seconds": statistics.median(seconds)}
    print(json.dumps({"config": args.config, "extra": args.extra, "runs": results, **summary}))


if __name__ == "__main__":
    main()
