"""Averaging probabilities over views of each image (test-time augmentation) and over several networks (an
ensemble), as one nn.Module with a single network's contract: float [N, 1, 28, 28] in [0, 1] in, [N, classes]
out, where softmax of the output is the averaged probability. So it tests, predicts and exports to ONNX like
DigitsCNN, and every consumer of an ONNX file (onnx_predictor, serve, the browser page) uses it unchanged.
Knows nothing of Lightning or files.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from lightning_digits.data.augment import affine_matrices
from lightning_digits.errors import UserError


@dataclass(frozen=True)
class View:
    rotation: float = 0.0  # degrees, counter-clockwise
    shift_x: float = 0.0  # pixels, to the right
    shift_y: float = 0.0  # pixels, down


def _shifts(pixels: float) -> list[View]:
    return [View(shift_x=pixels), View(shift_x=-pixels), View(shift_y=pixels), View(shift_y=-pixels)]


# Named sets of views, the identity first. Which one to use is decided on the validation split
# (bench/tta.py), never on the test set; docs/results.md has the figures.
VIEW_SETS: dict[str, tuple[View, ...]] = {
    "none": (View(),),
    "shifts": (View(), *_shifts(1.0)),
    "rotations": (View(), View(rotation=8.0), View(rotation=-8.0)),
    "shifts_rotations": (View(), *_shifts(1.0), View(rotation=8.0), View(rotation=-8.0)),
}


class Averaged(nn.Module):
    """The log of the mean probability over every member and every view: logsumexp of the members' log-softmax
    less log(count), which stays finite where a probability underflows."""

    def __init__(self, members: Sequence[nn.Module], views: Sequence[View] = (View(),), side: int = 28) -> None:
        super().__init__()
        self.members = nn.ModuleList(members)
        self.view_count = len(views)
        self.identity_only = tuple(views) == (View(),)
        # The views are fixed: their sampling grids are computed once, for `side` x `side` images.
        angles = torch.tensor([math.radians(v.rotation) for v in views])
        # A shift of p pixels moves the content by p / side of the image.
        shift_x = torch.tensor([v.shift_x / side for v in views])
        shift_y = torch.tensor([v.shift_y / side for v in views])
        theta = affine_matrices(angles, torch.ones(len(views)), -shift_x, -shift_y)
        grid = F.affine_grid(theta, [len(views), 1, side, side], align_corners=False)
        self.register_buffer("grid", grid, persistent=False)

    def _views(self, images: torch.Tensor) -> torch.Tensor:
        """[N, 1, H, W] -> [V * N, 1, H, W], view by view."""
        if self.identity_only:
            return images
        n = images.shape[0]
        repeated = images.unsqueeze(0).expand(self.view_count, *images.shape).reshape(-1, *images.shape[1:])
        grid = self.grid.unsqueeze(1).expand(self.view_count, n, *self.grid.shape[1:]).reshape(-1, *self.grid.shape[1:])
        return F.grid_sample(
            repeated, grid.to(images.dtype), mode="bilinear", padding_mode="zeros", align_corners=False
        )

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        views = self._views(images)
        n = images.shape[0]
        log_probabilities = [
            F.log_softmax(member(views).float(), dim=1).reshape(self.view_count, n, -1) for member in self.members
        ]
        stacked = torch.cat(log_probabilities, dim=0)
        return torch.logsumexp(stacked, dim=0) - math.log(stacked.shape[0])


def views(view_set: str) -> tuple[View, ...]:
    """The named set of views: the one check of a view-set name, wherever it enters (--tta, --model.tta)."""
    if view_set not in VIEW_SETS:
        raise UserError(f"tta {view_set!r} is not a view set; choose one of {', '.join(VIEW_SETS)}")
    return VIEW_SETS[view_set]


def with_views(net: nn.Module, view_set: str) -> nn.Module:
    """`net` itself for "none", else `net` averaged over the named views."""
    return net if view_set == "none" else Averaged([net], views(view_set))
