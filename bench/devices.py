"""`--device` for the benches: the flag, the Lightning accelerator it means, and the wait for the device that
must come before every clock reading (CUDA kernels run asynchronously: a clock read without it times the
launches, not the work)."""

from __future__ import annotations

import argparse

import torch


def add_device_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--device", type=torch.device, default=torch.device("cpu"), help="cpu, cuda, cuda:1, ...")


def accelerator(device: torch.device) -> str:
    """The `--trainer.accelerator` that runs on `device`."""
    return "gpu" if device.type == "cuda" else device.type


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
