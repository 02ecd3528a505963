"""Faults injected into real runs from the command line, as a user could inject them:
`--trainer.callbacks+=tests.faults.RaiseOnRank --trainer.callbacks.rank=1 --trainer.callbacks.step=3`
(importable from the repository root, where the tests start the command). Test-only: not shipped."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import lightning.pytorch as pl
from lightning.pytorch.callbacks import Callback


class RaiseOnRank(Callback):
    """Raises RuntimeError on one rank at the start of one training step: what a CUDA out-of-memory error on
    one GPU, an NCCL error or a bad file on one node look like to the other ranks."""

    def __init__(self, rank: int = 1, step: int = 3, mark: str | None = None) -> None:
        """`mark`: a file created just before raising, for a test to time what follows."""
        self.rank = rank
        self.step = step
        self.mark = mark

    def on_train_batch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch, batch_idx: int) -> None:
        if trainer.global_rank == self.rank and trainer.global_step == self.step:
            if self.mark:
                Path(self.mark).touch()
            raise RuntimeError(f"injected failure on rank {self.rank} at step {self.step}")


class SigtermAtStep(Callback):
    """Sends SIGTERM to its own process at the start of one training step, as a scheduler would at any moment."""

    def __init__(self, step: int = 3) -> None:
        self.step = step

    def on_train_batch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch, batch_idx: int) -> None:
        if trainer.global_step == self.step:
            os.kill(os.getpid(), signal.SIGTERM)
