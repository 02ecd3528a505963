"""One trial: `lightning-digits fit` with the trial's overrides, built by the CLI's own machinery
(training.lightning_commands.run_lightning: the same configs, parser, checks, callbacks and loggers as a user's
fit), in this process, into the trial's own folder; and the one test of the best checkpoint after the study.
Knows nothing of the study's storage or sampler, nor of model internals.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from lightning.pytorch.callbacks import Callback

from lightning_digits.training.callbacks import DigitsCheckpoint
from lightning_digits.training.lightning_commands import build_without_trainer, run_lightning

OBJECTIVE = "val_acc"
# A trial's best checkpoint is the one the objective judges: its best validation accuracy.
MONITOR_OBJECTIVE = [f"--checkpoint.monitor={OBJECTIVE}", "--checkpoint.mode=max"]
# What only changes what a trial prints: tune prints one line per trial instead.
QUIET = ["--progress_bar.refresh_rate=0", "--trainer.enable_model_summary=false"]


@dataclass
class FitResult:
    value: float  # the best validation accuracy over the trial's epochs
    checkpoint: str  # the checkpoint with that accuracy
    config: str  # the CLI's config.yaml of this fit


def fit_args(configs: list[str], fixed: list[str], overrides: list[str], folder: Path | str) -> list[str]:
    """The trial's command line, after `lightning-digits`: configs first, then flags, later ones winning."""
    return [
        "fit",
        *(arg for config in configs for arg in ("--config", config)),
        *fixed,
        *overrides,
        f"--artifacts_dir={folder}",
        *MONITOR_OBJECTIVE,
        *QUIET,
    ]


def check(args: list[str]):
    """Parse `args` with fit's own parser and build the model and data module (their range checks run), without
    a Trainer: raises UserError (or jsonargparse's ArgumentError) on a key or value that fit would refuse."""
    built = build_without_trainer(args)
    return built.config[built.subcommand]


def run_fit(args: list[str], callbacks: list[Callback]) -> FitResult:
    cli = run_lightning(args, callbacks=callbacks)
    checkpoint = next((c for c in cli.trainer.checkpoint_callbacks if isinstance(c, DigitsCheckpoint)), None)
    if checkpoint is None or checkpoint.best_model_score is None:
        raise RuntimeError(f"the trial's fit recorded no {OBJECTIVE}: is validation turned off?")
    return FitResult(
        value=float(checkpoint.best_model_score),
        checkpoint=checkpoint.best_model_path,
        config=str(Path(cli.trainer.log_dir) / "config.yaml"),
    )


def run_test(config: str, checkpoint: str) -> dict[str, float]:
    """`lightning-digits test` of `checkpoint` with its fit's config: the test set's accuracy and loss."""
    # Without MLflow: tune logs the figures to the study's run.
    args = ["test", "--config", config, f"--ckpt_path={checkpoint}", "--mlflow.tracking_uri=null", "--verbose=false"]
    cli = run_lightning([*args, *QUIET[:1]])
    metrics = cli.trainer.callback_metrics
    return {name: float(metrics[name]) for name in ("test_acc", "test_loss") if name in metrics}
