"""What runs around training and prediction: the fixed-name checkpoints and the predictions writer."""

from __future__ import annotations

from pathlib import Path

import lightning.pytorch as pl
import torch
import torch.distributed as dist
from lightning.pytorch.callbacks import BasePredictionWriter, ModelCheckpoint

from lightning_digits.atomic import write_text
from lightning_digits.predictions import predictions_csv


class DigitsCheckpoint(ModelCheckpoint):
    """The best model as `digits_cnn.ckpt` and the last as `digits_cnn_final.ckpt`, the original's names.

    The last checkpoint's name replaces Lightning's `last.ckpt`, and `--ckpt_path last` finds it because
    Lightning looks for files that start with CHECKPOINT_NAME_LAST in this callback's folder.
    """

    CHECKPOINT_NAME_LAST = "digits_cnn_final"

    def __init__(
        self,
        dirpath: str | None = None,
        filename: str = "digits_cnn",
        monitor: str = "val_loss",
        mode: str = "min",
        every_n_train_steps: int | None = None,
    ) -> None:
        super().__init__(
            dirpath=dirpath,
            filename=filename,
            monitor=monitor,
            mode=mode,
            save_top_k=1,
            save_last=True,
            every_n_train_steps=every_n_train_steps,
            auto_insert_metric_name=False,
            enable_version_counter=False,
        )


class PredictionWriter(BasePredictionWriter):
    """Writes `predictions.csv` (file, predicted class, confidence, top 3) in input order, once, on rank 0."""

    def __init__(self, output_file: str | None = None) -> None:
        super().__init__(write_interval="epoch")
        self.output_file = output_file

    def write_on_epoch_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, predictions: list, batch_indices: list
    ) -> None:
        indices = torch.cat([p["index"] for p in predictions]).cpu()
        probabilities = torch.cat([p["probabilities"] for p in predictions]).cpu()
        if dist.is_available() and dist.is_initialized() and trainer.world_size > 1:
            shards: list = [None] * trainer.world_size
            dist.all_gather_object(shards, (indices, probabilities))
            indices = torch.cat([s[0] for s in shards])
            probabilities = torch.cat([s[1] for s in shards])
        if not trainer.is_global_zero:
            return
        datamodule = trainer.datamodule
        # A distributed sampler may repeat samples to even out the shards: keep each input once, in order.
        order = torch.argsort(indices)
        indices, probabilities = indices[order], probabilities[order]
        keep = torch.ones_like(indices, dtype=torch.bool)
        keep[1:] = indices[1:] != indices[:-1]
        write_text(
            self.path(trainer),
            predictions_csv(
                [datamodule.predict_names[i] for i in indices[keep].tolist()],
                probabilities[keep].numpy(),
                datamodule.class_names,
            ),
        )

    def path(self, trainer: pl.Trainer) -> Path:
        return Path(self.output_file or Path(trainer.default_root_dir) / "predictions.csv")
