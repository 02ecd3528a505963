"""Lightning's fit/validate/test/predict as this project builds them: DigitsCLI (the configs, the options it adds,
the checks it runs before Lightning would fail with a traceback, the loggers and callbacks), `run_lightning`
(what `lightning-digits fit ...` runs) and `build_without_trainer` (parse and build the model and data module,
run nothing: tune checks a trial's settings with it). cli.py imports this module only for those four commands,
so that the others never pay for Lightning. Knows nothing of model internals."""

from __future__ import annotations

import logging
import warnings
from pathlib import Path

import torch
from lightning.pytorch import Trainer
from lightning.pytorch.callbacks import (
    EarlyStopping,
    LearningRateMonitor,
    Timer,
    TQDMProgressBar,
)
from lightning.pytorch.cli import LightningArgumentParser, LightningCLI
from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger

from lightning_digits import artifacts, presets, run_lock
from lightning_digits.atomic import ensure_writable_dir
from lightning_digits.checkpoints import load_checkpoint
from lightning_digits.data.datamodule import DigitsDataModule
from lightning_digits.errors import UserError, check_ranges
from lightning_digits.models.lit import LitDigits
from lightning_digits.tracking.fit_logger import mlflow_callbacks, mlflow_loggers
from lightning_digits.tracking.runs import MlflowSettings
from lightning_digits.training.atomic_checkpoints import SpaceCheck, with_atomic_checkpoints
from lightning_digits.training.callbacks import (
    DigitsCheckpoint,
    FinalCheckpoint,
    PredictionWriter,
    cpu_precision,
    fixed_callbacks,
    weight_averaging,
)
from lightning_digits.training.lightning_internals import saved_with_weight_averaging

COMMANDS = ("fit", "validate", "test", "predict")


def _quiet_expected_warnings() -> None:
    # The data lives in memory as one tensor: worker processes would only add start-up cost.
    warnings.filterwarnings("ignore", ".*does not have many workers.*")
    # Lightning's own use of torch's pytree API on torch 2.14; not something a user can act on.
    warnings.filterwarnings("ignore", ".*LeafSpec.*", category=FutureWarning)
    # The summary's size estimate assumes fp32 under bf16; the parameter count it prints is still right.
    warnings.filterwarnings("ignore", ".*is not supported by the model summary.*")
    # The folder holds the run's lock and logs before Lightning looks, and the checkpoints have fixed names that
    # each run replaces atomically: "exists and is not empty" would be said on every run, a fresh folder's too.
    warnings.filterwarnings("ignore", ".*Checkpoint directory .* exists and is not empty.*")
    # An advertisement for a cloud service, printed on every run.
    logging.getLogger("lightning.pytorch.utilities.rank_zero").addFilter(_no_advertisement)


def _no_advertisement(record: logging.LogRecord) -> bool:
    return "litlogger" not in record.getMessage()


class DigitsTrainer(Trainer):
    """Lightning's Trainer; every option is Lightning's own.

    Args:
        limit_train_batches: training batches per epoch: an integer is a count (1: one batch), a decimal a
            fraction (1.0: all). Per process. Default: all.
        limit_val_batches: validation batches, counted as limit_train_batches. Default: all.
        limit_test_batches: test batches, counted as limit_train_batches. Default: all.
        limit_predict_batches: prediction batches, counted as limit_train_batches. Default: all.
    """

    # Declared again only for their type, int first: the Trainer's own hint (float | int | None) makes the CLI
    # read `--trainer.limit_val_batches=1` as 1.0, which Lightning takes as "all batches".
    def __init__(
        self,
        *,
        limit_train_batches: int | float | None = None,
        limit_val_batches: int | float | None = None,
        limit_test_batches: int | float | None = None,
        limit_predict_batches: int | float | None = None,
        **kwargs,
    ) -> None:
        super().__init__(
            limit_train_batches=limit_train_batches,
            limit_val_batches=limit_val_batches,
            limit_test_batches=limit_test_batches,
            limit_predict_batches=limit_predict_batches,
            **kwargs,
        )


