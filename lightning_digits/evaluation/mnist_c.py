"""MNIST-C (Mu and Gilmer, "MNIST-C: A Robustness Benchmark for Computer Vision", 2019): the benchmark's fifteen
corruptions, written from the paper's definitions at the severity the benchmark uses for each, with numpy and
scipy only, batched over images and deterministic for a seed.

`corrupt(images, name, seed)` takes uint8 [N, 28, 28] (white digit on black, as MNIST stores it) and returns the
same shape, dtype and range, as the benchmark's files are. Where this differs from the authors' code (which needs
scikit-image, OpenCV and ImageMagick) it says so beside the corruption; the distributions are the same, the
random draws are not, so a model's figure here differs from one on the published files by sampling noise.

`choosing_set` applies them with other seeds to the validation split, the only corrupted images a setting may be
chosen on; MNIST-C proper is made from the test split and only ever reported. Knows nothing of models.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable

import numpy as np
from scipy import ndimage

Images = np.ndarray  # float64 [N, 28, 28] in [0, 1] inside this module
SIDE = 28
CENTRE = 13.5  # the pixel-grid centre that the affine corruptions keep fixed


def _gaussian(images: Images, sigma: float, mode: str = "nearest") -> Images:
    """scikit-image's `gaussian` (truncated at 4 sigma, edge pixels repeated) on each image of the batch."""
    return ndimage.gaussian_filter(images, sigma=(0, sigma, sigma), mode=mode, truncate=4.0)


def shot_noise(images: Images, rng: np.random.Generator) -> Images:
    """Poisson photon noise at 3 photons for full intensity (severity 5 of the paper's code)."""
    photons = 3.0
    return np.clip(rng.poisson(images * photons) / photons, 0, 1)


def impulse_noise(images: Images, rng: np.random.Generator) -> Images:
    """Salt and pepper: 17% of the pixels set to white or black, evenly (severity 4)."""
    flipped = rng.random(images.shape) < 0.17
    salt = rng.random(images.shape) < 0.5
    out = images.copy()
    out[flipped & salt] = 1.0
    out[flipped & ~salt] = 0.0
    return out


def glass_blur(images: Images, rng: np.random.Generator) -> Images:
    """Blur (sigma 0.7), then two passes of local pixel swaps (each pixel, with probability 1/2, swaps with a
    neighbour up to one pixel up and left), then blur again (severity 1). The swap pass runs over positions in the
    authors' order, each position for the whole batch at once."""
    sigma, delta, passes = 0.7, 1, 2
    n = len(images)
    out = np.floor(_gaussian(images, sigma) * 255).astype(np.uint8)  # the authors' np.uint8 cast truncates
    rows = np.arange(n)
    for _ in range(passes):
        for h in range(SIDE - delta, delta, -1):
            for w in range(SIDE - delta, delta, -1):
                swap = rows[rng.random(n) < 0.5]
                dx, dy = rng.integers(-delta, delta, size=(2, len(swap)))
                here = out[swap, h, w].copy()
                out[swap, h, w] = out[swap, h + dy, w + dx]
                out[swap, h + dy, w + dx] = here
    return np.clip(_gaussian(out / 255.0, sigma), 0, 1)


def motion_blur(images: Images, rng: np.random.Generator) -> Images:
    """ImageMagick's motion blur at radius 10, sigma 3 (severity 1), in a direction drawn in [-45, 45] degrees per
    image: each pixel becomes a Gaussian-weighted mean of the pixels behind it along that direction, the nearest
    weighing most. As ImageMagick does, taps land on whole pixels; outside the image counts as black (MNIST's
    border is black, where ImageMagick repeats the edge)."""
    radius, sigma = 10, 3.0
    taps = np.arange(2 * radius + 1)
    weights = np.exp(-0.5 * (taps / sigma) ** 2)
    weights /= weights.sum()
    angles = np.deg2rad(rng.uniform(-45, 45, size=len(images)))
    out = np.zeros_like(images)
    padded = np.pad(images, ((0, 0), (2 * radius, 2 * radius), (2 * radius, 2 * radius)))
    n = np.arange(len(images))[:, None, None]
    grid_r, grid_c = np.meshgrid(np.arange(SIDE), np.arange(SIDE), indexing="ij")
    for tap, weight in zip(taps, weights, strict=True):
        dx = np.rint(tap * np.cos(angles)).astype(int)[:, None, None]
        dy = np.rint(tap * np.sin(angles)).astype(int)[:, None, None]
        out += weight * padded[n, grid_r + 2 * radius + dy, grid_c + 2 * radius + dx]
    return np.clip(out, 0, 1)


