"""The first run on a machine with GPUs, as is: one table of what this project claims for GPUs.

    make gpu-check          # LIGHTNING_DIGITS_DATA=... .venv/bin/python bench/gpu_check.py: every GPU, full size
    make gpu-check-cpu      # the same rows in a reduced form on 2 CPU processes (tests/test_gpu_check.py runs it)

Rows, each the real `lightning-digits fit` in a subprocess, then its final checkpoint tested here on the official
test set by `evaluate`'s own test pass (evaluation/report.py, on the CPU) (with `--cpu`: a short subset of the
data, so the figures only show that every row runs):
- fast preset on one device, bf16-mixed and 32-true: time to accuracy, and what bf16 buys;
- the default config (the original's 10 epochs) on one device;
- the fast preset under DDP on every device: samples/s against one device (scaling);
- the ONNX export of the first row's checkpoint against PyTorch (max |logit difference|, export.py's check).
Train seconds are the Timer's (the fit loop, validation included; start-up and imports not); samples/s counts
the training images of every rank. Prints the table and one JSON line. Figures go to docs/benchmarks.md with the
GPU model, the driver and this command.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

from lightning_digits import artifacts
from lightning_digits.checkpoints import load_checkpoint
from lightning_digits.data.augment import as_model_input
from lightning_digits.data.sources import DATASETS, load_split
from lightning_digits.evaluation.report import test_pass
from lightning_digits.export import export_onnx

# A short fit that every row can do on 2 CPU cores in seconds: it proves the rows run, nothing about speed.
REDUCED = [
    "--data.train_subset=640",
    "--data.val_size=200",
    "--data.batch_size=32",
    "--trainer.max_epochs=1",
    "--trainer.limit_train_batches=10",
    "--trainer.limit_val_batches=2",
]


def fit(folder: Path, flags: list[str], timeout: float) -> dict:
    """Fit in a subprocess; its final checkpoint's train seconds, steps and images per step."""
    # The folder after the flags: a preset (-c fast) names its own.
    command = [
        sys.executable,
        "-m",
        "lightning_digits",
        "fit",
        *flags,
        f"--artifacts_dir={folder}",
        "--progress_bar.refresh_rate=0",
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
    if done.returncode != 0:
        sys.exit(f"bench/gpu_check.py: `{' '.join(command[2:])}` failed:\n{done.stderr[-3000:]}")
    final = folder / artifacts.FINAL_CHECKPOINT
    state = torch.load(final, map_location="cpu", weights_only=True)
    loaded = load_checkpoint(final)
    return {
        "checkpoint": final,
        "train_seconds": loaded.training_seconds,
        "steps": state["global_step"],
        "batch_size": loaded.data_hparams["batch_size"],
        "epochs": loaded.epoch + 1,
    }


def onnx_difference(checkpoint: Path, images: np.ndarray) -> float:
    check = as_model_input(torch.from_numpy(images[:1000].copy())).numpy()
    with tempfile.TemporaryDirectory() as tmp:
        report = export_onnx(
            load_checkpoint(checkpoint).net, Path(tmp) / "m.onnx", DATASETS["mnist"].class_names, check
        )
    return report.max_logit_difference


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cpu", action="store_true", help="reduced form: 2 CPU processes, a short subset")
    parser.add_argument("--data", default=os.environ.get("LIGHTNING_DIGITS_DATA"), help="MNIST folder")
    parser.add_argument("--timeout", type=float, default=3600, help="seconds one fit may take")
    parser.add_argument("--keep", type=Path, help="keep each row's run in KEEP/N (N: the row's number from 0)")
    args = parser.parse_args()
    if args.cpu:
        accelerator, devices, extra, device = "cpu", 2, REDUCED, torch.device("cpu")
    elif torch.cuda.is_available():
        accelerator, devices, extra, device = "gpu", torch.cuda.device_count(), [], torch.device("cuda")
    else:
        sys.exit("bench/gpu_check.py: no CUDA GPU visible (torch.cuda.is_available() is False); --cpu: reduced form")
    data = [f"--data.data_dir={args.data}"] if args.data else []
    one = [*data, f"--trainer.accelerator={accelerator}", "--trainer.devices=1", *extra]
    runs = {  # name: (flags, processes)
        "fast bf16-mixed": (["-c", "fast", *one, "--trainer.precision=bf16-mixed"], 1),
        "fast 32-true": (["-c", "fast", *one, "--trainer.precision=32-true"], 1),
        "default config": ([*one], 1),
        f"fast DDP x{devices}": (
            [
                "-c",
                "fast",
                *data,
                f"--trainer.accelerator={accelerator}",
                f"--trainer.devices={devices}",
                "--trainer.strategy=ddp",
                *extra,
            ],
            devices,
        ),
    }
    test_images, test_labels = load_split("mnist", args.data, "test")
    rows = {}
    with tempfile.TemporaryDirectory() as tmp:
        for index, (name, (flags, processes)) in enumerate(runs.items()):
            result = fit((args.keep or Path(tmp)) / str(index), flags, args.timeout)
            result["samples_per_second"] = result["steps"] * result["batch_size"] * processes / result["train_seconds"]
            result["test_accuracy"] = test_pass(
                load_checkpoint(result["checkpoint"]).net, test_images, test_labels
            ).accuracy
            rows[name] = result
            print(f"{name}: {result['train_seconds']:.1f} s, test accuracy {result['test_accuracy']:.4f}", flush=True)
        parity = onnx_difference(rows["fast bf16-mixed"]["checkpoint"], test_images)
    single = rows["fast bf16-mixed"]["samples_per_second"]  # "vs first": bf16's gain over fp32, and DDP's scaling
    hardware = torch.cuda.get_device_name(0) if device.type == "cuda" else f"CPU, {os.cpu_count()} cores"
    print(f"\n{hardware}; torch {torch.__version__}" + (" (reduced form: figures prove nothing)" if args.cpu else ""))
    print(f"{'run':20} {'epochs':>6} {'train s':>8} {'samples/s':>10} {'vs first':>9} {'test acc':>9}")
    for name, r in rows.items():
        print(
            f"{name:20} {r['epochs']:6} {r['train_seconds']:8.1f} {r['samples_per_second']:10.0f} "
            f"{r['samples_per_second'] / single:8.2f}x {r['test_accuracy']:9.4f}"
        )
    print(f"ONNX export of 'fast bf16-mixed': max |logit difference| {parity:.2e} against PyTorch")
    for r in rows.values():
        r["checkpoint"] = str(r["checkpoint"].name)
    print(
        json.dumps(
            {
                "hardware": hardware,
                "reduced": args.cpu,
                "devices": devices,
                "rows": rows,
                "onnx_max_logit_difference": parity,
            }
        )
    )


if __name__ == "__main__":
    main()
