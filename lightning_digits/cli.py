"""The one console command, `lightning-digits`: it reads the command's name first and then imports only what that
command runs, so that `--help` loads neither torch nor Lightning, `serve` and `demo` never load torch, and the
Lightning commands (the training/ package, the only one that imports Lightning besides models/lit.py and
data/datamodule.py) load nothing of serving, tuning or the reports. Mistakes a user can fix end as one line on
stderr and exit code 2 (`--debug` or LIGHTNING_DIGITS_DEBUG=1 shows the traceback). Knows nothing of what the
commands do.
"""

from __future__ import annotations

import importlib
import json
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from lightning_digits import presets, run_lock
from lightning_digits.atomic import disk_fault
from lightning_digits.errors import UserError, exit_on_user_error, show_notices_on_stderr

PROG = "lightning-digits"
# training/lightning_commands.py; training/distill.py and training/adapt.py (each a fit of its own making)
LIGHTNING_COMMANDS = ("fit", "validate", "test", "predict", "distill", "adapt")
# Commands that need no Trainer, as "module:name", imported only when chosen: plain functions whose signatures are
# their options, or a dataclass of options that runs the command when called (tune's options are also the study's).
PLAIN_COMMANDS = {
    "evaluate": "lightning_digits.evaluation.commands:evaluate",
    "export": "lightning_digits.evaluation.commands:export",
    "baselines": "lightning_digits.evaluation.commands:baselines",
    "grid": "lightning_digits.evaluation.commands:grid",
    "ensemble": "lightning_digits.evaluation.ensemble:ensemble",
    "demo": "lightning_digits.demo:demo",
    "serve": "lightning_digits.serving.server:serve",
    "tune": "lightning_digits.tuning.command:TuneOptions",
}
COMMAND_PRESETS = ("tune", "adapt")  # presets that their commands apply, not for `-c`
LIST_POSITIONAL = ("ensemble",)  # commands whose first argument is a list of items typed one by one
HELP = f"""usage: {PROG} [-h] COMMAND [OPTIONS]

MNIST digit classification with PyTorch Lightning.

Training and inference: fit, validate, test, predict (Lightning's CLI). The mnist preset applies by default;
`-c NAME` layers a shipped preset over it, `-c path/to.yaml` a file of your own.
Presets: {{presets}}.
Reports from a checkpoint: evaluate (all of them), export (ONNX), baselines, grid (inference grid);
ensemble (several checkpoints averaged as one model). --tta on evaluate/export/ensemble, --model.tta on
test/predict: test-time augmentation. fit --ema_decay D: an average of the weights.
distill TEACHER... (-c fast by default): one network trained on an ensemble's probabilities and the labels.
adapt DIGITS_DIR: a trained model learns your own handwriting in about a minute (a short fit from its weights on
MNIST mixed with your digits, DIGITS_DIR/0/ ... 9/), with accuracy before and after, and its ONNX file.
In the browser: demo (draw a digit; serves web/ and the ONNX model on localhost; --collect_dir DIR saves the
digits you label). Over HTTP: serve (POST /predict with image uploads, a raw image body or base64 JSON; /docs
for the API; --collect_dir DIR: POST /samples stores labelled digits; SIGHUP reloads the model).
Hyperparameter search: tune -c tune (Optuna; each trial is a fit with overrides). MLflow: fit -c mlflow.
Run `{PROG} COMMAND --help` for the options of each; --debug shows the traceback of an error."""


def command_function(command: str) -> Callable[..., Any]:
    """The function (or dataclass of options) that a plain command parses its arguments into, imported now."""
    module, name = PLAIN_COMMANDS[command].split(":")
    return getattr(importlib.import_module(module), name)


def refuse_multiprocess(command: str) -> None:
    """The commands beside Lightning's run in one process: under torchrun/srun every rank would write the same
    files (or listen on the same port)."""
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        raise UserError(f"`{command}` runs in one process; start it without torchrun/srun (WORLD_SIZE > 1 here)")


