"""What `fit` adds to its Trainer when MLflow is asked for (`--mlflow.tracking_uri`): Lightning's own
MLFlowLogger beside the CSV log, and a callback that records the run in the artifacts folder, logs the CLI's
config.yaml to it and tags it with the checkpoints' paths. Knows nothing of the model or the data.
"""

from __future__ import annotations

import json
from pathlib import Path

import lightning.pytorch as pl
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.loggers import MLFlowLogger  # Lightning's class; it imports mlflow only when used

from lightning_digits.atomic import write_text
from lightning_digits.tracking.runs import RUN_RECORD, MlflowSettings, require_mlflow


def mlflow_loggers(settings: MlflowSettings) -> list:
    """Lightning's MLFlowLogger when a tracking URI is set (none otherwise)."""
    if not settings.tracking_uri:
        return []
    require_mlflow("--mlflow.tracking_uri")
    tags = {"mlflow.parentRunId": settings.parent_run_id} if settings.parent_run_id else None
    return [
        MLFlowLogger(
            experiment_name=settings.experiment_name,
            run_name=settings.run_name,
            tracking_uri=settings.tracking_uri,
            tags=tags,
        )
    ]


def _mlflow_logger(trainer: pl.Trainer) -> MLFlowLogger | None:
    return next((logger for logger in trainer.loggers if isinstance(logger, MLFlowLogger)), None)


class RunRecord(Callback):
    """At the start of a fit, writes (with MLflow) or removes (without) the artifacts folder's record of its
    MLflow run, and logs the CLI's config.yaml to the run; at the end, the checkpoints' paths as tags."""

    def __init__(self, artifacts_dir: str, tracking_uri: str | None) -> None:
        self.record = Path(artifacts_dir) / RUN_RECORD
        self.tracking_uri = tracking_uri

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        # Every rank reads it: under DDP it is a broadcast from rank 0, which waits for all ranks.
        log_dir = trainer.log_dir or ""
        if not trainer.is_global_zero:
            return
        logger = _mlflow_logger(trainer)
        if logger is None:
            # A later `evaluate` of this folder belongs to this fit, which has no MLflow run.
            self.record.unlink(missing_ok=True)
            return
        record = {"tracking_uri": self.tracking_uri, "experiment_id": logger.experiment_id, "run_id": logger.run_id}
        write_text(self.record, json.dumps(record, indent=2) + "\n")
        config = Path(log_dir) / "config.yaml"  # SaveConfigCallback wrote it in setup()
        if config.is_file():
            logger.experiment.log_artifact(logger.run_id, str(config))

    def on_fit_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        logger = _mlflow_logger(trainer)
        if logger is None or not trainer.is_global_zero:
            return
        for callback in trainer.checkpoint_callbacks:
            path = getattr(callback, "best_model_path", "") or getattr(callback, "last_model_path", "")
            if path:
                logger.experiment.set_tag(logger.run_id, f"checkpoint.{Path(path).stem}", str(Path(path).resolve()))


def mlflow_callbacks(settings: MlflowSettings, artifacts_dir: str) -> list[Callback]:
    return [RunRecord(artifacts_dir, settings.tracking_uri)]
