"""Time to accuracy: fit a config with N seeds and test each run on the official 10,000 test images.

    LIGHTNING_DIGITS_DATA=../shared/data/mnist .venv/bin/python bench/time_to_accuracy.py -c configs/fast.yaml --seeds 5

Each run is the real command in a subprocess (`lightning-digits fit`, then `test` on the final checkpoint:
fixed epochs, the test set is never used to stop). The fit time is the Timer's time in the fit loop
(validation included, process start-up and imports not). The checkpoint that `evaluate`, `export` and `serve`
use (the best validation epoch by the config's `checkpoint.monitor`) is tested too, as what a user of the config
gets. `--tta VIEWS` also tests each run with test-time
augmentation (views chosen beforehand on validation with bench/tta.py), timing that test pass apart;
`--keep DIR` keeps each run in DIR/seed_N, e.g. for `lightning-digits ensemble DIR` or bench/ensembles.py
(`--first-seed` adds more seeds to a kept folder). `--command distill` trains with `distill` instead (the
teacher among the flags: `-- --teacher=[...]`; the test is the same). Prints a table, the mean, min, max and
median, and one JSON line with the machine and its load average when the runs began.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from lightning_digits import artifacts
from lightning_digits.checkpoints import load_checkpoint
from lightning_digits.evaluation.run_info import environment


def _latest_metrics(folder: Path) -> list[dict]:
    latest = max(folder.glob("logs/version_*"), key=lambda p: int(p.name.removeprefix("version_")))
    return list(csv.DictReader(open(latest / "metrics.csv")))


def _test(common: list[str], final: Path, folder: Path, tta: str) -> tuple[float, float]:
    """(test accuracy, seconds of the test command) of the final checkpoint, with the given views."""
    test = [sys.executable, "-m", "lightning_digits", "test", *common, f"--ckpt_path={final}", f"--model.tta={tta}"]
    start = time.perf_counter()
    subprocess.run(test, check=True, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    [row] = [r for r in _latest_metrics(folder) if r.get("test_acc")]
    return float(row["test_acc"]), seconds


def run(config: list[str], seed: int, folder: Path, extra: list[str], tta: str, command: str = "fit") -> dict:
    common = [*config, f"--artifacts_dir={folder}", f"--seed_everything={seed}", "--progress_bar.refresh_rate=0"]
    fit = [sys.executable, "-m", "lightning_digits", command, *common, *extra]
    subprocess.run(fit, check=True, capture_output=True, text=True)
    load_after_fit = os.getloadavg()[0]
    last_validation = float([r for r in _latest_metrics(folder) if r.get("val_acc")][-1]["val_acc"])
    final = folder / artifacts.FINAL_CHECKPOINT
    accuracy, _ = _test(common, final, folder, "none")
    fitted = load_checkpoint(final)
    best = folder / artifacts.BEST_CHECKPOINT
    result = {
        "seed": seed,
        "val_accuracy": last_validation,
        "test_accuracy": accuracy,
        "fit_seconds": fitted.training_seconds,
        "epochs": fitted.epoch + 1,
        "load_average_1min_after_fit": load_after_fit,
        "best_epoch": load_checkpoint(best).epoch + 1,
        "best_test_accuracy": _test(common, best, folder, "none")[0],
    }
    if tta != "none":
        result["tta_test_accuracy"], result["tta_test_command_seconds"] = _test(common, final, folder, tta)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("-c", "--config", action="append", default=[], help="config file(s) layered on the default")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--first-seed", type=int, default=0, help="seeds FIRST_SEED .. FIRST_SEED + SEEDS - 1")
    parser.add_argument("--tta", default="none", help="also test with these views (models/averaging.py VIEW_SETS)")
    parser.add_argument("--keep", type=Path, help="keep each run in KEEP/seed_N instead of a temporary folder")
    parser.add_argument("--command", choices=("fit", "distill"), default="fit", help="what trains each run")
    parser.add_argument("extra", nargs="*", help="more `fit` flags, after --")
    args = parser.parse_args()
    config = [f"--config={c}" for c in args.config]
    results = []
    print(
        f"{'seed':>4} {'val acc':>8} {'test acc':>9} {'fit s':>7} {'epochs':>6} {'best epoch':>10} {'its test acc':>12}"
        + (f" {'with ' + args.tta:>20}" * (args.tta != "none"))
    )
    load_average = os.getloadavg()[0]  # a time taken on a loaded machine is not a figure: the record says so
    for seed in range(args.first_seed, args.first_seed + args.seeds):
        with tempfile.TemporaryDirectory() as tmp:
            folder = args.keep / f"seed_{seed}" if args.keep else Path(tmp)
            result = run(config, seed, folder, args.extra, args.tta, args.command)
        results.append(result)
        tta = f" {result['tta_test_accuracy']:20.4f}" if "tta_test_accuracy" in result else ""
        print(
            f"{seed:4} {result['val_accuracy']:8.4f} {result['test_accuracy']:9.4f} {result['fit_seconds']:7.1f} "
            f"{result['epochs']:6} {result['best_epoch']:10} {result['best_test_accuracy']:12.4f}{tta}",
            flush=True,
        )
    summary = {"median_fit_seconds": statistics.median(r["fit_seconds"] for r in results)}
    for key in ("val_accuracy", "test_accuracy", "best_test_accuracy", "tta_test_accuracy"):
        values = [r[key] for r in results if key in r]
        if values:
            summary |= {f"mean_{key}": statistics.mean(values), f"min_{key}": min(values), f"max_{key}": max(values)}
            print(f"{key}: mean {statistics.mean(values):.4f}, min {min(values):.4f}, max {max(values):.4f}")
    print(f"fit: median {summary['median_fit_seconds']:.1f} s, max {max(r['fit_seconds'] for r in results):.1f} s")
    run_settings = {"command": args.command, "config": args.config, "extra": args.extra, "tta": args.tta}
    machine = {**environment()["hardware"], "load_average_1min": load_average}
    print(json.dumps({**run_settings, "runs": results, **summary, "hardware": machine}))


if __name__ == "__main__":
    main()
