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


def as_model_input(images: torch.Tensor) -> torch.Tensor:
    """uint8 [N, 28, 28] as stored (or float already in [0, 1]) -> float [N, 1, 28, 28] in [0, 1], the
    model's input contract."""
    if images.dtype == torch.uint8:
        images = images.float().div_(255)
    return images.unsqueeze(1) if images.ndim == 3 else images


@dataclass(frozen=True)
class AffineRanges:
    """Ranges to draw from uniformly: degrees, fraction of the image size, and fractional scale change."""

    rotation: float = 10.0
    shift: float = 0.1
    scale: float = 0.1

    def __post_init__(self) -> None:
        if not 0 <= self.rotation <= 180:
            raise ValueError(f"rotation must be in [0, 180] degrees, got {self.rotation}")
        if not 0 <= self.shift <= 0.5:
            raise ValueError(f"shift must be in [0, 0.5] (a fraction of the image size), got {self.shift}")
        if not 0 <= self.scale < 1:
            raise ValueError(f"scale must be in [0, 1) (0.1 means 90%-110%), got {self.scale}")

    @property
    def is_identity(self) -> bool:
        return self.rotation == 0 and self.shift == 0 and self.scale == 0


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
    # affine_grid maps output to input coordinates in [-1, 1]: shifting by t moves the content by -t/2
    # of the image, hence 2 * shift; dividing by zoom enlarges the content.
    cos, sin = torch.cos(angle) / zoom, torch.sin(angle) / zoom
    theta = torch.stack(
        [
            torch.stack([cos, -sin, 2 * uniform(ranges.shift)], dim=1),
            torch.stack([sin, cos, 2 * uniform(ranges.shift)], dim=1),
        ],
        dim=1,
    ).to(images.dtype)
    grid = F.affine_grid(theta, list(images.shape), align_corners=False)
    return F.grid_sample(images, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
