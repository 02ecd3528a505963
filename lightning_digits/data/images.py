"""Turning arbitrary image files into MNIST-style 28x28 digits, the way MNIST itself was made.

Recipe: grayscale in [0, 1] -> white ink on black (inverted when the ink is darker than the paper) -> crop to the
ink -> fit in 20x20 keeping the aspect ratio -> centre by centre of mass in 28x28. web/preprocess.js is the
same recipe for the browser, step for step; tests/test_web.py holds the two together.
Uses numpy and Pillow only (no torch), so the onnxruntime-only predictor can share it.
"""

from __future__ import annotations

import functools
import glob
import io
import logging
from pathlib import Path
from typing import BinaryIO

import numpy as np
from PIL import Image, UnidentifiedImageError

from lightning_digits.errors import UserError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp")
# A 20000x20000 image decodes to 400 MP (1.6 GB as float): refuse well before that.
MAX_PIXELS = 40_000_000
# A digit needs 20x20 pixels: an image wider or taller than this is shrunk while it is decoded, before any array
# is made. Larger than the browser page's canvas, so web/preprocess.js never meets the step.
MAX_SIDE = 1024
# MNIST's centre of mass sits at pixel (14, 14) on average (measured on its test set), not at 13.5.
MNIST_CENTRE = 14.0
# Ink covers about a fifth of an MNIST digit's pixels, and rarely less than 1% of a photo of one; the 99.5th
# percentile is ink's contrast in both, and is not moved by a few pixels of salt-and-pepper noise.
INK_CONTRAST_PERCENTILE = 99.5
_INK_THRESHOLD = 0.2  # fraction of full intensity above which a pixel counts as ink for cropping
_ROWS, _COLUMNS = np.indices((28, 28))
_log = logging.getLogger(__name__)


def find_images(path_or_glob: str) -> list[Path]:
    """Image files under a folder (sorted) or matched by a glob; other files are skipped with a notice. Hidden
    files are not a user's images (an atomic writer's temporary `.name.XXXX.png`, left by a writer killed
    mid-write, is one): a folder's are passed over, as a glob's `*` passes them over."""
    path = Path(path_or_glob)
    if path.is_dir():
        candidates = sorted(p for p in path.iterdir() if p.is_file() and not p.name.startswith("."))
    elif path.is_file():
        candidates = [path]
    else:
        candidates = sorted(Path(p) for p in glob.glob(path_or_glob) if Path(p).is_file())
    images = [p for p in candidates if p.suffix.lower() in IMAGE_SUFFIXES]
    for skipped in sorted(set(candidates) - set(images)):
        _log.warning("skipping %s: not a %s file", skipped, "/".join(IMAGE_SUFFIXES))
    if not images:
        raise UserError(
            f"no images found at {path_or_glob!r}: give a folder or glob of {', '.join(IMAGE_SUFFIXES)} files"
        )
    return images


def _to_gray(image: Image.Image) -> np.ndarray:
    """Float grayscale in [0, 1]; transparency is composited onto white paper."""
    if image.mode in ("I;16", "I;16B", "I;16L", "I"):
        gray = np.asarray(image, dtype=np.float32)
        return np.clip(gray / (65535.0 if gray.max() > 255 else 255.0), 0.0, 1.0)
    if image.mode == "P":
        image = image.convert("RGBA")
    if image.mode in ("RGBA", "LA", "PA"):
        paper = Image.new("RGBA", image.size, (255, 255, 255, 255))
        image = Image.alpha_composite(paper, image.convert("RGBA"))
    return np.asarray(image.convert("L"), dtype=np.float32) / 255.0


def _shrunk(image: Image.Image, factor: int) -> Image.Image:
    """Box-average by a whole factor. `reduce` averages the stored values, so palette indices and 16-bit or
    1-bit pixels are first made into values that average."""
    if image.mode not in ("L", "LA", "RGB", "RGBA", "I", "F"):
        image = image.convert("RGBA" if image.mode in ("P", "PA") else "I" if image.mode.startswith("I;16") else "L")
    return image.reduce(factor)


def _round_half_up(x: float) -> int:
    # Not Python's round() (half to even): the browser's copy of this recipe (web/preprocess.js) rounds half up.
    return int(np.floor(x + 0.5))


@functools.lru_cache(maxsize=4096)  # a server meets the same few crop sizes again and again
def _resample_weights(in_size: int, out_size: int) -> np.ndarray:
    """[out, in] weights of a triangle filter widened by the scale when shrinking (antialiasing), rows summing
    to 1. Written out rather than taken from Pillow so that web/preprocess.js can do exactly the same."""
    scale = in_size / out_size
    support = max(scale, 1.0)
    centres = (np.arange(out_size) + 0.5) * scale
    weights = np.maximum(0.0, 1.0 - np.abs(np.arange(in_size) + 0.5 - centres[:, None]) / support)
    weights /= weights.sum(axis=1, keepdims=True)
    weights.flags.writeable = False  # shared by every caller
    return weights