def _warp(images: Images, matrices: np.ndarray) -> Images:
    """Each image resampled through its own 2x2 matrix [N, 2, 2] about the grid centre, in (column, row)
    coordinates, mapping an output pixel to where it reads the input (scikit-image's `warp` with an inverse map):
    bilinear, black outside."""
    out = np.empty_like(images)
    centre = np.array([CENTRE, CENTRE])
    for i, (image, matrix) in enumerate(zip(images, matrices, strict=True)):
        rc = matrix[::-1, ::-1]  # the same map in (row, column) order, as scipy takes it
        out[i] = ndimage.affine_transform(image, rc, offset=centre - rc @ centre, order=1, mode="constant")
    return np.clip(out, 0, 1)


def _signs(rng: np.random.Generator, n: int) -> np.ndarray:
    return rng.choice(np.array([-1.0, 1.0]), size=n)


def shear(images: Images, rng: np.random.Generator) -> Images:
    """Shear by 0.4 rad, either way (severity 2): scikit-image's AffineTransform(shear=c), [[1, -sin c], [0, cos c]]."""
    c = 0.4 * _signs(rng, len(images))
    matrices = np.stack([np.stack([np.ones_like(c), -np.sin(c)], 1), np.stack([np.zeros_like(c), np.cos(c)], 1)], 1)
    return _warp(images, matrices)


def rotate(images: Images, rng: np.random.Generator) -> Images:
    """Rotate by 0.4 rad (23 degrees), either way (severity 2)."""
    c = 0.4 * _signs(rng, len(images))
    cos, sin = np.cos(c), np.sin(c)
    return _warp(images, np.stack([np.stack([cos, -sin], 1), np.stack([sin, cos], 1)], 1))


def scale(images: Images, rng: np.random.Generator) -> Images:
    """Shrink to 70% about the centre (severity 3; the same for every image)."""
    return _warp(images, np.broadcast_to(np.eye(2) / 0.7, (len(images), 2, 2)))


def translate(images: Images, rng: np.random.Generator) -> Images:
    """Move by 3 pixels along each axis, each way drawn (severity 3)."""
    shifts = 3 * _signs(rng, 2 * len(images)).reshape(-1, 2)
    out = np.zeros_like(images)
    for i, (dx, dy) in enumerate(shifts.astype(int)):  # whole pixels: bilinear resampling moves them exactly
        out[i] = ndimage.shift(images[i], (-dy, -dx), order=0, mode="constant")
    return out


def brightness(images: Images, rng: np.random.Generator) -> Images:
    """Value + 0.5 in HSV (severity 5). For a grey image that is every pixel + 0.5: a grey background under a
    white digit."""
    return np.clip(images + 0.5, 0, 1)


def stripe(images: Images, rng: np.random.Generator) -> Images:
    """The seven columns at each side inverted: white bands at the edges, the digit untouched."""
    out = images.copy()
    out[:, :, :7] = 1 - out[:, :, :7]
    out[:, :, 21:] = 1 - out[:, :, 21:]
    return out


