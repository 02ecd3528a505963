"""Training samples/s with 1 vs N processes under Lightning's DDP (gloo on CPU, NCCL on GPUs), same data, same
model.

    LIGHTNING_DIGITS_DATA=../shared/data/mnist .venv/bin/python bench/ddp_throughput.py [--images 10000]
        [--device cuda --processes 1 8]

On a 2-core machine expect no speed-up: each process gets one core and gradients are all-reduced every
step. The point of DDP on CPU here is correctness (tests/test_ddp.py); the speed is for GPUs.
Runs each `--rounds` times, taking turns; prints each run, the medians and one JSON line. The time is the Timer's
(the fit loop); on a GPU the epoch's validation reads its metrics back, which waits for the device.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from devices import accelerator, add_device_flag

from lightning_digits import artifacts
from lightning_digits.checkpoints import load_checkpoint


def fit_seconds(processes: int, images: int, folder: Path, device: str) -> float:
    command = [
        sys.executable,
        "-m",
        "lightning_digits",
        "fit",
        f"--artifacts_dir={folder}",
        f"--data.train_subset={images}",
        "--trainer.max_epochs=1",
        f"--trainer.accelerator={device}",
        f"--trainer.devices={processes}",
        f"--trainer.strategy={'ddp' if processes > 1 else 'auto'}",
        "--progress_bar.refresh_rate=0",
        "--trainer.limit_val_batches=1",  # one validation batch: early stopping needs val_loss
    ]
    subprocess.run(command, check=True, capture_output=True, text=True)
    return load_checkpoint(folder / artifacts.FINAL_CHECKPOINT).training_seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--images", type=int, default=10_000, help="training images in the epoch")
    parser.add_argument("--rounds", type=int, default=3, help="runs of each, taking turns (medians are reported)")
    parser.add_argument("--processes", type=int, nargs=2, default=[1, 2], help="the two process counts compared")
    add_device_flag(parser)
    args = parser.parse_args()
    few, many = args.processes
    rates: dict[int, list[float]] = {few: [], many: []}
    print(f"{'round':>5} {'processes':>9} {'samples/s':>10}")
    for round_index in range(args.rounds):  # taking turns, so that a noisy minute hits both alike
        for processes in rates:
            with tempfile.TemporaryDirectory() as tmp:
                seconds = fit_seconds(processes, args.images, Path(tmp), accelerator(args.device))
                rates[processes].append(args.images / seconds)
            print(f"{round_index:5} {processes:9} {rates[processes][-1]:10.0f}", flush=True)
    medians = {processes: statistics.median(values) for processes, values in rates.items()}
    print(
        f"median: {few} process(es) {medians[few]:.0f} samples/s, {many} processes {medians[many]:.0f} "
        f"({medians[many] / medians[few]:.2f}x)"
    )
    print(json.dumps({"samples_per_second": medians, "runs": rates, "images": args.images, "device": str(args.device)}))


if __name__ == "__main__":
    main()
