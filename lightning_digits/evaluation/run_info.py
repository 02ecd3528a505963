"""What a report says about the run behind it: how long and how many epochs it trained (from its checkpoints),
its config (from its fit log), and the machine and library versions it is reported on."""

from __future__ import annotations

import os
import platform
from importlib.metadata import version
from pathlib import Path

from lightning_digits import artifacts
from lightning_digits.checkpoints import LoadedCheckpoint, load_checkpoint
from lightning_digits.evaluation.training_logs import run_config

PACKAGES = ("torch", "lightning", "torchmetrics", "onnx", "onnxruntime", "scikit-learn", "numpy")


def training_record(best: LoadedCheckpoint, folder: Path, log_dir: Path | None) -> dict:
    """Best epoch from the evaluated checkpoint; epochs run and wall time from the final checkpoint beside it
    (the best may be older); the config from the fit log."""
    final_path = folder / artifacts.FINAL_CHECKPOINT
    final = load_checkpoint(final_path) if final_path.is_file() else best
    record: dict = {"best_epoch": best.epoch + 1, "epochs_run": final.epoch + 1}
    if final.training_seconds is not None:
        record["training_wall_seconds"] = round(final.training_seconds, 1)
    if log_dir is not None:
        record["config"] = run_config(log_dir)
        record["config_file"] = str(log_dir / "config.yaml")
    return record


def _cpu_name() -> str:
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def environment() -> dict:
    import torch

    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none"
    return {
        "hardware": {
            "cpu": _cpu_name(),
            "cpu_cores": os.cpu_count(),
            # AVX512 or AVX2 (torch's vector level): whether bf16 runs natively, and fit's precision on the CPU.
            "cpu_capability": torch.backends.cpu.get_cpu_capability(),
            "gpu": gpu,
            "torch_threads": torch.get_num_threads(),
        },
        "versions": {"python": platform.python_version(), **{name: version(name) for name in PACKAGES}},
    }
