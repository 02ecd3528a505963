"""Batch transforms on tensors, on whatever device the batch is on: stored images -> the model's input, and
per-sample random affine augmentation of a whole batch in one affine_grid + grid_sample call.

torchvision's v2 transforms draw one set of parameters per call, i.e. per batch; here every image gets
its own rotation, shift and scale. Knows nothing of files.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from lightning_digits.errors import check_ranges


def as_model_input(images: torch.Tensor) -> torch.Tensor:
    """uint8 [N, 28, 28] as stored (or float already in [0, 1]) -> float [N, 1, 28, 28] in [0, 1], the
    model's input contract."""
    if images.dtype == torch.uint8:
        images = images.float().div_(255)
    return images.unsqueeze(1) if images.ndim == 3 else images


def rank_seed(seed: int, rank: int) -> int:
    """The seed of one DDP rank's random draws (augmentation here, dropout in callbacks.SeedPerRank): every rank
    starts from the same seed, but their draws must differ. Rank 0 keeps `seed`, so one process is unchanged."""
    return (seed + 7919 * rank) % 2**63


@dataclass(frozen=True)
class AffineRanges:
    """Ranges to draw from uniformly: degrees, fraction of the image size, and fractional scale change."""

    rotation: float = 10.0
    shift: float = 0.1
    scale: float = 0.1

    def __post_init__(self) -> None:
        check_ranges(
            "data.",
            {
                "rotation": (self.rotation, 0 <= self.rotation <= 180, "in [0, 180] degrees"),
                "shift": (self.shift, 0 <= self.shift <= 0.5, "in [0, 0.5] (a fraction of the image size)"),
                "scale": (self.scale, 0 <= self.scale < 1, "in [0, 1) (0.1 means 90%-110%)"),
            },
        )

    @property
    def is_identity(self) -> bool:
        return self.rotation == 0 and self.shift == 0 and self.scale == 0


def affine_matrices(
    angle: torch.Tensor, zoom: torch.Tensor, shift_x: torch.Tensor, shift_y: torch.Tensor
) -> torch.Tensor:
    """[N] rotations (radians), zooms (1 = none) and shifts (fractions of the image size) -> `affine_grid`'s
    theta [N, 2, 3]. affine_grid maps output to input coordinates in [-1, 1]: shifting by t moves the content
    by -t/2 of the image, hence 2 * shift; dividing by zoom enlarges the content."""
    cos, sin = torch.cos(angle) / zoom, torch.sin(angle) / zoom
    return torch.stack([torch.stack([cos, -sin, 2 * shift_x], 1), torch.stack([sin, cos, 2 * shift_y], 1)], 1)


def apply_affine(images: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
    """Each image of a float batch [N, C, H, W] moved by its own theta [N, 2, 3], bilinear, zeros outside."""
    grid = F.affine_grid(theta.to(images.dtype), list(images.shape), align_corners=False)
    return F.grid_sample(images, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def random_affine(images: torch.Tensor, ranges: AffineRanges, generator: torch.Generator | None = None) -> torch.Tensor:
    """Rotate, shift and scale each image of a float batch [N, C, H, W] by its own random amounts."""
    if ranges.is_identity:
        return images
    n = images.shape[0]

    def uniform(limit: float) -> torch.Tensor:
        u = torch.rand(n, device=images.device, generator=generator, dtype=torch.float32)
        return (2 * u - 1) * limit

    angle = uniform(math.radians(ranges.rotation))
    zoom = 1 + uniform(ranges.scale)
    return apply_affine(images, affine_matrices(angle, zoom, uniform(ranges.shift), uniform(ranges.shift)))
