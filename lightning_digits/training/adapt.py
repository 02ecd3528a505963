"""`lightning-digits adapt DIGITS_DIR [--checkpoint CKPT] [--output_dir DIR] [fit options]`: teach a trained model
one person's handwriting in about a minute. A `fit` (DigitsCLI: the run lock, atomic checkpoints, SIGTERM, the
loggers) that starts from the checkpoint's weights (a new run, not a resume: a fresh optimiser and schedule), with
the network's shape and the validation split taken from the checkpoint, the short schedule of configs/adapt.yaml,
and the person's digits mixed into MNIST's training images (`--data.extra_dir`, so that the model does not forget
MNIST). Part of each class of the person's digits is held out; after the fit, one table gives the accuracy on
those and on MNIST's test set before and after, and the ONNX file is exported beside the checkpoint with its
parity check. The figures also go to adapt.json in the output folder."""

from __future__ import annotations

import json
import time
import warnings
from dataclasses import fields
from pathlib import Path

import numpy as np
from lightning.pytorch.cli import LightningArgumentParser

from lightning_digits import artifacts, presets
from lightning_digits.atomic import write_text
from lightning_digits.checkpoints import LoadedCheckpoint, load_checkpoint
from lightning_digits.data.extra import ExtraDigits, held_out, read_extra_dir
from lightning_digits.data.sources import DATASETS, load_split
from lightning_digits.errors import UserError
from lightning_digits.evaluation.report import test_pass
from lightning_digits.evaluation.report_files import PARITY_IMAGES, float_images
from lightning_digits.export import export_onnx
from lightning_digits.models.cnn import Architecture
from lightning_digits.training.lightning_commands import DigitsCLI, run_lightning

PRESET = "adapt"
DEFAULT_CHECKPOINT = f"{artifacts.DEFAULT_DIR}/{artifacts.BEST_CHECKPOINT}"
DEFAULT_DIR = "artifacts_adapted"
REPORT = "adapt.json"
DIGITS_DATASET = "mnist"  # a person's handwritten digits extend MNIST, not another data set


def check_digits(digits: ExtraDigits, folder: str, holdout: float, num_classes: int = 10) -> None:
    """Every class is there, with enough digits to learn from (and, when holding out, one to test on)."""
    counts = np.bincount(digits.labels.numpy(), minlength=num_classes)
    fewest = 2 if holdout > 0 else 1
    missing = [str(c) for c in range(num_classes) if counts[c] == 0]
    if missing:
        raise UserError(
            f"{folder} has no digits of class {', '.join(missing)}; adapt needs every class 0-9 (a "
            f"sub-folder per class with at least {fewest} images each)"
        )
    few = [f"{c} ({counts[c]})" for c in range(num_classes) if counts[c] < fewest]
    if few:
        raise UserError(
            f"{folder}: too few digits of class {', '.join(few)}: adapt learns from some of each class "
            f"and tests on the others, so each needs at least {fewest}; add more, or give "
            "--data.extra_val_fraction 0 to hold none out"
        )


def _check_checkpoint(loaded: LoadedCheckpoint, path: str) -> None:
    if loaded.dataset != DIGITS_DATASET:
        raise UserError(
            f"{path} was trained on {loaded.dataset}; adapt teaches handwritten digits to a model of "
            f"{DIGITS_DATASET} (give one with --checkpoint)"
        )


