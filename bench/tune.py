"""A study of the fast network against the hand-tuned preset: `lightning-digits tune -c tune` for N trials within
a time limit, then the best configuration and configs/fast.yaml side by side (validation accuracy as the study
measures it; test accuracy, mean of several seeds), what pruning saved, and the study machinery's overhead per
trial against a plain `fit` of the same trial, measured in this one run.

    LIGHTNING_DIGITS_DATA=../shared/data/mnist .venv/bin/python bench/tune.py --trials 20 --timeout 600 --seeds 3
    ... bench/tune.py --trials 3 --seeds 1 --overhead-repeats 1 -- --trainer.limit_train_batches=40   # a quick check

The study and every fit are the real command in a subprocess (bench/time_to_accuracy.py's runs: fit, then
test of the final checkpoint). Validation accuracy is the objective's: the best epoch's, on the seeded 5,000
image validation split, with the trials' seed (42). Time saved by pruning: each pruned trial's remaining epochs
at the pace of its own first ones. The overhead is two in-process timings of the same trial, taking turns:
`fit` with the trial's flags, and that trial run by Optuna (storage, heartbeats, the pruning callback, the
progress line and trials.csv). Prints a table and one JSON line.
"""

from __future__ import annotations

import argparse
import csv
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml
from time_to_accuracy import run as fit_and_test  # bench/ is on sys.path when this script runs

from lightning_digits import presets

REPO = Path(__file__).resolve().parent.parent


def _best_val_acc(folder: Path) -> float:
    [log] = folder.glob("logs/version_0/metrics.csv")
    return max(float(row["val_acc"]) for row in csv.DictReader(open(log)) if row.get("val_acc"))


def _settings(extra: list[str]) -> dict[str, str]:
    """`--trainer.max_epochs=1 ...` (the fit flags after `--`) -> {"trainer.max_epochs": "1", ...}: tune's `fit`."""
    return dict(flag.removeprefix("--").split("=", 1) for flag in extra)


def study(out: Path, trials: int, timeout: float, extra: list[str]) -> dict:
    command = [
        sys.executable,
        "-m",
        "lightning_digits",
        "tune",
        "-c",
        "tune",
        f"--n_trials={trials}",
        f"--timeout={timeout}",
        f"--study_dir={out}",
        "--study_name=bench",
        # One mapping of dotted keys: a second --fit.trainer.KEY flag would replace the first.
        f"--fit={json.dumps(_settings(extra))}",
    ]
    start = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if done.returncode:
        sys.exit(f"tune failed:\n{done.stderr[-3000:]}")
    print("\n".join(line for line in done.stderr.splitlines() if line.startswith(("trial ", "study "))))
    folder = out / "bench"
    rows = list(csv.DictReader(open(folder / "trials.csv")))
    max_epochs = yaml.safe_load(presets.preset_path("fast").read_text())["trainer"]["max_epochs"]
    pruned = [row for row in rows if row["state"] == "PRUNED"]
    saved = sum(float(r["seconds"]) * (max_epochs / int(r["pruned_after_epoch"]) - 1) for r in pruned)
    return {
        "study_seconds": seconds,
        "trials": len(rows),
        "complete": sum(row["state"] == "COMPLETE" for row in rows),
        "pruned": len(pruned),
        "trial_seconds": sum(float(row["seconds"] or 0) for row in rows),
        "pruning_saved_seconds": saved,
        "best": json.loads((folder / "best.json").read_text()),
        "best_yaml": str(folder / "best.yaml"),
    }


def preset_val_acc(out: Path, extra: list[str]) -> float:
    """The preset's validation accuracy measured as a trial's: best epoch, seed 42."""
    folder = out / "preset_val"
    command = [
        sys.executable,
        "-m",
        "lightning_digits",
        "fit",
        "-c",
        "fast",
        f"--artifacts_dir={folder}",
        "--checkpoint.monitor=val_acc",
        "--checkpoint.mode=max",
        "--progress_bar.refresh_rate=0",
        *extra,
    ]
    subprocess.run(command, check=True, capture_output=True, text=True)
    return _best_val_acc(folder)


