"""Every use of Lightning's private or undocumented API, in one place, each with the reason for it: upgrading
Lightning means auditing this file alone (tests/test_layout.py fails when such a name is used anywhere else).
pyproject.toml pins the version these were checked against; with another one installed, importing this module
ends in one line that names it, before any run could fail halfway in a way nobody tested."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import lightning
import lightning.pytorch as pl

# Checked against these releases (pyproject.toml pins the first); each name below was read in their source.
SUPPORTED = ("2.6.6",)


def check_version(installed: str = lightning.__version__) -> None:
    from lightning_digits.errors import UserError

    if installed not in SUPPORTED:
        raise UserError(
            f"lightning-digits runs on lightning {' or '.join(SUPPORTED)}, not the installed {installed}: it relies "
            "on internals that other releases may change (lightning_digits/training/lightning_internals.py); "
            f"pip install lightning=={SUPPORTED[0]}"
        )


check_version()

# Imported only after the check: another release may not have them.
from lightning.pytorch.overrides.distributed import UnrepeatedDistributedSampler  # noqa: E402
from lightning.pytorch.strategies.launchers import _SubprocessScriptLauncher  # noqa: E402
from lightning.pytorch.trainer.connectors.signal_connector import _get_sigkill_signal  # noqa: E402

__all__ = [
    "UnrepeatedDistributedSampler",  # a sampler that never pads a shard: the DDP test figure counts each image once
    "check_version",
    "kill_other_ranks",
    "save_without_barrier",
    "saved_with_weight_averaging",
]

# Relied on by behaviour rather than by name (read again on an upgrade): callbacks.StopOnSigterm installs its SIGTERM
# handler in on_sanity_check_start/on_train_start, after Trainer._run has installed Lightning's own.

# The key under which EMAWeightAveraging (2.6) keeps the weights being trained, beside the average that it saves as
# the checkpoint's state_dict. Undocumented: a resume without --ema_decay is refused by looking for it.
_EMA_TRAINING_WEIGHTS = "current_model_state"


def kill_other_ranks(trainer: pl.Trainer) -> None:
    """SIGKILL the other DDP processes, as Lightning's launcher does on Ctrl-C, from rank 0 (whose launcher holds
    them; under torchrun or SLURM their agent does it and this does nothing). No public API ends them."""
    launcher = trainer.strategy.launcher
    if isinstance(launcher, _SubprocessScriptLauncher):
        launcher.kill(_get_sigkill_signal())


def save_without_barrier(trainer: pl.Trainer, path: Path) -> None:
    """`trainer.save_checkpoint` without its closing barrier: under DDP a rank that failed never reaches the barrier,
    and the others would wait in it for ever. The dump itself is collective-free."""
    checkpoint = trainer._checkpoint_connector.dump_checkpoint(weights_only=False)
    trainer.strategy.save_checkpoint(checkpoint, path)


def saved_with_weight_averaging(checkpoint: Mapping) -> bool:
    """Whether a checkpoint was saved by a fit with --ema_decay (it holds the trained weights beside the average)."""
    return _EMA_TRAINING_WEIGHTS in checkpoint
