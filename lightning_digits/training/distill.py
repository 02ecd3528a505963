"""`lightning-digits distill TEACHER [TEACHER ...] [fit options]`: a `fit` whose network also learns an ensemble's
probabilities (models/teacher.py). The teacher is one or more checkpoints or folders of runs, averaged as
`ensemble` averages them; the student is any preset (`-c fast` unless a config is given) and an ordinary
LitDigits: its checkpoints, ONNX file, `serve`, the browser page and int8 export know nothing of the teacher.
Everything else is `fit`'s (DigitsCLI: the locks, atomic checkpoints, resume, EMA, artifacts)."""

from __future__ import annotations

import json
import warnings

import torch
from lightning.pytorch.cli import LightningArgumentParser

from lightning_digits import presets
from lightning_digits.checkpoints import LoadedCheckpoint, load_members
from lightning_digits.errors import UserError, check_ranges, say
from lightning_digits.models.averaging import Averaged
from lightning_digits.models.teacher import Teacher
from lightning_digits.training.lightning_commands import DigitsCLI, run_lightning

DEFAULT_PRESET = "fast"
DEFAULT_DIR = "artifacts_distill"  # not the preset's folder: a plain fit of the same preset keeps its own


class DistillCLI(DigitsCLI):
    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        super().add_arguments_to_parser(parser)
        # Its usage line says `fit` (the subcommand Lightning runs); this says what was typed.
        parser.description = (
            f"lightning-digits distill TEACHER [TEACHER ...] [options]: a fit (the {DEFAULT_PRESET} "
            f"preset and {DEFAULT_DIR}/ unless a config and --artifacts_dir are given) whose network "
            "also learns the teacher's averaged probabilities"
        )
        parser.add_argument(
            "--teacher",
            type=list[str],
            default=[],
            help="The teacher: checkpoints, or folders searched for digits_cnn.ckpt (given first, "
            "without the flag: `distill runs/a runs/b -c fast`).",
        )
        parser.add_argument(
            "--temperature",
            type=float,
            default=3.0,
            help="Soften the teacher's averaged probabilities (p ** (1/T), renormalised); 1: as they are.",
        )
        parser.add_argument(
            "--teacher_weight",
            type=float,
            default=0.8,
            help="Share of the teacher's term in the loss (the labels' share is the rest).",
        )

    def before_instantiate_classes(self) -> None:
        """The teacher is read and checked before anything is written: a bad one ends in one line."""
        config = self.config[self.subcommand]
        check_ranges(
            "--",
            {
                "temperature": (config.temperature, config.temperature > 0, "above 0"),
                "teacher_weight": (config.teacher_weight, 0 <= config.teacher_weight <= 1, "in [0, 1]"),
            },
        )
        if not config.teacher:
            raise UserError(
                "distill needs a teacher: one or more checkpoints or folders of runs, e.g. "
                "`lightning-digits distill runs/ -c fast`"
            )
        # Building the teacher's networks draws their (overwritten) initial weights: not from the seeded generator,
        # so that a student starts where a plain fit of the same seed starts and differs from it by the teacher only.
        with torch.random.fork_rng(devices=[]):
            paths, members = load_members(config.teacher)
        _check_same_data(members, config.data)
        say(
            f"teacher: {len(members)} networks ({', '.join(map(str, paths))}), temperature {config.temperature:g}, "
            f"weight {config.teacher_weight:g}"
        )
        self.teacher_nets = [member.net for member in members]
        super().before_instantiate_classes()

    def instantiate_classes(self) -> None:
        super().instantiate_classes()
        config = self.config[self.subcommand]
        self.model.teacher = Teacher(Averaged(self.teacher_nets), config.temperature, config.teacher_weight)


def _check_same_data(members: list[LoadedCheckpoint], data) -> None:
    """The student learns the teacher's classes, and its validation figures must stay honest: every member must
    have held out the same validation images as the student (same split), or it learnt some of them."""
    dataset = members[0].dataset
    if dataset != data.dataset:
        raise UserError(
            f"the teacher was trained on {dataset}, the student on {data.dataset} (--data.dataset); "
            "distill within one data set"
        )
    for member in members:
        seen = member.data_hparams
        split = (seen.get("split_seed", 42), seen.get("val_size", 5000))
        if split != (data.split_seed, data.val_size):
            raise UserError(
                f"a teacher network held out other validation images (--data.split_seed {split[0]}, --data.val_size "
                f"{split[1]}) than the student ({data.split_seed}, {data.val_size}): it has learnt some of the "
                "student's validation images; give the student the teacher's split"
            )


def fit_args(args: list[str]) -> list[str]:
    """`distill A B [options]` -> `fit --config=<fast> --teacher=["A", "B"] [options] --artifacts_dir=...`: the
    teachers come first; the fast preset when no config is given, artifacts_distill/ when no folder is."""
    teachers = []
    while args and not args[0].startswith("-"):
        teachers.append(args.pop(0))
    given_config = any(arg in presets.CONFIG_FLAGS or arg.startswith("--config=") for arg in args)
    preset = [] if given_config else [f"--config={presets.preset_path(DEFAULT_PRESET)}"]
    folder = [] if any(arg.startswith("--artifacts_dir") for arg in args) else [f"--artifacts_dir={DEFAULT_DIR}"]
    return ["fit", *preset, *([f"--teacher={json.dumps(teachers)}"] if teachers else []), *args, *folder]


def run_distill(args: list[str]) -> None:
    """What `lightning-digits distill ARGS` runs (ARGS: what follows the command's name)."""
    # sys.argv keeps the `distill` command line for DDP's launcher to re-run on each rank; that the fit's own
    # arguments differ from it is the point, not the mistake LightningCLI warns of.
    warnings.filterwarnings("ignore", ".*args parameter is intended to run from within Python.*")
    run_lightning(fit_args(list(args)), cli_class=DistillCLI)