class DigitsCLI(LightningCLI):
    def __init__(self, *args, **kwargs) -> None:
        with run_lock.command_scope():  # the folders' locks last as long as the command (it runs in here)
            super().__init__(*args, **kwargs)

    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        parser.add_argument(
            "--artifacts_dir", default=artifacts.DEFAULT_DIR, help="Where checkpoints, logs and reports go."
        )
        parser.add_argument(
            "--ema_decay",
            type=float | None,
            default=None,
            help="fit: average the weights as they train, an exponential moving average with this decay per step "
            "(e.g. 0.99); validation, checkpoints, test and export then use the average. Default: off.",
        )
        parser.add_lightning_class_args(DigitsCheckpoint, "checkpoint")
        parser.add_lightning_class_args(FinalCheckpoint, "final_checkpoint")
        parser.add_lightning_class_args(EarlyStopping, "early_stopping")
        parser.set_defaults({"early_stopping.monitor": "val_loss", "early_stopping.patience": 5})
        parser.add_lightning_class_args(LearningRateMonitor, "lr_monitor")
        parser.set_defaults({"lr_monitor.logging_interval": "epoch"})
        # Explicit: Lightning would switch to Rich's bar whenever `rich` is installed, unreadable in CI logs.
        parser.add_lightning_class_args(TQDMProgressBar, "progress_bar")
        parser.add_lightning_class_args(PredictionWriter, "prediction_writer")
        # Its state (time spent training) is saved in checkpoints; `evaluate` reports it.
        parser.add_lightning_class_args(Timer, "timer")
        parser.set_defaults({"timer.interval": "step"})  # the default is an enum that config.yaml cannot hold
        parser.add_class_arguments(MlflowSettings, "mlflow")

    def parse_arguments(self, parser: LightningArgumentParser, args: object) -> None:
        super().parse_arguments(parser, args)
        ckpt_path = self.config[self.config.subcommand].get("ckpt_path") if self.config.get("subcommand") else None
        if ckpt_path not in (None, "last", "best", "hpc", "registry"):
            # Lightning reads the file next, with a traceback when it is no good: a safe load and one line first.
            load_checkpoint(ckpt_path, flag="--ckpt_path")

    def before_instantiate_classes(self) -> None:
        """Check what Lightning would only find out later, with a traceback or not at all: the artifacts folder,
        validation turned off while something waits for its metrics, the EMA decay and a resume without it; and
        train in fp32 where the CPU would only emulate the bf16 asked for (said once the run begins)."""
        config = self.config[self.subcommand]
        decay = config.ema_decay
        check_ranges("--", {"ema_decay": (decay, decay is None or 0 < decay < 1, "in (0, 1), or null for none")})
        if self.subcommand == "fit" and config.trainer.limit_val_batches == 0:
            _check_nothing_watches_validation(config)
        for key in ("checkpoint", "final_checkpoint"):
            if config[key].dirpath is None:
                config[key].dirpath = config.artifacts_dir
        if self.subcommand == "fit" and config.ckpt_path is not None and decay is None:
            _check_resume_keeps_the_average(config)
        if config.trainer.default_root_dir is None:
            config.trainer.default_root_dir = config.artifacts_dir
        self.cpu_precision_notice = None
        if _runs_on_cpu(config.trainer.accelerator):
            capability = torch.backends.cpu.get_cpu_capability()
            config.trainer.precision, self.cpu_precision_notice = cpu_precision(config.trainer.precision, capability)
        for folder, option in _written_folders(config).items():
            ensure_writable_dir(folder, option)

    def instantiate_trainer(self, **kwargs):
        config = self.config_init[self.subcommand]
        for folder, option in _written_folders(self.config[self.subcommand]).items():
            run_lock.hold(folder, self.subcommand, option)  # one run per folder: a second one stops here
        if config.trainer.logger in (None, True):
            # CSV always (evaluate draws the curves from it), TensorBoard for live inspection.
            kwargs["logger"] = [
                CSVLogger(config.artifacts_dir, name=artifacts.LOGS),
                TensorBoardLogger(config.artifacts_dir, name=artifacts.TENSORBOARD),
                *mlflow_loggers(config.mlflow),
            ]
        # Not config options: the interrupt checkpoint must go beside the last one for `--ckpt_path last` to find it.
        fixed = fixed_callbacks(config.checkpoint.dirpath, self.cpu_precision_notice)
        kwargs["callbacks"] = [*(config.trainer.callbacks or []), *fixed]
        if self.subcommand == "fit":  # elsewhere the checkpoint's state_dict already is the average
            kwargs["callbacks"] += weight_averaging(config.ema_decay)
        kwargs["callbacks"] += mlflow_callbacks(config.mlflow, config.artifacts_dir)
        kwargs["callbacks"].append(SpaceCheck(config.checkpoint.dirpath))
        kwargs["plugins"] = with_atomic_checkpoints(config.trainer.plugins)  # every checkpoint write, atomic
        return super().instantiate_trainer(**kwargs)


