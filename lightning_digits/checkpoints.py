"""Loading our checkpoints outside the Trainer (evaluate, export, grid), safely, and the members of an ensemble
or a distillation's teacher (checkpoints, or folders of runs).

Only tensors and plain values are read (`torch.load(weights_only=True)`): a checkpoint file cannot run code
on load. The network is rebuilt from the hyperparameters stored in the checkpoint, so no flags need repeating.
"""

from __future__ import annotations

import pickle
import zipfile
from dataclasses import dataclass
from pathlib import Path

import torch

from lightning_digits import artifacts, run_lock
from lightning_digits.errors import UserError
from lightning_digits.models.cnn import Architecture, DigitsCNN


@dataclass
class LoadedCheckpoint:
    net: DigitsCNN  # in eval mode, on the CPU
    model_hparams: dict
    data_hparams: dict
    epoch: int  # zero-based epoch at which it was saved
    callbacks: dict

    @property
    def dataset(self) -> str:
        return self.data_hparams.get("dataset", "mnist")

    @property
    def training_seconds(self) -> float | None:
        """Wall time of the fit loop up to this checkpoint (validation included), from the Timer callback's
        state; None for a checkpoint saved without it."""
        elapsed = self.callbacks.get("Timer", {}).get("time_elapsed", {})
        return float(elapsed["train"]) if "train" in elapsed else None


def load_checkpoint(path: Path | str, flag: str = "--checkpoint") -> LoadedCheckpoint:
    """`flag`: the option the user gave the path with, named in the error when there is no such file."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"checkpoint {path} does not exist; train first (`lightning-digits fit`) or pass {flag}")
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        raise UserError(
            f"{path} is not a readable PyTorch checkpoint: not a checkpoint at all, or one holding objects other "
            "than tensors and plain values (not loaded: that could run code)"
        ) from exc
    except (zipfile.BadZipFile, RuntimeError, EOFError, OSError) as exc:
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UserError(f"{path} is not a readable PyTorch checkpoint ({first_line})") from exc
    hparams = checkpoint.get("hyper_parameters") if isinstance(checkpoint, dict) else None
    state = checkpoint.get("state_dict") if isinstance(checkpoint, dict) else None
    if not isinstance(hparams, dict) or not isinstance(state, dict) or "net.mean" not in state:
        raise UserError(f"{path} is not a lightning-digits checkpoint (no DigitsCNN weights in it)")
    try:
        net = DigitsCNN(Architecture.from_hparams(hparams))
    except (TypeError, ValueError, UserError) as exc:  # UserError: a value out of range
        raise UserError(f"{path}: its hyperparameters do not describe a network ({exc})") from exc
    weights = {k.removeprefix("net."): v for k, v in state.items() if k.startswith("net.")}
    try:
        net.load_state_dict(weights)
    except RuntimeError as exc:
        raise UserError(f"{path}: weights do not fit the network its hyperparameters describe ({exc})") from exc
    return LoadedCheckpoint(
        net=net.eval(),
        model_hparams=hparams,
        data_hparams=checkpoint.get("datamodule_hyper_parameters") or {},
        epoch=int(checkpoint.get("epoch", 0)),
        callbacks=checkpoint.get("callbacks") or {},
    )


def find_checkpoints(sources: list[str]) -> list[Path]:
    """Checkpoint files as given, and for a folder every best checkpoint (digits_cnn.ckpt) below it, sorted."""
    found: list[Path] = []
    for source in map(Path, sources):
        if source.is_dir():
            below = sorted(source.rglob(artifacts.BEST_CHECKPOINT))
            if not below:
                raise UserError(f"no {artifacts.BEST_CHECKPOINT} below {source}; give checkpoints or a folder of runs")
            found += below
        elif source.is_file():
            found.append(source)
        else:
            raise UserError(f"checkpoint {source} does not exist; give checkpoint files or a folder of runs")
    return found


def load_members(sources: list[str]) -> tuple[list[Path], list[LoadedCheckpoint]]:
    """The checkpoints `sources` name (find_checkpoints), loaded; refused while a live run writes a folder of
    them, or when they were trained on different data sets (their class names would not line up)."""
    paths = find_checkpoints(sources)
    for path in paths:
        run_lock.check_not_written(path.parent, "checkpoint")
    members = [load_checkpoint(path) for path in paths]
    datasets = sorted({member.dataset for member in members})
    if len(datasets) > 1:
        raise UserError(f"the checkpoints were trained on different data sets ({', '.join(datasets)}); use one")
    return paths, members