def overhead(params: dict, out: Path, repeats: int, extra: list[str]) -> dict:
    """Seconds of a plain fit of `params` and of the same trial under Optuna, in this process, taking turns."""
    from lightning_digits.tuning import search as tune_run
    from lightning_digits.tuning import space
    from lightning_digits.tuning import study as studies
    from lightning_digits.tuning import trial as trials
    from lightning_digits.tuning.command import TuneOptions

    shipped = yaml.safe_load(presets.preset_path("tune").read_text())
    options = TuneOptions(
        space=shipped["space"],
        configs=shipped["configs"],
        n_trials=repeats,
        fit={**(shipped.get("fit") or {}), **_settings(extra)},
        study_name="overhead",
        study_dir=str(out / "overhead"),
        test_best=False,
    )
    plan = tune_run._plan(options)
    storage = studies.open_storage(f"sqlite:///{out / 'overhead' / 'study.db'}", options.heartbeat)
    plain, optuna_trial = [], []
    with tune_run._one_line_per_trial():
        study = studies.open_study(storage, "overhead", 0, 10, True, 3)
        for turn in range(repeats):
            args = trials.fit_args(plan.configs, plan.fixed, space.flags(params), out / "overhead" / f"plain_{turn}")
            start = time.perf_counter()
            trials.run_fit(args, [])
            plain.append(time.perf_counter() - start)
            study.enqueue_trial(params)
            start = time.perf_counter()
            study.optimize(tune_run._objective(plan), n_trials=1, callbacks=[tune_run._after_trial(plan)])
            optuna_trial.append(time.perf_counter() - start)
    return {
        "plain_fit_seconds": plain,
        "optuna_trial_seconds": optuna_trial,
        "ratio": statistics.median(optuna_trial) / statistics.median(plain),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--timeout", type=float, default=600, help="no new trial after this many seconds")
    parser.add_argument("--seeds", type=int, default=3, help="seeds of the test-accuracy comparison")
    parser.add_argument("--overhead-repeats", type=int, default=2)
    parser.add_argument("--out", type=Path, help="keep everything here (default: a temporary folder)")
    parser.add_argument("extra", nargs="*", help="fit flags (--key=value) for every run, after --: a reduced run")
    args = parser.parse_args()
    out = args.out or Path(tempfile.mkdtemp(prefix="bench_tune_"))
    out.mkdir(parents=True, exist_ok=True)

    found = study(out, args.trials, args.timeout, args.extra)
    best = found["best"]
    preset_val = preset_val_acc(out, args.extra)
    tests = {
        name: [
            fit_and_test(config, seed, out / f"{name}_seed_{seed}", args.extra, "none")["test_accuracy"]
            for seed in range(args.seeds)
        ]
        for name, config in (
            ("preset", ["--config", str(presets.preset_path("fast"))]),
            ("best", ["--config", found["best_yaml"]]),
        )
    }
    cost = overhead(best["params"], out, args.overhead_repeats, args.extra)

    print(
        f"\nstudy: {found['trials']} trials ({found['complete']} complete, {found['pruned']} pruned) in "
        f"{found['study_seconds']:.0f} s; pruning saved about {found['pruning_saved_seconds']:.0f} s"
    )
    print(f"{'':8} {'val_acc':>8} {'test_acc (mean of ' + str(args.seeds) + ' seeds)':>30}")
    for name, val in (("preset", preset_val), ("best", best["val_acc"])):
        print(f"{name:8} {val:8.4f} {statistics.mean(tests[name]):30.4f}  {tests[name]}")
    print(f"best trial {best['trial']}: {best['params']}")
    print(
        f"per trial: plain fit {statistics.median(cost['plain_fit_seconds']):.1f} s, the same trial under Optuna "
        f"{statistics.median(cost['optuna_trial_seconds']):.1f} s: ratio {cost['ratio']:.3f}"
    )
    summary = {**found, "preset_val_acc": preset_val, "test_accuracy": tests, "overhead": cost, "out": str(out)}
    (out / "bench_tune.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
