"""What runs around training and prediction: the fixed-name checkpoints, what happens on an interrupt or a failure
(under DDP too), and the predictions writer."""

from __future__ import annotations

import signal
import threading
from pathlib import Path

import lightning.pytorch as pl
import torch
import torch.distributed as dist
from lightning.pytorch.callbacks import BasePredictionWriter, Callback, EMAWeightAveraging, ModelCheckpoint
from lightning.pytorch.trainer.states import RunningStage, TrainerFn
from lightning.pytorch.utilities.exceptions import SIGTERMException

from lightning_digits import artifacts
from lightning_digits.atomic import write_text
from lightning_digits.data.augment import rank_seed
from lightning_digits.errors import NOTICES, UserError
from lightning_digits.predictions import predictions_csv
from lightning_digits.training.lightning_internals import kill_other_ranks, save_without_barrier


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
    """On Ctrl-C, SIGTERM or a crash during training, save the state as the final checkpoint so `--ckpt_path last`
    resumes from it. Not for mistakes caught before training starts, nor outside `fit`: those must leave
    existing checkpoints alone. (Lightning's OnExceptionCheckpoint deletes its file at teardown, which
    would delete the final checkpoint here.)

    Nor while fit validates: Lightning 2.6.6 resumes a state saved there as an epoch whose batches are done and
    skips its validation, so early stopping finds no metric and the resumed run ends in a traceback (Lightning
    issue 18595). The final checkpoint of the epoch before stays, and the resume trains that one epoch again.

    Rank 0 writes its own copy and waits for no one: `trainer.save_checkpoint` ends in a barrier, and under DDP
    the rank that failed never reaches it while the others sit in the collective it left (the run hung).
    Every rank holds the same weights, so rank 0's copy is the run's state."""

    def __init__(self, dirpath: str) -> None:
        self.path = Path(dirpath) / artifacts.FINAL_CHECKPOINT

    def on_exception(self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException) -> None:
        fitting = trainer.state.fn == TrainerFn.FITTING and trainer.global_step > 0
        training = trainer.state.stage == RunningStage.TRAINING
        if fitting and training and trainer.is_global_zero and not isinstance(exception, UserError):
            save_without_barrier(trainer, self.path)


class EndEveryRank(Callback):
    """Under DDP, an exception on one rank ends every rank within seconds instead of leaving them waiting in a
    collective for it (with NCCL, for the process group's 30-minute timeout).

    Lightning 2.6.6 does half of it: the launcher on rank 0 SIGKILLs every process once another rank has
    exited with an error (it looks every 5 s), and on Ctrl-C rank 0 SIGKILLs the others after its own
    `on_exception`. Here rank 0 does the same on any exception, and the rank that failed says so in one line
    (the traceback follows). Under torchrun or SLURM, whose agents start the processes, the agent ends them."""

    def on_exception(self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException) -> None:
        if trainer.world_size == 1:
            return
        # A UserError is already one line of its own (cli.main); interrupts are said by whoever handles them.
        if not isinstance(exception, (KeyboardInterrupt, SIGTERMException, UserError)):
            NOTICES.error(
                f"rank {trainer.global_rank} of {trainer.world_size} failed with {type(exception).__name__}: "
                f"{exception}; ending every rank"
            )
        kill_other_ranks(trainer)


class StopOnSigterm(Callback):
    """SIGTERM (how SLURM, Kubernetes and `timeout` stop a job) ends a fit after the current training step, on
    every rank at the same step; InterruptCheckpoint then saves the state, and the exit code is 143 (128 + 15,
    "terminated", so that a scheduler does not take the run for finished).

    Replaces Lightning 2.6.6's handler while training: that one broadcasts from inside the signal handler, i.e.
    a collective at whatever point each rank happens to be, and a two-process fit on the CPU hung on it. Here the
    handler only sets a flag; after each step the ranks take the maximum of their flags (one all_reduce), so a
    signal to any one rank stops them all together. Lightning restores the previous handler at teardown."""

    def __init__(self) -> None:
        self.requested = False

    def _install(self) -> None:
        # After Lightning installed its own (Trainer._run, after on_fit_start); only the main thread may.
        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, self._request)

    def _request(self, signum: int, frame: object) -> None:
        self.requested = True

    def on_sanity_check_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._install()

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._install()

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, *args: object) -> None:
        requested = self.requested
        if trainer.world_size > 1:
            flag = torch.tensor([int(requested)], device=pl_module.device)
            dist.all_reduce(flag, op=dist.ReduceOp.MAX)
            requested = bool(flag.item())
        if requested:
            if trainer.is_global_zero:
                NOTICES.info(
                    f"SIGTERM: stopped after step {trainer.global_step}"
                    f"{' on every rank' if trainer.world_size > 1 else ''}; resume with --ckpt_path last"
                )
            raise SIGTERMException(128 + signal.SIGTERM)


