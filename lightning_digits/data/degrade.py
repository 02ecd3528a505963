"""Augmentation that models what real pages and cameras do to a digit, batched on whatever device the batch is on:
a grey or uneven background with less contrast (paper tone, fog, a bright photo), noise (grain, salt and pepper,
stains), blur (out of focus, motion, a rough glass-like jitter), lines across the digit (form lines, dotted and
zigzag rules), inverted bands at the sides (stripes), and the digit drawn as its outline only.

Each kind is applied to a random fraction of each batch, its parameters drawn per image. These model families of
degradation; they are not MNIST-C's corruptions (lightning_digits/evaluation/mnist_c.py), whose exact definitions
and severities are used only to measure. Works on float batches [N, 1, H, W] in [0, 1], white ink on black, after
the affine and ink augmentations. Knows nothing of files.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields

import torch
import torch.nn.functional as F

from lightning_digits.data.ink import max_3x3, smoothing_matrix, warp
from lightning_digits.errors import check_ranges


@dataclass(frozen=True)
class DegradeRates:
    """The fraction of training images that get each kind of degradation (independently, so an image may get
    several): background, noise, blur, lines, stripes, outline."""

    background: float = 0.0
    noise: float = 0.0
    blur: float = 0.0
    lines: float = 0.0
    stripes: float = 0.0
    outline: float = 0.0

    def __post_init__(self) -> None:
        check_ranges(
            "data.",
            {
                f.name: (getattr(self, f.name), 0 <= getattr(self, f.name) <= 1, "in [0, 1] (a fraction of the images)")
                for f in fields(self)
            },
        )

    @property
    def is_identity(self) -> bool:
        return all(getattr(self, f.name) == 0 for f in fields(self))


def _uniform(n: int, low: float, high: float, like: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    u = torch.rand(n, device=like.device, generator=generator, dtype=torch.float32)
    return (low + (high - low) * u).to(like.dtype).view(n, 1, 1, 1)


def _smooth_field(n: int, size: int, cells: int, like: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    """[N, 1, size, size] in [0, 1]: uniform noise on a coarse grid of `cells` x `cells`, bilinearly enlarged."""
    coarse = torch.rand(n, 1, cells, cells, device=like.device, generator=generator, dtype=torch.float32)
    return F.interpolate(coarse, size=(size, size), mode="bilinear", align_corners=True).to(like.dtype)


def background(images: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """Lower the digit's contrast to 25-100% and lift the background to a grey of 0-0.6 that varies smoothly
    over the image by up to 0.5 (flat paper tone, fog, a bright photograph)."""
    n, _, height, _ = images.shape
    contrast = _uniform(n, 0.25, 1.0, images, generator)
    level = _uniform(n, 0.0, 0.6, images, generator)
    unevenness = _uniform(n, 0.0, 0.5, images, generator)
    cells = int(torch.randint(2, 6, (1,), generator=generator, device=images.device))
    field = level + unevenness * _smooth_field(n, height, cells, images, generator)
    return (contrast * images + field).clamp(0, 1)


def noise(images: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """One of three per image: photon (Poisson) noise of 2-30 photons at full intensity, salt and pepper on up
    to 25% of the pixels, or stains (smooth blobs of a grey that cover the digit)."""
    n = images.shape[0]
    kind = torch.randint(0, 3, (n, 1, 1, 1), device=images.device, generator=generator)
    photons = _uniform(n, 2.0, 30.0, images, generator)
    grain = torch.poisson(images.float() * photons.float(), generator=generator).to(images.dtype) / photons
    amount = _uniform(n, 0.0, 0.25, images, generator)
    draw = torch.rand(images.shape, device=images.device, generator=generator, dtype=images.dtype)
    salt_pepper = torch.where(draw < amount / 2, 0.0, torch.where(draw < amount, 1.0, images))
    blobs = _smooth_field(n, images.shape[-1], 7, images, generator) > _uniform(n, 0.7, 0.95, images, generator)
    stains = torch.where(blobs, _uniform(n, 0.1, 0.5, images, generator), images)
    out = torch.where(kind == 0, grain, torch.where(kind == 1, salt_pepper, stains))
    return out.clamp(0, 1)


def _kernels(n: int, size: int, like: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    """[N, 1, size, size] normalised blur kernels, half Gaussian (sigma 0.5-1.5), half a motion streak (a line
    of 3-`size` pixels at any angle, weighted by a one-sided Gaussian as ImageMagick's motion blur is)."""
    radius = size // 2
    axis = torch.arange(-radius, radius + 1, device=like.device, dtype=torch.float32)
    y, x = torch.meshgrid(axis, axis, indexing="ij")
    sigma = _uniform(n, 0.5, 1.5, like, generator).float()
    gaussian = torch.exp(-(x**2 + y**2) / (2 * sigma**2))
    angle = _uniform(n, 0.0, 2 * math.pi, like, generator).float()
    length = _uniform(n, 2.0, float(radius), like, generator).float()
    along = x * torch.cos(angle) + y * torch.sin(angle)
    across = -x * torch.sin(angle) + y * torch.cos(angle)
    streak = (across.abs() < 0.5) & (along >= 0) & (along <= length)
    streak = streak * torch.exp(-0.5 * (along / (length / 2)) ** 2)
    use_gaussian = torch.rand(n, 1, 1, 1, device=like.device, generator=generator) < 0.5
    kernels = torch.where(use_gaussian, gaussian, streak)
    return (kernels / kernels.sum(dim=(2, 3), keepdim=True)).to(like.dtype)


def blur(images: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """A rough jitter of each pixel by up to a pixel and a half (glass-like) on a third of the images, then a
    Gaussian or motion blur of each image by its own kernel (one grouped convolution for the batch)."""
    n, channels, height, width = images.shape
    jitter = torch.rand(n, 1, 1, 1, device=images.device, generator=generator) < 1 / 3
    offsets = (torch.rand(n, height, width, 2, device=images.device, generator=generator) * 2 - 1) * 1.5
    identity = torch.eye(2, 3, device=images.device).expand(n, 2, 3)
    # nearest, not bilinear: pixels move whole, as the glass blur's swaps do
    jittered = warp(images, identity, (offsets * jitter.view(n, 1, 1, 1)).permute(0, 3, 1, 2), mode="nearest")
    size = 9
    kernels = _kernels(n, size, images, generator)
    stacked = jittered.reshape(1, n * channels, height, width)
    blurred = F.conv2d(stacked, kernels.repeat_interleave(channels, 0), padding=size // 2, groups=n * channels)
    return blurred.reshape(n, channels, height, width).clamp(0, 1)


def lines(images: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """A bright line across the image at a random height and slope (within 30 degrees of horizontal, as a form's
    rules run), 1-3 pixels wide; a third of them dashed, a third zigzag."""
    n, _, height, width = images.shape
    device = images.device
    rows = torch.arange(height, device=device, dtype=torch.float32).view(1, height, 1)
    cols = torch.arange(width, device=device, dtype=torch.float32).view(1, 1, width)
    angle = _uniform(n, -math.pi / 6, math.pi / 6, images, generator).float().view(n, 1, 1)
    centre = _uniform(n, 4.0, height - 5.0, images, generator).float().view(n, 1, 1)
    half_width = _uniform(n, 0.5, 1.5, images, generator).float().view(n, 1, 1)
    along = (cols - width / 2) * torch.cos(angle) + (rows - centre) * torch.sin(angle)
    across = -(cols - width / 2) * torch.sin(angle) + (rows - centre) * torch.cos(angle)
    kind = torch.randint(0, 3, (n, 1, 1), device=device, generator=generator)
    period = _uniform(n, 3.0, 6.0, images, generator).float().view(n, 1, 1)
    phase = torch.remainder(along, period) / period  # 0..1 along each period
    zig = 2.0 * (2 * (phase - 0.5).abs() - 0.5)  # a triangle wave of +-1 pixel
    across = torch.where(kind == 2, across - zig, across)
    ink = (1 + half_width - across.abs()).clamp(0, 1)
    ink = torch.where((kind == 1) & (phase >= 0.5), torch.zeros_like(ink), ink)
    return torch.maximum(images, ink.unsqueeze(1).to(images.dtype))


def stripes(images: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """Invert a band of 3-9 columns at the left and at the right edge, each its own width."""
    n, _, _, width = images.shape
    cols = torch.arange(width, device=images.device).view(1, 1, 1, width)
    left = torch.randint(3, 10, (n, 1, 1, 1), device=images.device, generator=generator)
    right = torch.randint(3, 10, (n, 1, 1, 1), device=images.device, generator=generator)
    band = (cols < left) | (cols >= width - right)
    return torch.where(band, 1 - images, images)


def outline(images: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """The digit as the one-pixel outline around its strokes (an edge detector's view of it): the ink's mask,
    grown by one pixel, less the mask."""
    smooth = smoothing_matrix(images.shape[-1], 1.0, images.device).to(images.dtype)
    blurred = smooth.T @ images @ smooth
    level = _uniform(images.shape[0], 0.2, 0.4, images, generator)
    mask = (blurred > level * blurred.amax(dim=(2, 3), keepdim=True)).to(images.dtype)
    return max_3x3(mask) - mask


KINDS = {"background": background, "noise": noise, "blur": blur, "lines": lines, "stripes": stripes, "outline": outline}
# The order they are applied in when an image gets several: the digit's shape first (outline, blur), then what
# lies on the page (lines, stripes), then the page and the camera (background, noise).
ORDER = ("outline", "blur", "lines", "stripes", "background", "noise")


def random_degrade(images: torch.Tensor, rates: DegradeRates, generator: torch.Generator | None = None) -> torch.Tensor:
    """Each kind applied to its fraction of the batch (its own random images), each image by its own draw."""
    if rates.is_identity:
        return images
    for name in ORDER:
        rate = getattr(rates, name)
        if rate == 0:
            continue
        chosen = torch.rand(images.shape[0], device=images.device, generator=generator) < rate
        if chosen.any():
            images = images.clone()  # never write into the caller's batch
            images[chosen] = KINDS[name](images[chosen], generator)
    return images
