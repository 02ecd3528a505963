"""LitDigits: loss, accuracy metrics, optimiser and scheduler around DigitsCNN.

Every hyperparameter is a plain value (no callables, no modules), so checkpoints load with
`weights_only=True` and `test/predict --ckpt_path X` rebuild the model from the checkpoint alone.
Knows nothing of files or plots.
"""

from __future__ import annotations

from typing import Literal

import lightning.pytorch as pl
import torch
import torch.nn.functional as F
from torchmetrics.classification import MulticlassAccuracy

from lightning_digits.errors import UserError
from lightning_digits.models.cnn import DigitsCNN

OPTIMIZERS = {"adam": torch.optim.Adam, "adamw": torch.optim.AdamW}


class LitDigits(pl.LightningModule):
    def __init__(
        self,
        channels: tuple[int, ...] = (32, 64),
        hidden: int = 256,
        global_pool: bool = False,
        conv_dropout: float = 0.25,
        dense_dropout: float = 0.5,
        mean: float = 0.1307,
        std: float = 0.3081,
        label_smoothing: float = 0.0,
        optimizer: Literal["adam", "adamw"] = "adam",
        lr: float = 1e-3,
        weight_decay: float = 0.0,
        scheduler: Literal["plateau", "one_cycle", "none"] = "plateau",
        plateau_factor: float = 0.5,
        plateau_patience: int = 2,
        one_cycle_pct_start: float = 0.25,
        channels_last: bool = False,
    ) -> None:
        super().__init__()
        checks = {
            "lr": lr > 0,
            "weight_decay": weight_decay >= 0,
            "label_smoothing": 0 <= label_smoothing < 1,
            "conv_dropout": 0 <= conv_dropout < 1,
            "dense_dropout": 0 <= dense_dropout < 1,
            "plateau_factor": 0 < plateau_factor < 1,
            "one_cycle_pct_start": 0 < one_cycle_pct_start < 1,
            "channels": len(channels) > 0 and all(c > 0 for c in channels) and len(channels) <= 4,
        }
        for name, ok in checks.items():
            if not ok:
                raise UserError(f"model.{name}={locals()[name]!r} is out of range; see `lightning-digits fit --help`")
        self.save_hyperparameters()
        self.net = DigitsCNN(channels, hidden, global_pool, conv_dropout, dense_dropout, mean, std)
        if channels_last:
            self.net.to(memory_format=torch.channels_last)
        # Plain accuracy: torchmetrics' default average is "macro", which is not what the original reports.
        self.train_acc, self.val_acc, self.test_acc = (
            MulticlassAccuracy(num_classes=10, average="micro") for _ in range(3)
        )

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        if self.hparams.channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        return self.net(images)

    def _step(self, batch: list[torch.Tensor], stage: str, accuracy: MulticlassAccuracy) -> torch.Tensor:
        images, labels = batch
        logits = self(images)
        smoothing = self.hparams.label_smoothing if stage == "train" else 0.0
        loss = F.cross_entropy(logits, labels, label_smoothing=smoothing)
        accuracy(logits, labels)
        on_step = stage == "train"
        self.log(f"{stage}_loss", loss, on_step=on_step, on_epoch=True, prog_bar=True, sync_dist=stage != "train")
        self.log(f"{stage}_acc", accuracy, on_step=False, on_epoch=True, prog_bar=True)
        return loss

    def training_step(self, batch: list[torch.Tensor], batch_idx: int) -> torch.Tensor:
        return self._step(batch, "train", self.train_acc)

    def validation_step(self, batch: list[torch.Tensor], batch_idx: int) -> None:
        self._step(batch, "val", self.val_acc)

    def test_step(self, batch: list[torch.Tensor], batch_idx: int) -> None:
        self._step(batch, "test", self.test_acc)

    def predict_step(self, batch: list[torch.Tensor], batch_idx: int) -> dict[str, torch.Tensor]:
        images, indices = batch
        return {"index": indices, "probabilities": self(images).float().softmax(dim=1)}

    def configure_optimizers(self):  # noqa: ANN201 - Lightning accepts several shapes
        hp = self.hparams
        optimizer = OPTIMIZERS[hp.optimizer](self.parameters(), lr=hp.lr, weight_decay=hp.weight_decay)
        if hp.scheduler == "none":
            return optimizer
        if hp.scheduler == "plateau":
            scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(
                optimizer, mode="min", factor=hp.plateau_factor, patience=hp.plateau_patience
            )
            return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "monitor": "val_loss"}}
        scheduler = torch.optim.lr_scheduler.OneCycleLR(
            optimizer,
            max_lr=hp.lr,
            total_steps=self.trainer.estimated_stepping_batches,
            pct_start=hp.one_cycle_pct_start,
        )
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}