def plasma_fractal(rng: np.random.Generator, n: int, size: int = 256, decay: float = 1.4) -> Images:
    """[N, size, size] diamond-square height maps in [0, 1] (the authors' fog, itself from ImageNet-C), batched:
    each level's new points are their neighbours' mean plus noise whose range shrinks by `decay` per level."""
    heights = np.zeros((n, size, size))
    step, wibble = size, 100.0

    def wibbled(total: np.ndarray) -> np.ndarray:
        return total / 4 + wibble * rng.uniform(-wibble, wibble, total.shape)

    while step >= 2:
        half = step // 2
        corners = heights[:, 0:size:step, 0:size:step]
        squares = corners + np.roll(corners, -1, axis=1)
        squares = squares + np.roll(squares, -1, axis=2)
        heights[:, half:size:step, half:size:step] = wibbled(squares)
        centres = heights[:, half:size:step, half:size:step]
        corners = heights[:, 0:size:step, 0:size:step]
        left = centres + np.roll(centres, 1, axis=1) + corners + np.roll(corners, -1, axis=2)
        heights[:, 0:size:step, half:size:step] = wibbled(left)
        top = centres + np.roll(centres, 1, axis=2) + corners + np.roll(corners, -1, axis=1)
        heights[:, half:size:step, 0:size:step] = wibbled(top)
        step //= 2
        wibble /= decay
    heights -= heights.min(axis=(1, 2), keepdims=True)
    return heights / heights.max(axis=(1, 2), keepdims=True)


def fog(images: Images, rng: np.random.Generator, chunk: int = 256) -> Images:
    """Add 3x a plasma fractal's top-left 28x28 (decay 1.4), then rescale so the brightest ink stays as bright
    relative to the fog (severity 5)."""
    strength = 3.0
    out = np.empty_like(images)
    for start in range(0, len(images), chunk):
        part = images[start : start + chunk]
        fractal = plasma_fractal(rng, len(part))[:, :SIDE, :SIDE]
        brightest = part.max(axis=(1, 2), keepdims=True)
        out[start : start + chunk] = np.clip((part + strength * fractal) * brightest / (brightest + strength), 0, 1)
    return out


def spatter(images: Images, rng: np.random.Generator) -> Images:
    """Mud (severity 4): thresholded, smoothed Gaussian noise makes blobs of grey 63/255 that cover the digit."""
    liquid = _gaussian(rng.normal(0.65, 0.3, images.shape), 1.0)
    liquid[liquid < 0.65] = 0
    mud = _gaussian((liquid > 0.65).astype(np.float64), 1.5)
    mud[mud < 0.8] = 0
    return np.clip(images * (1 - mud) + 63 / 255 * mud, 0, 1)


def line_from_points(c0: float, r0: float, c1: float, r1: float) -> np.ndarray:
    """[28, 28] intensity of an anti-aliased line from (c0, r0) to (c1, r1) (column, row): log(1 - d / 2.3) + 1 at
    vertical distance d, zero outside the columns the segment spans (the authors' definition)."""
    if c1 == c0:
        return np.zeros((SIDE, SIDE))
    cols, rows = np.meshgrid(np.arange(SIDE, dtype=float), np.arange(SIDE, dtype=float), sparse=True)
    slope = (r1 - r0) / (c1 - c0)
    distance = np.clip(np.abs(rows - (slope * (cols - c0) + r0)), 0, 2.3 - 1e-10)
    line = np.clip(np.log(1 - distance / 2.3) + 1, 0, 1)
    line[:, : int(np.floor(c0))] = 0
    line[:, int(np.ceil(c1)) :] = 0
    return line


def dotted_line(images: Images, rng: np.random.Generator) -> Images:
    """A line across the whole width between two random heights, drawn in dashes of two columns."""
    dashes = np.zeros(SIDE, dtype=bool)
    for start in range(2, SIDE, 4):
        dashes[start : start + 2] = True
    out = np.empty_like(images)
    for i, (r0, r1) in enumerate(rng.integers(0, SIDE - 1, size=(len(images), 2))):
        out[i] = images[i] + line_from_points(0, r0, SIDE - 1, r1) * dashes
    return np.clip(out, 0, 1)


