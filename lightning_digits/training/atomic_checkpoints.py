"""How checkpoints reach the disk: through atomic.py's writer, and with a look at the free space first.

Lightning's own TorchCheckpointIO writes through fsspec, whose local "transaction" puts the file in the system
temp folder and then moves it: across filesystems that move is a copy into the final name, so a full disk or a
kill leaves a truncated checkpoint there and destroys the previous one. AtomicCheckpointIO, given to every
Trainer the CLI builds, writes beside the target instead; ModelCheckpoint and `trainer.save_checkpoint` (the
interrupt checkpoint) both go through it. Knows nothing of the model or the data.
"""

from __future__ import annotations

import io
import shutil
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import torch
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.plugins import TorchCheckpointIO

from lightning_digits import artifacts
from lightning_digits.atomic import atomic_path, option_for
from lightning_digits.errors import NOTICES


class AtomicCheckpointIO(TorchCheckpointIO):
    """TorchCheckpointIO whose local writes are atomic (loading and removing are Lightning's own)."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path: str | Path, storage_options: Any = None) -> None:
        if storage_options is not None or "://" in str(path):
            # Remote storage (s3://, ...) has no rename to make atomic: Lightning's writer, as before.
            return super().save_checkpoint(checkpoint, path, storage_options)
        # Serialised in memory first, as Lightning does: torch.save writing to a file itself turns a full disk's
        # OSError into a RuntimeError that says nothing of the disk; one plain write keeps the OSError.
        buffer = io.BytesIO()
        torch.save(checkpoint, buffer)
        with atomic_path(path) as tmp:
            tmp.write_bytes(buffer.getbuffer())


def with_atomic_checkpoints(plugins: Any) -> list:
    """The Trainer's `plugins` (None, one, or a list, as the config gives them) plus AtomicCheckpointIO."""
    given = [] if plugins is None else list(plugins) if isinstance(plugins, list | tuple) else [plugins]
    return [*given, AtomicCheckpointIO()]


def checkpoint_bytes(module: torch.nn.Module) -> int:
    """About the size of one checkpoint of `module`: its weights and buffers, plus two optimiser states the
    size of the weights (Adam's moments, which exist only after the first step, so they cannot be measured
    before the first epoch)."""
    weights = sum(p.numel() * p.element_size() for p in module.parameters())
    buffers = sum(b.numel() * b.element_size() for b in module.buffers())
    return 3 * weights + buffers


class SpaceCheck(Callback):
    """Before the first epoch, a one-line warning when the checkpoints' folder has less free space than this run's
    checkpoints need: the best and the final one, and a temporary copy while one of them is replaced."""

    def __init__(self, dirpath: str) -> None:
        self.folder = Path(dirpath)

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not trainer.is_global_zero or not self.folder.is_dir():
            return
        size = checkpoint_bytes(pl_module)
        present = sum(
            (self.folder / name).stat().st_size
            for name in (artifacts.BEST_CHECKPOINT, artifacts.FINAL_CHECKPOINT)
            if (self.folder / name).is_file()
        )
        needed = max(3 * size - present, size)
        free = shutil.disk_usage(self.folder).free
        if free < needed:
            NOTICES.warning(
                f"warning: {free / 1e6:.1f} MB free on {self.folder}, but saving this run's checkpoints needs about "
                f"{needed / 1e6:.1f} MB (each about {size / 1e6:.1f} MB: the best, the final and a temporary copy "
                f"while one is replaced); saving may fail: free space or choose another {option_for(self.folder)}"
            )