class AdaptCLI(DigitsCLI):
    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        super().add_arguments_to_parser(parser)
        # Its usage line says `fit` (the subcommand Lightning runs); this says what was typed.
        parser.description = (
            "lightning-digits adapt DIGITS_DIR [--checkpoint CKPT] [--output_dir DIR] [fit options]: a short fit "
            f"(configs/{PRESET}.yaml) from the checkpoint's weights on MNIST mixed with your digits (DIGITS_DIR/0/ "
            "... 9/), then the accuracy on your held-out digits and MNIST test before and after, and the ONNX file"
        )
        parser.add_argument(
            "--digits",
            type=str | None,
            default=None,
            help="Your digits: a folder with a sub-folder of images per class, 0 to 9 (given first, "
            "without the flag: `adapt my_digits/`).",
        )
        # `--checkpoint` is taken by the fit's checkpoint callback (--checkpoint.monitor ...): fit_args renames it.
        parser.add_argument(
            "--start",
            type=str,
            default=DEFAULT_CHECKPOINT,
            help="The model to start from, given as --checkpoint CKPT; its network's shape and validation split "
            "are kept.",
        )

    def before_instantiate_classes(self) -> None:
        """The digits and the checkpoint are read and checked before anything is written; the network's shape and
        the validation split come from the checkpoint (a split of its own would test on images it learnt)."""
        config = self.config[self.subcommand]
        if not config.digits:
            raise UserError(
                "adapt needs your digits: a folder with a sub-folder of images per class, e.g. "
                "`lightning-digits adapt my_digits/` (collect them with `demo --collect_dir`)"
            )
        self.started = time.time()
        self.digits = read_extra_dir(config.digits)
        check_digits(self.digits, config.digits, config.data.extra_val_fraction)
        self.start = load_checkpoint(config.start)
        _check_checkpoint(self.start, config.start)
        for field in fields(Architecture):
            if field.name in self.start.model_hparams:
                config.model[field.name] = self.start.model_hparams[field.name]
        for key in ("val_size", "split_seed"):
            if key in self.start.data_hparams:
                config.data[key] = self.start.data_hparams[key]
        config.data.extra_dir = config.digits
        super().before_instantiate_classes()

    def instantiate_classes(self) -> None:
        super().instantiate_classes()
        self.model.net.load_state_dict(self.start.net.state_dict())

    def after_fit(self) -> None:
        """The before/after table, the ONNX export and adapt.json (under the fit's run lock, still held)."""
        if self.trainer.interrupted:
            return
        config = self.config[self.subcommand]
        out = Path(config.artifacts_dir)
        adapted = load_checkpoint(self.trainer.checkpoint_callback.best_model_path or out / artifacts.BEST_CHECKPOINT)
        mask = held_out(self.digits.labels, config.data.extra_val_fraction, config.data.split_seed).numpy()
        mine = self.digits.images.numpy()[mask], self.digits.labels.numpy()[mask]
        test = load_split(DIGITS_DATASET, config.data.data_dir, "test")
        figures = {
            name: {
                "before": _accuracy(self.start, images, labels),
                "after": _accuracy(adapted, images, labels),
                "images": len(labels),
            }
            for name, (images, labels) in (("your_held_out", mine), ("mnist_test", test))
            if len(labels)
        }
        onnx_path = out / artifacts.ONNX_MODEL
        export_onnx(
            adapted.net,
            onnx_path,
            DATASETS[DIGITS_DATASET].class_names,
            float_images(test[0][:PARITY_IMAGES]),
            {"dataset": DIGITS_DATASET, "adapted_from": config.start},
        )
        record = {
            "digits": config.digits,
            "checkpoint": config.start,
            "seed": config.seed_everything,
            "learned": int((~mask).sum()),
            "held_out": int(mask.sum()),
            "steps": self.trainer.global_step,
            # the fit's last validation: MNIST's validation split, and the held-out digits when there are any
            "validation": float(self.trainer.callback_metrics["val_acc"]),
            **figures,
            "seconds": round(time.time() - self.started, 1),
            "output": {"checkpoint": str(out / artifacts.BEST_CHECKPOINT), "onnx": str(onnx_path)},
        }
        write_text(out / REPORT, json.dumps(record, indent=2) + "\n")
        print(report_table(record), flush=True)


def _accuracy(loaded: LoadedCheckpoint, images: np.ndarray, labels: np.ndarray) -> float:
    return float(test_pass(loaded.net, images, labels).accuracy)


def report_table(record: dict) -> str:
    """What adapt prints: the two accuracies before and after, the time, and where the files went."""
    rows = [f"{'':<22} {'before':>7} {'after':>7}"]
    names = {"your_held_out": "your held-out digits", "mnist_test": "MNIST test"}
    for key, name in names.items():
        if key in record:
            row = record[key]
            rows.append(f"{name:<22} {row['before']:7.4f} {row['after']:7.4f}   ({row['images']:,} images)")
    if "your_held_out" not in record:
        rows.append("your held-out digits: none held out (--data.extra_val_fraction 0)")
    return "\n".join(
        [
            f"adapted {record['checkpoint']} to {record['digits']}: {record['learned']} digits learnt, "
            f"{record['held_out']} held out, {record['steps']} steps",
            *rows,
            f"took {record['seconds']:.1f} s; wrote {record['output']['checkpoint']} and {record['output']['onnx']}",
        ]
    )


RENAMED = {"--output_dir": "--artifacts_dir", "--checkpoint": "--start"}  # adapt's option -> the fit's


def _fit_option(arg: str) -> str:
    name, equals, value = arg.partition("=")
    return RENAMED.get(name, name) + equals + value


def fit_args(args: list[str]) -> list[str]:
    """`adapt DIR [options]` -> `fit --config=<adapt> --digits=DIR [options] --artifacts_dir=...`: the adapt preset
    under whatever the user layers on it, `--output_dir` as the fit's artifacts folder (artifacts_adapted/ unless
    given)."""
    digits = [args.pop(0)] if args and not args[0].startswith("-") else []
    args = [_fit_option(arg) for arg in args]
    folder = [] if any(arg.startswith("--artifacts_dir") for arg in args) else [f"--artifacts_dir={DEFAULT_DIR}"]
    return ["fit", f"--config={presets.preset_path(PRESET)}", *(f"--digits={d}" for d in digits), *args, *folder]


def run_adapt(args: list[str]) -> None:
    """What `lightning-digits adapt ARGS` runs (ARGS: what follows the command's name)."""
    warnings.filterwarnings("ignore", ".*args parameter is intended to run from within Python.*")
    run_lightning(fit_args(list(args)), cli_class=AdaptCLI)
