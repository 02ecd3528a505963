"""Independent ensembles from kept runs: consecutive seeds form each ensemble, evaluated by the real
`lightning-digits ensemble` command on the official test set.

    LIGHTNING_DIGITS_DATA=../shared/data/mnist .venv/bin/python bench/ensembles.py runs/best --members 3 [--tta shifts]

RUNS holds seed_0, seed_1, ... as `bench/time_to_accuracy.py --keep RUNS` leaves them; ensemble k is seeds k*M ..
k*M+M-1, each member its run's final checkpoint (`--checkpoint best`: the epoch its config's `checkpoint.monitor`
chose), so no ensemble is put together by looking at test figures. The training time of an ensemble is the sum
of its members' fit loops (the Timer's time in each checkpoint). Prints a row per ensemble, the mean, min and
max, and one JSON line.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from lightning_digits import artifacts
from lightning_digits.checkpoints import load_checkpoint
from lightning_digits.evaluation.run_info import environment

CHECKPOINTS = {"final": artifacts.FINAL_CHECKPOINT, "best": artifacts.BEST_CHECKPOINT}


def evaluate_ensemble(runs: list[Path], checkpoint: str, tta: str) -> dict:
    members = [run / CHECKPOINTS[checkpoint] for run in runs]
    with tempfile.TemporaryDirectory() as out:
        command = [
            sys.executable,
            "-m",
            "lightning_digits",
            "ensemble",
            *map(str, members),
            f"--output_dir={out}",
            f"--tta={tta}",
        ]
        subprocess.run(command, check=True, capture_output=True, text=True)
        summary = json.loads((Path(out) / artifacts.SUMMARY_JSON).read_text())
    training = [load_checkpoint(run / artifacts.FINAL_CHECKPOINT).training_seconds for run in runs]
    return {
        "seeds": [run.name for run in runs],
        "test_accuracy": summary["test_accuracy"],
        "member_test_accuracy": [m["test_accuracy"] for m in summary["members"]],
        "training_seconds": sum(training),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("runs", type=Path, help="folder of seed_N runs (bench/time_to_accuracy.py --keep)")
    parser.add_argument("--members", type=int, default=3, help="seeds per ensemble")
    parser.add_argument("--checkpoint", choices=CHECKPOINTS, default="final", help="which checkpoint of each run")
    parser.add_argument("--tta", default="none", help="also average over these views (models/averaging.py VIEW_SETS)")
    args = parser.parse_args()
    seeds = sorted(args.runs.glob("seed_*"), key=lambda p: int(p.name.removeprefix("seed_")))
    groups = [seeds[i : i + args.members] for i in range(0, len(seeds) - args.members + 1, args.members)]
    if not groups:
        sys.exit(f"bench/ensembles.py: fewer than {args.members} runs in {args.runs}")
    results = []
    print(f"{'seeds':>16} {'ensemble acc':>12} {'members':>24} {'training s':>10}")
    for group in groups:
        result = evaluate_ensemble(group, args.checkpoint, args.tta)
        results.append(result)
        members = " ".join(f"{a:.4f}" for a in result["member_test_accuracy"])
        print(
            f"{','.join(s.removeprefix('seed_') for s in result['seeds']):>16} {result['test_accuracy']:12.4f} "
            f"{members:>24} {result['training_seconds']:10.0f}",
            flush=True,
        )
    accuracies = [r["test_accuracy"] for r in results]
    summary = {
        "mean": statistics.mean(accuracies),
        "min": min(accuracies),
        "max": max(accuracies),
        "max_training_seconds": max(r["training_seconds"] for r in results),
    }
    print(
        f"ensembles of {args.members} (tta {args.tta}): mean {summary['mean']:.4f}, min {summary['min']:.4f}, "
        f"max {summary['max']:.4f}; training at most {summary['max_training_seconds']:.0f} s each"
    )
    print(
        json.dumps(
            {
                "runs": str(args.runs),
                "members": args.members,
                "checkpoint": args.checkpoint,
                "tta": args.tta,
                "ensembles": results,
                **summary,
                "hardware": environment()["hardware"],
            }
        )
    )


if __name__ == "__main__":
    main()
