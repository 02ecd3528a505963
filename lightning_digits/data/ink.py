"""Augmentation that models how people's ink differs from MNIST's, batched on whatever device the batch is on:
slant (a horizontal shear), elastic distortion (Simard et al., 2003) and stroke width (grey-scale dilation or
erosion). Every image gets its own random draw; slant and the elastic field share one grid_sample.

Works on float batches [N, 1, H, W] in [0, 1], white ink on black, after data/augment.py's affine. Knows
nothing of files.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from lightning_digits.errors import check_ranges


@dataclass(frozen=True)
class InkRanges:
    """slant: degrees of horizontal shear, drawn uniformly in [-slant, slant] (positive leans the top right).
    elastic: Simard's alpha, the displacement scale in pixels (34 in the paper), of a field of uniform noise
    in [-1, 1] smoothed by a normalised Gaussian of elastic_sigma pixels (4 in the paper).
    stroke: the largest change of stroke width, as a fraction of a one-pixel dilation (thicker) or erosion
    (thinner) on each side; each image draws its own amount uniformly in [-stroke, stroke]."""

    slant: float = 0.0
    elastic: float = 0.0
    elastic_sigma: float = 4.0
    stroke: float = 0.0

    def __post_init__(self) -> None:
        check_ranges(
            "data.",
            {
                "slant": (self.slant, 0 <= self.slant < 60, "in [0, 60) degrees"),
                "elastic": (
                    self.elastic,
                    0 <= self.elastic <= 100,
                    "in [0, 100] (pixels of displacement, Simard's alpha)",
                ),
                "elastic_sigma": (self.elastic_sigma, 0.5 <= self.elastic_sigma <= 8, "in [0.5, 8] pixels"),
                "stroke": (
                    self.stroke,
                    0 <= self.stroke <= 1,
                    "in [0, 1] (a fraction of a one-pixel dilation/erosion)",
                ),
            },
        )

    @property
    def is_identity(self) -> bool:
        return self.slant == 0 and self.elastic == 0 and self.stroke == 0


def slant_matrices(angle: torch.Tensor) -> torch.Tensor:
    """[N] shear angles (radians) -> affine_grid's theta [N, 2, 3]. affine_grid maps output to input
    coordinates: an output pixel at height y (y grows downwards) samples the input at x + tan(angle) * y, so
    a positive angle moves the top of the digit right and its bottom left, about the centre."""
    ones, zeros = torch.ones_like(angle), torch.zeros_like(angle)
    return torch.stack([torch.stack([ones, torch.tan(angle), zeros], 1), torch.stack([zeros, ones, zeros], 1)], 1)


def smoothing_matrix(size: int, sigma: float, device: torch.device) -> torch.Tensor:
    """[size, size]: x @ M smooths the rows of x along their last axis by a normalised Gaussian out to 3 sigma,
    reflecting at the edges. Built by smoothing each unit impulse; as a matrix product the whole batch's
    smoothing is two small matmuls instead of a 25-tap convolution per pixel."""
    radius = max(1, math.ceil(3 * sigma))
    taps = torch.arange(-radius, radius + 1, device=device, dtype=torch.float32)
    kernel = torch.exp(-0.5 * (taps / sigma) ** 2)
    impulses = torch.eye(size, device=device).unsqueeze(1)  # [size, 1, size]
    padded = F.pad(impulses, (radius, radius), mode="reflect")
    return F.conv1d(padded, (kernel / kernel.sum()).view(1, 1, -1)).squeeze(1)


def elastic_field(
    n: int, height: int, width: int, ranges: InkRanges, device: torch.device, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Displacements in pixels [N, 2, H, W] ((dx, dy) per output pixel): uniform noise in [-1, 1] smoothed by a
    Gaussian along both axes, times alpha."""
    noise = 2 * torch.rand(n, 2, height, width, device=device, generator=generator) - 1
    rows = smoothing_matrix(height, ranges.elastic_sigma, device)
    cols = smoothing_matrix(width, ranges.elastic_sigma, device)
    return ranges.elastic * (rows.T @ noise @ cols)


def warp(
    images: torch.Tensor, theta: torch.Tensor, displacement: torch.Tensor | None = None, mode: str = "bilinear"
) -> torch.Tensor:
    """Resample each image of [N, C, H, W] through its theta [N, 2, 3] plus, when given, a per-pixel
    displacement [N, 2, H, W] in pixels: the output pixel (x, y) reads the input at its affine position + (dx, dy).
    Bilinear (or grid_sample's other `mode`), zeros outside."""
    n, _, height, width = images.shape
    grid = F.affine_grid(theta.to(images.dtype), [n, 1, height, width], align_corners=False)
    if displacement is not None:
        # affine_grid's coordinates span [-1, 1] over the image: one pixel is 2 / size.
        scale = torch.tensor([2 / width, 2 / height], device=images.device, dtype=images.dtype)
        grid = grid + displacement.to(images.dtype).permute(0, 2, 3, 1) * scale
    return F.grid_sample(images, grid, mode=mode, padding_mode="zeros", align_corners=False)


def max_3x3(images: torch.Tensor) -> torch.Tensor:
    """Each pixel's maximum over its 3x3 neighbourhood (grey-scale dilation; the image's edge adds nothing):
    max_pool2d(kernel 3, stride 1, padding 1) to the bit, as two passes of three shifted maxima, which on CPU
    takes a twentieth of max_pool2d's time (docs/benchmarks.md, "Training throughput")."""
    padded = F.pad(images, (1, 1, 1, 1), value=float("-inf"))
    rows = torch.maximum(torch.maximum(padded[..., :-2, :], padded[..., 1:-1, :]), padded[..., 2:, :])
    return torch.maximum(torch.maximum(rows[..., :-2], rows[..., 1:-1]), rows[..., 2:])


def change_stroke(images: torch.Tensor, amount: torch.Tensor) -> torch.Tensor:
    """Thicken (amount > 0) or thin (amount < 0) each image's strokes: a blend, by |amount| in [0, 1], between
    the image and its grey-scale dilation (3x3 max) or erosion (3x3 min, the max of the negative). At 1 a
    stroke gains or loses one pixel on each side."""
    weight = amount.to(images.dtype).view(-1, 1, 1, 1)
    target = torch.where(weight > 0, max_3x3(images), -max_3x3(-images))
    return images + weight.abs() * (target - images)


def random_ink(images: torch.Tensor, ranges: InkRanges, generator: torch.Generator | None = None) -> torch.Tensor:
    """Slant, elastic distortion and stroke width, each image of a float batch [N, C, H, W] by its own draw."""
    if ranges.is_identity:
        return images
    n, _, height, width = images.shape

    def uniform(limit: float) -> torch.Tensor:
        u = torch.rand(n, device=images.device, generator=generator, dtype=torch.float32)
        return (2 * u - 1) * limit

    if ranges.slant > 0 or ranges.elastic > 0:
        theta = slant_matrices(uniform(math.radians(ranges.slant)))
        field = elastic_field(n, height, width, ranges, images.device, generator) if ranges.elastic > 0 else None
        images = warp(images, theta, field)
    if ranges.stroke > 0:
        images = change_stroke(images, uniform(ranges.stroke))
    return images
