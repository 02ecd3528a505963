"""Loading our checkpoints outside the Trainer (evaluate, export, grid), safely.

Only tensors and plain values are read (`torch.load(weights_only=True)`): a checkpoint file cannot run code
on load. The network is rebuilt from the hyperparameters stored in the checkpoint, so no flags need repeating.
"""

from __future__ import annotations

import pickle
import zipfile
from dataclasses import dataclass
from pathlib import Path

import torch

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
