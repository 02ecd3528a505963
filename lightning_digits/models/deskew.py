"""Moment-based deskewing: each image is sheared horizontally about its centre of mass so that its principal
axis stands upright, the preprocessing of LeCun et al.'s deskewed MNIST entries. It is part of the network's
input path, not of the file preprocessing, so that training, `test`, `predict`, the ONNX file, `serve` and the
browser page apply it identically without a second copy in web/preprocess.js.

Works on float batches [N, 1, H, W] in [0, 1], white ink on black. Knows nothing of files or Lightning.
"""

from __future__ import annotations

import torch
from torch import nn

from lightning_digits.data.augment import apply_affine

# The steepest shear corrected (tan 45 degrees): a wide, flat mark has almost no vertical spread, and its
# moment ratio would otherwise shear it across the whole canvas.
MAX_SHEAR = 1.0


def deskew(images: torch.Tensor) -> torch.Tensor:
    """Shear each image by -mu11/mu02 (its second moments about the centre of mass, in grid units) about the
    centre of mass's row, sampling bilinearly; an upright digit (mu11 = 0) is returned as it is."""
    height, width = images.shape[-2:]
    # affine_grid's normalised coordinates of the pixel centres (align_corners=False), as [H, 1] and [1, W].
    ys = (torch.arange(height, device=images.device, dtype=images.dtype) * 2 + 1) / height - 1
    xs = (torch.arange(width, device=images.device, dtype=images.dtype) * 2 + 1) / width - 1
    mass = images.sum(dim=(1, 2, 3)).clamp_min(1e-6)
    cy = (images * ys[:, None]).sum(dim=(1, 2, 3)) / mass
    cx = (images * xs).sum(dim=(1, 2, 3)) / mass
    dy, dx = ys[:, None] - cy[:, None, None, None], xs - cx[:, None, None, None]
    mu11 = (images * dx * dy).sum(dim=(1, 2, 3)) / mass
    mu02 = (images * dy * dy).sum(dim=(1, 2, 3)) / mass
    shear = (mu11 / mu02.clamp_min(1e-6)).clamp(-MAX_SHEAR, MAX_SHEAR)
    # An output pixel at height y samples the input at x + shear * (y - cy): a digit whose top leans right
    # (mu11 < 0, y growing downwards) has its top rows moved left.
    ones, zeros = torch.ones_like(shear), torch.zeros_like(shear)
    theta = torch.stack(
        [torch.stack([ones, shear, -shear * cy], dim=1), torch.stack([zeros, ones, zeros], dim=1)], dim=1
    )
    return apply_affine(images, theta)


class Deskew(nn.Module):
    """deskew() as the network's first layer."""

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return deskew(images)