def _one_list_positional(args: list[str]) -> list[str]:
    """`a.ckpt b.ckpt --tta shifts` -> `["a.ckpt", "b.ckpt"] --tta shifts`: jsonargparse reads a list-typed
    positional argument as one JSON list, where a shell user types the items one by one."""
    items, rest, expects_value = [], [], False
    for arg in args:
        if expects_value or arg.startswith("-"):
            rest.append(arg)
            expects_value = arg.startswith("--") and "=" not in arg and arg not in ("--help", "--print_config")
            expects_value = expects_value or arg == "-c"
        else:
            items.append(arg)
    return ([json.dumps(items)] if items else []) + rest


def _run_plain(command: str, args: list[str]) -> None:
    from jsonargparse import auto_cli

    refuse_multiprocess(command)
    command_args = _one_list_positional(args) if command in LIST_POSITIONAL else args
    command_args = ["--config" if arg == "-c" else arg for arg in command_args]  # jsonargparse's spelling
    if command == "tune":
        from lightning_digits.tuning.command import refuse_replaced_fit_flags

        refuse_replaced_fit_flags(command_args)
    with run_lock.command_scope():  # the folders a command locks stay locked until it returns
        component = command_function(command)
        parsed = auto_cli(component, args=command_args, prog=f"{PROG} {command}", exit_on_error=False)
        if isinstance(component, type):  # a function has run already; options run now
            parsed()


def _run_lightning(args: list[str], read_argv: bool) -> None:
    """`read_argv`: let Lightning read sys.argv itself (DDP's launcher re-runs it for each rank); `distill` and
    `adapt` always pass their own arguments, those of the fit they make of them."""
    from lightning.fabric.utilities.exceptions import MisconfigurationException

    try:
        if args[0] == "distill":
            from lightning_digits.training.distill import run_distill

            run_distill(args[1:])
        elif args[0] == "adapt":
            from lightning_digits.training.adapt import run_adapt

            run_adapt(args[1:])
        else:
            from lightning_digits.training.lightning_commands import run_lightning

            run_lightning(None if read_argv else args)
    except MisconfigurationException as exc:  # Lightning's word for a setting it refuses
        raise UserError(f"Lightning refuses the settings: {exc}") from exc


@contextmanager
def disk_faults() -> Iterator[None]:
    """A full disk under a file that Lightning writes itself (its CSV log, config.yaml) as one line as well."""
    try:
        yield
    except OSError as exc:
        fault = disk_fault(exc)
        if fault is None:
            raise
        raise fault from exc


def main(argv: list[str] | None = None) -> None:
    raw = sys.argv[1:] if argv is None else argv
    debug = "--debug" in raw or os.environ.get("LIGHTNING_DIGITS_DEBUG", "") not in ("", "0")
    args = [arg for arg in raw if arg != "--debug"]
    if not args or args[0] in ("-h", "--help"):
        print(HELP.format(presets=", ".join(name for name in presets.preset_names() if name not in COMMAND_PRESETS)))
        return
    command = args[0]
    show_notices_on_stderr()
    # Read by jsonargparse when it warns: LightningCLI 2.6 triggers three deprecation notices per run, none of them
    # about anything a user typed.
    os.environ.setdefault("JSONARGPARSE_DEPRECATION_WARNINGS", "off")
    from jsonargparse import ArgumentError  # the parser's own errors (unknown option, wrong type)

    with exit_on_user_error(PROG, (ArgumentError,), see=f"{PROG} {command} --help", debug=debug), disk_faults():
        args = presets.expand_config_args(args)
        if command in PLAIN_COMMANDS:
            _run_plain(command, args[1:])
        elif command in LIGHTNING_COMMANDS:
            if argv is None:
                # Lightning reads sys.argv itself when given args=None, and DDP's launcher re-runs it for each rank.
                sys.argv[1:] = args
            _run_lightning(args, read_argv=argv is None)
        else:
            known = ", ".join((*LIGHTNING_COMMANDS, *PLAIN_COMMANDS))
            raise UserError(f"{command!r} is not a command; choose one of {known} (`{PROG} --help` says more)")
