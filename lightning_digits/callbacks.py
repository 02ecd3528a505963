"""What runs around training and prediction: the fixed-name checkpoints and the predictions writer."""

from __future__ import annotations

from pathlib import Path

import lightning.pytorch as pl
import torch
import torch.distributed as dist
from lightning.pytorch.callbacks import BasePredictionWriter, Callback, ModelCheckpoint
from lightning.pytorch.trainer.states import TrainerFn

from lightning_digits import artifacts
from lightning_digits.atomic import write_text
from lightning_digits.errors import UserError
from lightning_digits.predictions import predictions_csv


class DigitsCheckpoint(ModelCheckpoint):
    """The best model by validation loss, as `digits_cnn.ckpt` (the original's name).

    CHECKPOINT_NAME_LAST only tells Lightning what `--ckpt_path last` looks for in this folder: the file that
    FinalCheckpoint writes. (Lightning 2.6's own `save_last` skips epochs that did not improve the monitored
    metric, so it cannot serve as the "lose at most one epoch" checkpoint.)
    """

    CHECKPOINT_NAME_LAST = artifacts.FINAL_STEM

    def __init__(self, dirpath: str | None = None, monitor: str = "val_loss", mode: str = "min") -> None:
        super().__init__(
            dirpath=dirpath,
            filename=artifacts.BEST_STEM,
            monitor=monitor,
            mode=mode,
            save_top_k=1,
            auto_insert_metric_name=False,
            enable_version_counter=False,
        )


class FinalCheckpoint(ModelCheckpoint):
    """The latest state as `digits_cnn_final.ckpt`, rewritten after every epoch (and every N training steps
    when asked), so a crash loses at most that much work and `--ckpt_path last` resumes from it."""

    CHECKPOINT_NAME_LAST = artifacts.FINAL_STEM

    def __init__(self, dirpath: str | None = None, every_n_train_steps: int | None = None) -> None:
        super().__init__(
            dirpath=dirpath,
            filename=artifacts.FINAL_STEM,
            monitor=None,
            save_top_k=1,
            every_n_train_steps=every_n_train_steps,
            every_n_epochs=None if every_n_train_steps else 1,
            enable_version_counter=False,
        )


class InterruptCheckpoint(Callback):
    """On Ctrl-C or a crash during training, save the state as the final checkpoint so `--ckpt_path last`
    resumes from it. Not for mistakes caught before training starts, nor outside `fit`: those must leave
    existing checkpoints alone. (Lightning's OnExceptionCheckpoint deletes its file at teardown, which
    would delete the final checkpoint here.)"""

    def __init__(self, dirpath: str) -> None:
        self.path = Path(dirpath) / artifacts.FINAL_CHECKPOINT

    def on_exception(self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException) -> None:
        if trainer.state.fn == TrainerFn.FITTING and trainer.global_step > 0 and not isinstance(exception, UserError):
            trainer.save_checkpoint(self.path)


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
        return Path(self.output_file or Path(trainer.default_root_dir) / artifacts.PREDICTIONS)