def zigzag_lines(r0: int, r1: int) -> np.ndarray:
    """[28, 28] a zigzag of teeth 2 pixels long and 2 high from column 2 at row r0 towards column 25 at r1."""
    length = width = 2.0
    c0, c1 = 2, 25
    theta = np.arctan((r1 - r0) / (c1 - c0))
    d = (c1 - c0) / np.cos(theta)
    ends = [(0.0, 0.0)]
    r_i = 0.0
    for i in range(int((d - length) // (2 * length)) + 1):
        r_i = (-1) ** i * width
        ends.append(((2 * i + 1) * length, r_i))
    last = (2 * length) * (d // (2 * length))
    if d != last:
        ends.append((d, r_i / (2 * (d - last))))
    turn = np.array([[np.cos(theta), -np.sin(theta)], [np.sin(theta), np.cos(theta)]])
    cs, rs = turn @ np.array(ends).T
    cs, rs = cs + c0, rs + r0
    total = np.zeros((SIDE, SIDE))
    for k in range(1, len(cs)):
        total = np.clip(total + line_from_points(cs[k - 1], rs[k - 1], cs[k], rs[k]), 0, 1)
    return total


def zigzag(images: Images, rng: np.random.Generator) -> Images:
    """A zigzag line across the digit at a random height and a small random slope."""
    r0 = rng.integers(0, SIDE - 1, size=len(images))
    r1 = r0 + rng.integers(-5, 5, size=len(images))
    return np.clip(images + np.stack([zigzag_lines(a, b) for a, b in zip(r0, r1, strict=True)]), 0, 1)


def _shifted(values: np.ndarray, dr: int, dc: int) -> np.ndarray:
    """[N, 28, 28]: each pixel's neighbour at (row + dr, column + dc); zero beyond the edge."""
    padded = np.pad(values, ((0, 0), (1, 1), (1, 1)))
    return padded[:, 1 + dr : 1 + dr + SIDE, 1 + dc : 1 + dc + SIDE]


def _sobel(images: Images, axis: int) -> Images:
    """scipy's Sobel derivative along `axis` (1: rows, 2: columns) of each image; `ndimage.sobel` on the batch
    would also smooth across neighbouring images."""
    derivative = ndimage.correlate1d(images, [-1, 0, 1], axis=axis, mode="reflect")
    return ndimage.correlate1d(derivative, [1, 2, 1], axis=3 - axis, mode="reflect")


# Non-maximum suppression of scikit-image's Canny: in each of four sectors of gradient direction, a pixel is kept
# when its magnitude is at least the magnitude interpolated at both neighbours along the gradient. Each sector:
# (|d/drow| >= |d/dcolumn|?, same signs?), then (c1, c2) offsets of the neighbours ahead and behind.
_SECTORS = (
    (True, True, ((1, 0), (1, 1)), ((-1, 0), (-1, -1))),
    (False, True, ((0, 1), (1, 1)), ((0, -1), (-1, -1))),
    (False, False, ((0, 1), (-1, 1)), ((0, -1), (1, -1))),
    (True, False, ((-1, 0), (-1, 1)), ((1, 0), (1, -1))),
)


def canny_edges(images: Images, rng: np.random.Generator) -> Images:
    """Only the digit's outline: scikit-image's Canny edge map with its defaults for a float image (Gaussian sigma
    1 with the edge's bleed corrected, Sobel gradients, non-maximum suppression interpolated along the gradient,
    hysteresis between 0.1 and 0.2 of gradient magnitude, 8-connected; the outermost ring dropped)."""
    smooth = _gaussian(images, 1.0, mode="constant") / _gaussian(np.ones_like(images), 1.0, mode="constant")
    d_row, d_col = _sobel(smooth, axis=1), _sobel(smooth, axis=2)
    magnitude = np.hypot(d_row, d_col)
    abs_row, abs_col = np.abs(d_row), np.abs(d_col)
    inside = np.zeros(images.shape, dtype=bool)
    inside[:, 1:-1, 1:-1] = True
    peak = np.zeros(images.shape, dtype=bool)
    with np.errstate(divide="ignore", invalid="ignore"):  # a flat pixel (no gradient) is no maximum: nan compares false
        for rows_steeper, same_sign, ahead, behind in _SECTORS:
            steeper = abs_row >= abs_col if rows_steeper else abs_row <= abs_col
            signs = ((d_row >= 0) & (d_col >= 0)) | ((d_row <= 0) & (d_col <= 0))
            if not same_sign:
                signs = ((d_row <= 0) & (d_col >= 0)) | ((d_row >= 0) & (d_col <= 0))
            points = inside & steeper & signs
            w = abs_col / abs_row if rows_steeper else abs_row / abs_col
            kept = np.ones(images.shape, dtype=bool)
            for (r1, c1), (r2, c2) in (ahead, behind):
                kept &= _shifted(magnitude, r2, c2) * w + _shifted(magnitude, r1, c1) * (1 - w) <= magnitude
            peak[points] = kept[points]
    weak = peak & (magnitude >= 0.1)
    strong = peak & (magnitude >= 0.2)
    eight_connected = np.zeros((3, 3, 3), dtype=bool)
    eight_connected[1] = True  # within each image, never across the batch
    components, _ = ndimage.label(weak, structure=eight_connected)
    keep = np.zeros(components.max() + 1, dtype=bool)
    keep[np.unique(components[strong])] = True
    keep[0] = False
    return keep[components].astype(np.float64)


Corruption = Callable[[Images, np.random.Generator], Images]
CORRUPTIONS: dict[str, Corruption] = {
    "shot_noise": shot_noise,
    "impulse_noise": impulse_noise,
    "glass_blur": glass_blur,
    "motion_blur": motion_blur,
    "shear": shear,
    "scale": scale,
    "rotate": rotate,
    "brightness": brightness,
    "translate": translate,
    "stripe": stripe,
    "fog": fog,
    "spatter": spatter,
    "dotted_line": dotted_line,
    "zigzag": zigzag,
    "canny_edges": canny_edges,
}


def corruption_seed(name: str, seed: int) -> int:
    """Each corruption's own stream, so one corruption's images do not depend on which others were made."""
    return zlib.crc32(f"{name}/{seed}".encode())


def corrupt(images: np.ndarray, name: str, seed: int = 0) -> np.ndarray:
    """uint8 [N, 28, 28] -> the same images under corruption `name`, uint8 [N, 28, 28], deterministic for `seed`."""
    if name not in CORRUPTIONS:
        raise ValueError(f"{name!r} is not an MNIST-C corruption; choose one of {', '.join(CORRUPTIONS)}")
    rng = np.random.default_rng(corruption_seed(name, seed))
    out = CORRUPTIONS[name](images.astype(np.float64) / 255, rng)
    return np.rint(np.clip(out, 0, 1) * 255).astype(np.uint8)


TEST_SEED = 0  # MNIST-C proper: the test split; reported only
CHOOSING_SEED = 1  # the choosing set: the validation split under other draws


def benchmark_images(split: str, data_dir: str | None = None) -> tuple[np.ndarray, np.ndarray, int]:
    """(uint8 images, labels, seed) to corrupt: "test", MNIST's test split under TEST_SEED (MNIST-C proper, to
    report); "choose", the validation split that `fit` holds out by default (mnist, 5,000 images, split seed 42)
    under CHOOSING_SEED: the only corrupted images a setting may be chosen on. Never the test images for "choose"."""
    from lightning_digits.data.sources import load_split

    if split == "test":
        images, labels = load_split("mnist", data_dir, "test")
        return images, labels, TEST_SEED
    if split != "choose":
        raise ValueError(f"split must be 'test' or 'choose', got {split!r}")
    # Lightning and torch: only the choosing set needs the split, and only a bench makes it.
    from lightning_digits.data.datamodule import SPLIT_SEED, VAL_SIZE, split_indices

    images, labels = load_split("mnist", data_dir, "train")
    _, val_idx = split_indices(len(images), VAL_SIZE, SPLIT_SEED)
    return images[val_idx.numpy()], labels[val_idx.numpy()], CHOOSING_SEED
