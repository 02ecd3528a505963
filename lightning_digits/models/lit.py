"""LitDigits: loss, accuracy metrics, optimiser and scheduler around DigitsCNN.

Every hyperparameter is a plain value (no callables, no modules), so checkpoints load with
`weights_only=True` and `test/predict --ckpt_path X` rebuild the model from the checkpoint alone.
Knows nothing of files or plots.
"""

from __future__ import annotations

import math
from typing import Literal

import lightning.pytorch as pl
import torch
import torch.nn.functional as F
from torchmetrics import MeanMetric, MetricCollection
from torchmetrics.classification import MulticlassAccuracy

from lightning_digits.errors import NOTICES, UserError, check_ranges
from lightning_digits.models.averaging import views, with_views
from lightning_digits.models.cnn import Architecture, DigitsCNN
from lightning_digits.models.teacher import Teacher

OPTIMIZERS = {"adam": torch.optim.Adam, "adamw": torch.optim.AdamW}


class LitDigits(pl.LightningModule):
    def __init__(
        self,
        # The network's shape, as flat options (--model.channels ...); its defaults live in Architecture.
        channels: tuple[int, ...] = Architecture.channels,
        hidden: int = Architecture.hidden,
        global_pool: bool = Architecture.global_pool,
        conv_dropout: float = Architecture.conv_dropout,
        dense_dropout: float = Architecture.dense_dropout,
        mean: float = Architecture.mean,
        std: float = Architecture.std,
        deskew: bool = Architecture.deskew,
        label_smoothing: float = 0.0,
        optimizer: Literal["adam", "adamw"] = "adam",
        lr: float = 1e-3,
        weight_decay: float = 0.0,
        scheduler: Literal["plateau", "one_cycle", "none"] = "plateau",
        plateau_factor: float = 0.5,
        plateau_patience: int = 2,
        one_cycle_pct_start: float = 0.25,
        lr_scaling: Literal["none", "linear"] = "none",
        channels_last: bool = True,
        tta: str = "none",
    ) -> None:
        """`tta`: the views that `test` and `predict` average probabilities over (models/averaging.py
        VIEW_SETS). An inference option, not a hyperparameter: checkpoints do not carry it, so
        `test --ckpt_path X --model.tta shifts` applies it to any checkpoint."""
        super().__init__()
        views(tta)  # an unknown name ends here, as one line
        check_ranges(
            "model.",
            {
                "lr": (lr, lr > 0, "above 0"),
                "weight_decay": (weight_decay, weight_decay >= 0, "at least 0"),
                "label_smoothing": (label_smoothing, 0 <= label_smoothing < 1, "in [0, 1)"),
                "plateau_factor": (plateau_factor, 0 < plateau_factor < 1, "in (0, 1)"),
                "one_cycle_pct_start": (one_cycle_pct_start, 0 < one_cycle_pct_start < 1, "in (0, 1)"),
            },
        )
        arch = Architecture(channels, hidden, global_pool, conv_dropout, dense_dropout, mean, std, deskew)
        self.save_hyperparameters(ignore=["tta"])
        self.tta = tta
        self.teacher: Teacher | None = None  # set by `distill`; neither a hyperparameter nor a weight
        self.net = DigitsCNN(arch)
        if channels_last:
            self.net.to(memory_format=torch.channels_last)
        # Metric objects, not per-batch means: under DDP they sum counts across ranks, so validation and test
        # figures are those of the whole set. Plain accuracy: torchmetrics' default average is "macro".
        # Training's metrics skip the input checks (label range, NaN loss): each reads a value back from the device,
        # a host sync per step on a GPU; validation and test keep them.
        self.train_metrics, self.val_metrics, self.test_metrics = (
            MetricCollection(
                {
                    "acc": MulticlassAccuracy(num_classes=10, average="micro", validate_args=checked),
                    "loss": MeanMetric(nan_strategy="warn" if checked else "disable"),
                }
            )
            for checked in (False, True, True)
        )

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        if self.hparams.channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        return self.net(images)

    def _inference(self, images: torch.Tensor) -> torch.Tensor:
        """The network averaged over the `tta` views, for test and predict; built per call (a few views'
        grids), so that it is no submodule and checkpoints hold the network's weights once."""
        return with_views(self.net, self.tta).to(images.device)(images) if self.tta != "none" else self(images)

    def _step(self, batch: list[torch.Tensor], stage: str) -> torch.Tensor:
        images, labels = batch
        logits = self._inference(images) if stage == "test" else self(images)
        smoothing = self.hparams.label_smoothing if stage == "train" else 0.0
        loss = F.cross_entropy(logits, labels, label_smoothing=smoothing)
        if stage == "train" and self.teacher is not None:
            loss = self.teacher.loss(logits, images, loss)
        metrics = getattr(self, f"{stage}_metrics")
        # update(), not a call: a call also computes the batch's own value, which nothing here logs.
        metrics["acc"].update(logits, labels)
        metrics["loss"].update(loss.detach(), weight=len(labels))
        if stage == "train":
            self.log("train_loss_step", loss, prog_bar=True)
        self.log(f"{stage}_loss", metrics["loss"], on_step=False, on_epoch=True, prog_bar=stage != "train")
        self.log(f"{stage}_acc", metrics["acc"], on_step=False, on_epoch=True, prog_bar=True)
        return loss

    def training_step(self, batch: list[torch.Tensor], batch_idx: int) -> torch.Tensor:
        return self._step(batch, "train")

    def validation_step(self, batch: list[torch.Tensor], batch_idx: int) -> None:
        self._step(batch, "val")

    def test_step(self, batch: list[torch.Tensor], batch_idx: int) -> None:
        self._step(batch, "test")

    def predict_step(self, batch: list[torch.Tensor], batch_idx: int) -> dict[str, torch.Tensor]:
        images, indices = batch
        return {"index": indices, "probabilities": self._inference(images).float().softmax(dim=1)}

    def on_train_start(self) -> None:
        """A one-cycle schedule resumed from a checkpoint keeps the length it was made with (its state is
        restored after configure_optimizers): resumed for more epochs or steps than that, OneCycleLR would end
        the run at its last step with a traceback, after all the work before it."""
        if self.hparams.scheduler != "one_cycle":
            return
        length, needed = self.lr_schedulers().total_steps, self.trainer.estimated_stepping_batches
        if length < needed:
            raise UserError(
                f"model.scheduler one_cycle: the checkpoint's schedule is {length} steps long, this run needs "
                f"{needed}; resume with the epochs and steps it started with, or start a new fit from its weights"
            )

    def configure_optimizers(self):
        hp = self.hparams
        # data.batch_size is per process: under DDP the effective batch is batch_size x world size, and
        # "linear" scales the learning rate with it (Goyal et al., 2017).
        lr = hp.lr * (self.trainer.world_size if hp.lr_scaling == "linear" else 1)
        # fused: one kernel over all parameters instead of a loop over tensors (docs/benchmarks.md, "What each
        # change bought").
        optimizer = OPTIMIZERS[hp.optimizer](self.parameters(), lr=lr, weight_decay=hp.weight_decay, fused=True)
        if hp.scheduler == "none":
            return optimizer
        if hp.scheduler == "plateau":
            scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(
                optimizer, mode="min", factor=hp.plateau_factor, patience=hp.plateau_patience
            )
            return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "monitor": "val_loss"}}
        scheduler = torch.optim.lr_scheduler.OneCycleLR(
            optimizer,
            max_lr=lr,  # the scaled rate: OneCycleLR sets the optimiser's lr itself
            total_steps=_one_cycle_steps(self.trainer.estimated_stepping_batches, hp.one_cycle_pct_start),
            pct_start=hp.one_cycle_pct_start,
        )
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}


def _one_cycle_steps(steps: int, pct_start: float) -> int:
    """OneCycleLR's length: the run's steps, or more when they are too few for its warm-up. Its warm-up ends at
    step pct_start * steps - 1 and it divides by that, so a short smoke run (-c fast --trainer.limit_train_batches
    4: 0.25 * 4 - 1 = 0) would end in a ZeroDivisionError; such a run gets a longer cycle that it stops inside."""
    shortest = math.floor(1 / pct_start) + 1  # the fewest steps whose warm-up ends after step 0
    if steps >= shortest:
        return steps
    NOTICES.info(
        f"model.scheduler one_cycle: {steps} steps are too few for a warm-up of {pct_start:g} of them; the cycle "
        f"is {shortest} steps long and this run stops after {steps}"
    )
    return shortest
