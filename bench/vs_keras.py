"""The default config against the original Keras pipeline, side by side on this machine: rounds that take
turns (Keras, then ours), the same epochs, the same MNIST files. Keras is ../shared/peers/keras_seed.py run
with a TensorFlow venv (its README says how); ours is the real `lightning-digits fit` with the default config.

    python3 -m venv .tfvenv && .tfvenv/bin/pip install tensorflow-cpu==2.21.0
    LIGHTNING_DIGITS_DATA=../shared/data/mnist .venv/bin/python bench/vs_keras.py --rounds 2 --epochs 2

Ours runs on `--device` (default the CPU, where the Keras side's tensorflow-cpu runs: a GPU against it would
compare the hardware, not the pipelines). Seconds per epoch: each side's fit loop (validation included, process
start-up and data loading not) divided by its epochs; Keras' own median epoch too. Prints a row per run, the
medians, the ratio and one JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from devices import accelerator, add_device_flag

from lightning_digits import artifacts
from lightning_digits.checkpoints import load_checkpoint

PEER = Path(__file__).resolve().parent.parent.parent / "shared" / "peers" / "keras_seed.py"


def keras(python: str, data: str, epochs: int) -> dict:
    out = subprocess.run([python, str(PEER), data, str(epochs)], check=True, capture_output=True, text=True).stdout
    result = json.loads(out.strip().splitlines()[-1])
    return {
        "epoch_seconds": result["fit_s"] / result["epochs"],
        "median_epoch_seconds": result["epoch_s_median"],
        "test_accuracy": result["test_acc"],
    }


def ours(data: str, epochs: int, device: str) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        fit = [
            sys.executable,
            "-m",
            "lightning_digits",
            "fit",
            f"--data.data_dir={data}",
            f"--artifacts_dir={tmp}",
            f"--trainer.max_epochs={epochs}",
            "--progress_bar.refresh_rate=0",
            f"--trainer.accelerator={device}",
        ]
        subprocess.run(fit, check=True, capture_output=True, text=True)
        final = load_checkpoint(Path(tmp) / artifacts.FINAL_CHECKPOINT)
    return {"epoch_seconds": final.training_seconds / (final.epoch + 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--keras_python", default=".tfvenv/bin/python")
    parser.add_argument("--data", default=os.environ.get("LIGHTNING_DIGITS_DATA", "data"))
    add_device_flag(parser)
    args = parser.parse_args()
    runs: dict[str, list[dict]] = {"keras": [], "ours": []}
    for round_ in range(args.rounds):
        runs["keras"].append(keras(args.keras_python, args.data, args.epochs))
        print(f"round {round_ + 1}: keras {runs['keras'][-1]}", flush=True)
        runs["ours"].append(ours(args.data, args.epochs, accelerator(args.device)))
        print(f"round {round_ + 1}: ours  {runs['ours'][-1]}", flush=True)
    medians = {side: statistics.median(r["epoch_seconds"] for r in results) for side, results in runs.items()}
    ratio = medians["keras"] / medians["ours"]
    print(
        f"seconds per epoch (median of {args.rounds}): keras {medians['keras']:.1f}, ours {medians['ours']:.1f}; "
        f"ours is {ratio:.2f}x faster"
    )
    print(
        json.dumps(
            {
                "epochs": args.epochs,
                "device": str(args.device),
                "runs": runs,
                "median_epoch_seconds": medians,
                "speedup": ratio,
            }
        )
    )


if __name__ == "__main__":
    main()
