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


class SignalAtStep(Callback):
    """Sends a signal to its own process at the start of one training step, at any moment as far as the run can
    tell: SIGTERM as from a scheduler, SIGINT as from Ctrl-C."""

    def __init__(self, step: int = 3, name: str = "SIGTERM") -> None:
        self.step = step
        self.signal = signal.Signals[name]

    def on_train_batch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch, batch_idx: int) -> None:
        if trainer.global_step == self.step:
            os.kill(os.getpid(), self.signal)


class CtrlCInValidation(Callback):
    """Sends SIGINT to its own process while fit validates one epoch: Ctrl-C after that epoch's last step."""

    def __init__(self, epoch: int = 1) -> None:
        self.epoch = epoch

    def on_validation_batch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule, *args: object) -> None:
        if trainer.current_epoch == self.epoch and not trainer.sanity_checking:
            os.kill(os.getpid(), signal.SIGINT)
