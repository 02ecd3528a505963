"""Write a weights-only copy of a checkpoint: the network's weights, its hyperparameters and the data module's, its
epoch and its training time, without the optimiser's state, the loops' or the other callbacks' (a third of the
size). The committed artifacts_digits/digits_cnn.ckpt is one, so that a fresh clone can `adapt`, `evaluate`,
`export` or `predict` without training first; `fit --ckpt_path` cannot resume from it (it holds no optimiser).

    python tools/weights_only.py artifacts_digits/digits_cnn.ckpt artifacts_digits/digits_cnn.ckpt
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from lightning_digits.atomic import atomic_path

KEPT = (
    "state_dict",
    "hyper_parameters",
    "datamodule_hyper_parameters",
    "epoch",
    "global_step",
    "pytorch-lightning_version",
    "hparams_name",
    "datamodule_hparams_name",
)
KEPT_CALLBACKS = ("Timer",)  # its state is the training time that `evaluate` reports


def weights_only(checkpoint: dict) -> dict:
    slim = {key: checkpoint[key] for key in KEPT if key in checkpoint}
    callbacks = checkpoint.get("callbacks") or {}
    slim["callbacks"] = {name: state for name, state in callbacks.items() if name.split("{")[0] in KEPT_CALLBACKS}
    return slim


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("source")
    parser.add_argument("target", help="may be the source itself: it is replaced atomically")
    args = parser.parse_args()
    slim = weights_only(torch.load(args.source, map_location="cpu", weights_only=True))
    target = Path(args.target)
    with atomic_path(target) as tmp:
        torch.save(slim, tmp)
    print(f"wrote {target} ({target.stat().st_size:,} bytes): {', '.join(slim)}")


if __name__ == "__main__":
    main()