class SeedPerRank(Callback):
    """Under DDP every rank runs seed_everything with the same seed, so the default generators, which draw the
    dropout masks (on CUDA through nn.Dropout, on CPU through models/cnn.py's Dropout), would draw the same masks
    on every rank. At the start of fit, rank r > 0 reseeds them with its own seed (data/augment.py rank_seed)."""

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.global_rank > 0:
            torch.manual_seed(rank_seed(torch.initial_seed(), trainer.global_rank))  # CPU and every CUDA device


def bf16_advice(precision: str, capability: tuple[int, int]) -> str | None:
    """A line for bf16 on a GPU of compute capability `capability` that has no bf16 units (before Ampere, 8.0):
    torch emulates it there, slower than fp32, without a word."""
    if not str(precision).startswith("bf16") or capability >= (8, 0):
        return None
    major, minor = capability
    return (
        f"--trainer.precision {precision} on a GPU of compute capability {major}.{minor}: bf16 is emulated before "
        "8.0 (V100, T4), slower than fp32; --trainer.precision 16-mixed uses its fp16 units"
    )


def cpu_precision(precision: str | int | None, capability: str) -> tuple[str | int | None, str | None]:
    """The precision to run with on a CPU of torch's `capability` (torch.backends.cpu.get_cpu_capability()), and
    a line when it is not the one asked for. bf16 autocast pays with AVX-512 (the default config's bf16 trains
    2.4x faster than fp32 on an Intel Xeon with AVX-512 bf16); below it oneDNN has no bf16 kernels and torch
    falls back to slow generic code (docs/benchmarks.md, "bf16 on a CPU without AVX-512"), so fp32 runs instead."""
    if not str(precision).startswith("bf16") or capability.startswith("AVX512"):
        return precision, None
    return "32-true", (
        f"--trainer.precision {precision}: this CPU has no AVX-512 (torch's capability: {capability}), where bf16 "
        "is emulated many times slower than fp32; running in 32-true"
    )


class PrecisionAdvice(Callback):
    """Says once, on rank 0, as the command's work begins (after every check that could still stop it), what
    the chosen precision costs here: the CPU fallback that `cpu_precision` chose, or the bf16 advice for the GPU
    in use."""

    def __init__(self, cpu_notice: str | None = None) -> None:
        self.cpu_notice = cpu_notice

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        if not trainer.is_global_zero:
            return
        device = trainer.strategy.root_device
        advice = self.cpu_notice
        if device.type == "cuda":
            advice = bf16_advice(trainer.precision, torch.cuda.get_device_capability(device))
        if advice:
            NOTICES.warning(advice)


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


def fixed_callbacks(checkpoint_dir: str, cpu_precision_notice: str | None) -> list[Callback]:
    """What every Trainer of the command has, not a config option: the interrupt checkpoint (beside the last
    one, where `--ckpt_path last` looks), failures and SIGTERM under DDP, dropout seeds per rank, what the
    precision costs here."""
    return [
        InterruptCheckpoint(checkpoint_dir),
        EndEveryRank(),
        StopOnSigterm(),
        SeedPerRank(),
        PrecisionAdvice(cpu_precision_notice),
    ]


def weight_averaging(decay: float | None) -> list[Callback]:
    """`--ema_decay D`: Lightning's EMAWeightAveraging, an exponential moving average of the weights and the
    batch-norm statistics, updated after every optimiser step. Validation runs on the average, and every checkpoint
    holds it as its `state_dict` (the weights being trained go beside it, as `current_model_state`, for
    `--ckpt_path last` to resume both), so what is tested, exported and served is the average."""
    return [] if decay is None else [EMAWeightAveraging(decay=decay)]