def to_mnist(gray: np.ndarray) -> np.ndarray:
    """A grayscale image in [0, 1] of any size -> float32 28x28 in [0, 1], white digit centred on black."""
    border = np.concatenate([gray[0], gray[-1], gray[:, 0], gray[:, -1]]).astype(np.float64)
    paper = float(np.median(border))
    light = _ink_is_darker(gray, paper)
    ink = (paper - gray) if light else (gray - paper)
    ink = np.clip(ink / max(paper if light else 1.0 - paper, 1e-6), 0.0, 1.0)
    rows, cols = np.nonzero(ink > _INK_THRESHOLD * ink.max()) if ink.max() > 0 else ((), ())
    if len(rows) == 0:
        raise ValueError("no ink: the image is blank")
    ink = ink[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1]
    height, width = ink.shape
    factor = 20.0 / max(height, width)
    fit_height, fit_width = max(1, _round_half_up(height * factor)), max(1, _round_half_up(width * factor))
    fitted = _resample_weights(height, fit_height) @ ink @ _resample_weights(width, fit_width).T
    fitted = np.clip(fitted, 0.0, 1.0)
    canvas = np.zeros((28, 28), dtype=np.float64)
    top, left = (28 - fit_height) // 2, (28 - fit_width) // 2
    canvas[top : top + fit_height, left : left + fit_width] = fitted
    return _centre_of_mass_to_middle(canvas).astype(np.float32)


def _ink_is_darker(gray: np.ndarray, paper: float) -> bool:
    """Whether the ink is darker than the paper: the side of the paper's level that holds the strongest contrast.
    Not "the paper is lighter than mid-grey": a white digit on grey paper (0.5) is then read as dark ink on light
    paper and refused as blank. Ink is the strongest contrast in a picture of a digit, while uneven lighting or a
    shadow is a weaker one over a larger area, so the contrast is taken at a high percentile
    (INK_CONTRAST_PERCENTILE), not summed; ties (a blank image) keep dark ink."""
    darker = float(np.percentile(paper - gray, INK_CONTRAST_PERCENTILE))
    brighter = float(np.percentile(gray - paper, INK_CONTRAST_PERCENTILE))
    return darker >= brighter


def _centre_of_mass_to_middle(canvas: np.ndarray) -> np.ndarray:
    total = canvas.sum()
    dy = _round_half_up(MNIST_CENTRE - (_ROWS * canvas).sum() / total)
    dx = _round_half_up(MNIST_CENTRE - (_COLUMNS * canvas).sum() / total)
    # The digit sits in a 20x20 box, so a shift of up to 4 pixels never pushes ink off the 28x28 canvas.
    return np.roll(canvas, (max(-4, min(4, dy)), max(-4, min(4, dx))), axis=(0, 1))


def load_digit(path: Path | str) -> np.ndarray:
    """Read one image file as an MNIST-style float32 28x28 array in [0, 1]."""
    return read_digit(Path(path), str(path))


def read_digit(source: bytes | BinaryIO | Path, name: str) -> np.ndarray:
    """An image as bytes, a binary stream or a path -> MNIST-style float32 28x28 array in [0, 1].

    `name` is what the error messages call the image (a file name, an upload's name); the HTTP server and
    `load_digit` share this one path, checks and messages included."""
    with open_image(source, name) as image:
        return decode_digit(image, name)


def open_image(source: bytes | BinaryIO | Path, name: str, max_pixels: int | None = None) -> Image.Image:
    """Read only the header: the size is known, nothing is decoded yet (the server sums a request's pixels
    before it decodes any). A JPEG is told to decode at the smallest scale that still covers MAX_SIDE.
    `max_pixels`: MAX_PIXELS unless given."""
    max_pixels = MAX_PIXELS if max_pixels is None else max_pixels
    if isinstance(source, bytes):
        source = io.BytesIO(source)
    try:
        image = Image.open(source)
    except Image.DecompressionBombError as exc:  # Pillow's own, stricter guard, raised while opening
        raise UserError(f"{name}: above the limit of {max_pixels:,} pixels ({exc}); scale it down first") from exc
    except UnidentifiedImageError as exc:
        # Pillow names a stream by its repr (<_io.BytesIO object at 0x...>), which tells a user nothing.
        detail = str(exc) if isinstance(source, Path) else "not a PNG, JPEG, BMP or other format Pillow reads"
        raise UserError(f"{name}: cannot read it as an image ({detail}); check the file") from exc
    except OSError as exc:
        raise UserError(f"{name}: cannot read it as an image ({exc}); check the file") from exc
    if image.width * image.height > max_pixels:
        image.close()
        raise UserError(
            f"{name}: {image.width}x{image.height} is above the limit of {max_pixels:,} pixels; scale it down first"
        )
    if image.format == "JPEG" and max(image.size) > MAX_SIDE:
        scale = MAX_SIDE / max(image.size)
        image.draft(image.mode, (int(image.width * scale), int(image.height * scale)))  # 1/2, 1/4 or 1/8 scale
    return image


def decode_digit(image: Image.Image, name: str) -> np.ndarray:
    """An opened image -> MNIST-style float32 28x28 array in [0, 1]. An image larger than MAX_SIDE is
    box-averaged down by a whole factor first (Pillow's `reduce`, in C), so that the arrays made after it, and
    their cost, follow the 28x28 output rather than the upload: a 6300x6300 scan would otherwise need 0.7 GB."""
    try:
        image.load()
        factor = -(-max(image.size) // MAX_SIDE)  # ceiling division
        gray = _to_gray(_shrunk(image, factor) if factor > 1 else image)
    except OSError as exc:
        raise UserError(f"{name}: cannot read it as an image ({exc}); check the file") from exc
    try:
        return to_mnist(gray)
    except ValueError as exc:
        raise UserError(f"{name}: {exc}; nothing to classify") from exc
