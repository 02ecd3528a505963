"""Lightning's fit loop against a bare PyTorch training loop: the same network, optimizer, batches and
augmentation, in one process, taking turns.

    LIGHTNING_DIGITS_DATA=../shared/data/mnist .venv/bin/python bench/fit_overhead.py [--rounds 3] [--steps 150]
        [-c configs/fast.yaml] [--device cuda] [-- more fit flags]

- bare loop: the data module's loader and batch hook, then autocast forward, cross-entropy, zero_grad,
  backward, optimizer step: nothing else (the reference);
- `lightning-digits fit`: the real command's fit (its callbacks, loggers, metrics and progress bar, built by
  the same CLI in this process), timed by a callback over the same steps;
- plain Trainer: Lightning's loop with no logger, progress bar, checkpointing or callbacks of ours, to tell
  the loop's own cost from that of what the command adds.
Both Lightning rows time the steps after the first `--warmup` ones, from the end of one step to the end of
the last (fetching, the batch hook, the step and every hook in between), so set-up and validation are not
counted. Prints the median ms per step of each row over the rounds, its overhead (the ratio of medians, and
the median of each round's ratio to that round's bare loop) and one JSON line. `--device` puts all three rows on
one device (default the CPU), and each waits for it before reading a clock.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from functools import partial

import lightning.pytorch as pl
import torch
import torch.nn.functional as F
from devices import accelerator, add_device_flag, synchronize

from lightning_digits.training.lightning_commands import build_without_trainer, run_lightning


class StepClock(pl.Callback):
    """Seconds per step from the end of step `warmup - 1` to the end of step `steps - 1`, waiting for the device
    at those two points only."""

    def __init__(self, warmup: int, steps: int, device: torch.device) -> None:
        self.warmup, self.last, self.device, self.start, self.end = warmup, steps, device, 0.0, 0.0
        self.steps = steps - warmup

    def on_train_batch_end(self, trainer: pl.Trainer, *args: object) -> None:
        if trainer.global_step in (self.warmup, self.last):  # global_step counts optimizer steps already taken
            synchronize(self.device)
            if trainer.global_step == self.warmup:
                self.start = time.perf_counter()
            else:
                self.end = time.perf_counter()

    @property
    def seconds_per_step(self) -> float:
        return (self.end - self.start) / self.steps


def _fit_flags(config: list[str], steps: int, extra: list[str], folder: str, device: torch.device) -> list[str]:
    # One epoch of exactly `steps` batches; its validation comes after the timed steps.
    return [
        *[f"--config={c}" for c in config],
        f"--artifacts_dir={folder}",
        "--trainer.max_epochs=1",
        f"--trainer.limit_train_batches={steps}",
        "--trainer.num_sanity_val_steps=0",
        f"--trainer.accelerator={accelerator(device)}",
        "--trainer.devices=1",
        *extra,
    ]


def command_fit(flags: list[str], steps: int, warmup: int, device: torch.device) -> float:
    clock = StepClock(warmup, steps, device)
    run_lightning(["fit", *flags], callbacks=[clock])
    return clock.seconds_per_step


class _Parts:
    """The model and data module (set up for fit) that `fit` builds from these flags, and its precision."""

    def __init__(self, flags: list[str]) -> None:
        cli = build_without_trainer(["fit", *flags])
        self.model, self.data, self.precision = cli.model, cli.datamodule, str(cli.config.fit.trainer.precision)
        self.data.setup("fit")


def plain_trainer_fit(flags: list[str], steps: int, warmup: int, folder: str, device: torch.device) -> float:
    built = _Parts(flags)
    clock = StepClock(warmup, steps, device)
    trainer = pl.Trainer(
        max_epochs=1,
        limit_train_batches=steps,
        num_sanity_val_steps=0,
        precision=built.precision,
        logger=False,
        enable_progress_bar=False,
        enable_checkpointing=False,
        enable_model_summary=False,
        callbacks=[clock],
        default_root_dir=folder,
        accelerator=accelerator(device),
        devices=1,
    )
    trainer.fit(built.model, datamodule=built.data)
    return clock.seconds_per_step


def bare_loop(flags: list[str], steps: int, warmup: int, device: torch.device) -> float:
    built = _Parts(flags)
    model, data = built.model.to(device), built.data
    model.trainer = data.trainer = _Training(steps)  # type: ignore[assignment]
    optimizer = model.configure_optimizers()
    optimizer = optimizer["optimizer"] if isinstance(optimizer, dict) else optimizer
    bf16 = built.precision.startswith("bf16")
    batches = iter(data.train_dataloader())
    model.train()
    for step in range(steps):
        if step == warmup:
            synchronize(device)
            start = time.perf_counter()
        batch = [tensor.to(device) for tensor in next(batches)]  # as Lightning's transfer does
        images, labels = data.on_after_batch_transfer(batch, 0)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            loss = F.cross_entropy(model(images), labels, label_smoothing=model.hparams.label_smoothing)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    synchronize(device)
    return (time.perf_counter() - start) / (steps - warmup)


class _Training:
    """Stands in for a Trainer: the batch hook augments while its trainer is training, and the one-cycle
    schedule asks it for the run's length."""

    training, global_rank, world_size = True, 0, 1

    def __init__(self, steps: int) -> None:
        self.estimated_stepping_batches = steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("-c", "--config", action="append", default=[], help="config file(s) layered on the default")
    parser.add_argument("--rounds", type=int, default=6, help="rounds of the three rows, each first in turn")
    parser.add_argument("--steps", type=int, default=150, help="training steps per run")
    parser.add_argument("--warmup", type=int, default=20, help="steps not timed at the start of each run")
    parser.add_argument("extra", nargs="*", help="more `fit` flags, after --")
    add_device_flag(parser)
    args = parser.parse_args()
    samples: dict[str, list[float]] = {"bare loop": [], "lightning-digits fit": [], "plain Trainer": []}
    for round_ in range(args.rounds):
        with tempfile.TemporaryDirectory() as folder:
            flags = _fit_flags(args.config, args.steps, args.extra, folder, args.device)
            rows = {
                "bare loop": partial(bare_loop, flags, args.steps, args.warmup, args.device),
                "lightning-digits fit": partial(command_fit, flags, args.steps, args.warmup, args.device),
                "plain Trainer": partial(plain_trainer_fit, flags, args.steps, args.warmup, folder, args.device),
            }
            names = list(rows)
            for name in names[round_ % 3 :] + names[: round_ % 3]:  # each row goes first in turn
                samples[name].append(rows[name]())
        print(f"round {round_ + 1}: " + ", ".join(f"{k} {1000 * v[-1]:.1f} ms" for k, v in samples.items()), flush=True)
    medians = {name: statistics.median(values) for name, values in samples.items()}
    # The same round's rows ran back to back: their ratio is steadier than a ratio of medians across rounds.
    paired = {
        name: statistics.median(v / b for v, b in zip(values, samples["bare loop"], strict=True)) - 1
        for name, values in samples.items()
    }
    print(f"{'row':22} {'ms/step':>8} {'min':>7} {'max':>7} {'vs bare loop':>13} {'per round':>10}")
    for name, values in samples.items():
        print(
            f"{name:22} {1000 * medians[name]:8.2f} {1000 * min(values):7.2f} {1000 * max(values):7.2f} "
            f"{100 * (medians[name] / medians['bare loop'] - 1):12.1f}% {100 * paired[name]:9.1f}%"
        )
    print(
        json.dumps(
            {
                "config": args.config,
                "extra": args.extra,
                "steps": args.steps,
                "warmup": args.warmup,
                "device": str(args.device),
                "ms_per_step": {k: [1000 * v for v in vs] for k, vs in samples.items()},
                "overhead": {k: medians[k] / medians["bare loop"] - 1 for k in samples},
                "overhead_per_round": paired,
            }
        )
    )


if __name__ == "__main__":
    main()