def _runs_on_cpu(accelerator: object) -> bool:
    """Whether Lightning will run on the CPU: asked for, or "auto" with no GPU (CUDA or Apple's MPS) to pick."""
    if accelerator in (None, "auto"):
        return not torch.cuda.is_available() and not torch.backends.mps.is_available()
    return accelerator == "cpu"


def _written_folders(config) -> dict[str, str]:
    """The folders a Lightning command writes -> the option that chose each (usually all one folder)."""
    folders: dict[str, str] = {}
    for key in ("artifacts_dir", "checkpoint.dirpath", "final_checkpoint.dirpath"):
        folders.setdefault(str(config[key]), f"--{key}")
    return folders


def _check_resume_keeps_the_average(config) -> None:
    """A checkpoint of a fit with --ema_decay holds the average as its weights and the trained weights apart;
    resumed without the option, training would go on from the average, silently another run."""
    path = Path(config.final_checkpoint.dirpath) / artifacts.FINAL_CHECKPOINT
    path = path if config.ckpt_path == "last" else Path(config.ckpt_path)
    saved = torch.load(path, map_location="cpu", weights_only=True, mmap=True) if path.is_file() else {}
    if saved_with_weight_averaging(saved):
        raise UserError(
            f"{path} was saved by a fit with --ema_decay (an average of the weights); resume it with the "
            "same --ema_decay"
        )


def _check_nothing_watches_validation(config) -> None:
    watchers = [
        f"--{name}.monitor {config[name].monitor}"
        for name in ("early_stopping", "checkpoint")
        if (config[name].monitor or "").startswith("val_")
    ]
    if config.model.scheduler == "plateau":
        watchers.append("--model.scheduler plateau (it steps on val_loss)")
    if watchers:
        raise UserError(
            f"--trainer.limit_val_batches 0 turns validation off, but {', '.join(watchers)} need its metrics; fix: "
            "validate on part of the set (e.g. --trainer.limit_val_batches 0.2), or watch train_loss instead and "
            "use --model.scheduler one_cycle or none"
        )


def run_lightning(
    argv: list[str] | None, callbacks: list | None = None, cli_class: type[DigitsCLI] = DigitsCLI
) -> DigitsCLI:
    """`callbacks` join the Trainer's (tune's pruning); `cli_class` lets build_without_trainer stop early."""
    _quiet_expected_warnings()
    default_configs = [str(presets.default_config())]
    return cli_class(
        LitDigits,
        DigitsDataModule,
        trainer_class=DigitsTrainer,
        seed_everything_default=42,
        save_config_kwargs={"overwrite": True},
        # The model owns its optimiser and scheduler (plain hyperparameters); no --optimizer/--lr_scheduler.
        auto_configure_optimizers=False,
        # Parse errors are raised, not printed under a screenful of usage: main() prints them as one line.
        parser_kwargs={
            "exit_on_error": False,
            **{command: {"default_config_files": default_configs, "exit_on_error": False} for command in COMMANDS},
        },
        args=argv,
        trainer_defaults={"callbacks": callbacks} if callbacks else None,
    )


class _Built(Exception):
    """Raised once the model and the data module are built, before any Trainer: carries the CLI."""

    def __init__(self, cli: DigitsCLI) -> None:
        self.cli = cli


class _BuildOnly(DigitsCLI):
    def instantiate_trainer(self, **kwargs):
        raise _Built(self)


def build_without_trainer(argv: list[str]) -> DigitsCLI:
    """What `argv` (e.g. `["fit", ...]`) parses to, with its model and data module built (their range checks
    run) but no Trainer and nothing run: tune checks a trial's settings with it, and bench/fit_overhead.py trains
    the same parts in a plain loop. Raises UserError (or jsonargparse's ArgumentError) as the command would."""
    try:
        run_lightning(argv, cli_class=_BuildOnly)
    except _Built as built:
        return built.cli
    raise UserError(f"nothing to build from: lightning-digits {' '.join(argv)}")
