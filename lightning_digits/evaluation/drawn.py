"""Digits as a person draws them on the browser page (web/): one pen, the page's 280x280 white pad and its round
20-pixel stroke, each digit a wobbly hand's version of a single-stroke Hershey glyph (Debian's
hershey-fonts-data: the stroke fonts that pen plotters drew with). The hand: its own slant, rotation, width
and size on the pad, placed anywhere on it, and a slow drift of the pen along each stroke, smooth as a moving
hand's, not pixel noise. The page's preprocessing (web/preprocess.js, equal to data/images.py's) then
reads it as it reads a drawing.

Uses numpy and Pillow only. Knows nothing of the other sources of the out-of-distribution set.
"""

from __future__ import annotations

import functools
import math
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

HERSHEY = Path("/usr/share/hershey-fonts")
PAD_SIDE = 280  # web/index.html's canvas
PEN_WIDTH = PAD_SIDE / 14  # web/app.js's lineWidth
_SUPERSAMPLE = 4  # drawn 4x larger and box-averaged, as the canvas antialiases its strokes
_FIRST_GLYPH = 32  # a .jhf file holds the printable ASCII characters in order, from the space
Stroke = np.ndarray  # [points, 2] of (x, y), y growing downwards


@functools.lru_cache(maxsize=16)  # a set draws hundreds of digits from a few files
def _glyph_records(path: Path) -> tuple[str, ...]:
    """A .jhf file's glyphs, one string each: a 5-character number, a 3-character count of coordinate pairs,
    then the pairs; a long glyph continues on the next lines of the file."""
    text = path.read_text(encoding="latin-1").replace("\r", "")
    records, record = [], ""
    for line in filter(None, text.split("\n")):
        record += line
        if len(record) >= 8 and len(record) - 8 >= 2 * int(record[5:8]):
            records.append(record)
            record = ""
    return tuple(records)


def hershey_strokes(path: Path, character: str) -> tuple[Stroke, ...]:
    """One glyph of a .jhf file as its pen strokes, in Hershey units (a digit is about 21 high). The pairs are
    characters offset from "R"; the first is the glyph's left and right edge, and " R" lifts the pen."""
    record = _glyph_records(path)[ord(character) - _FIRST_GLYPH]
    pairs = record[8 : 8 + 2 * int(record[5:8])]
    strokes, current = [], []
    for i in range(2, len(pairs), 2):  # after the edges
        if pairs[i : i + 2] == " R":
            strokes.append(current)
            current = []
        else:
            current.append((ord(pairs[i]) - ord("R"), ord(pairs[i + 1]) - ord("R")))
    strokes.append(current)
    return tuple(np.array(s, dtype=np.float64) for s in strokes if len(s) > 0)


def _resampled(stroke: Stroke, step: float) -> Stroke:
    """Points every `step` units along the stroke (a pointer reports a moving pen every few pixels)."""
    if len(stroke) == 1:
        return stroke
    lengths = np.concatenate([[0.0], np.cumsum(np.hypot(*np.diff(stroke, axis=0).T))])
    at = np.linspace(0.0, lengths[-1], max(2, math.ceil(lengths[-1] / step) + 1))
    return np.stack([np.interp(at, lengths, stroke[:, 0]), np.interp(at, lengths, stroke[:, 1])], axis=1)


def draw_digit(font: Path, digit: int, rng: np.random.Generator) -> Image.Image:
    """The pad after one person drew `digit` in `font`'s shape: "L", 280x280, black ink on white."""
    strokes = [_resampled(s, 0.5) for s in hershey_strokes(font, str(digit))]
    # The hand: slant (positive leans the top right), a little rotation, narrower or wider letters.
    slant, turn = math.tan(math.radians(rng.uniform(-10, 25))), math.radians(rng.uniform(-8, 8))
    shape = np.array([[1.0, -slant], [0.0, 1.0]]) @ np.diag([rng.uniform(0.7, 1.15), 1.0])
    shape = np.array([[math.cos(turn), -math.sin(turn)], [math.sin(turn), math.cos(turn)]]) @ shape
    drifted = []
    for stroke in strokes:
        # A slow drift along the stroke: two sinusoids of random phase per axis, up to about 0.8 units.
        along = np.arange(len(stroke))[:, None] * 0.5
        waves = rng.uniform(0.05, 0.25, size=(2, 2)), rng.uniform(0, 2 * math.pi, size=(2, 2))
        drift = sum(0.4 * np.sin(along * waves[0][k] + waves[1][k]) for k in range(2))
        drifted.append((stroke + drift) @ shape.T)
    points = np.concatenate(drifted)
    low, high = points.min(axis=0), points.max(axis=0)
    height = rng.uniform(0.35, 0.85) * PAD_SIDE  # how large the digit is drawn on the pad
    scale = height / max(high[1] - low[1], 1e-6)
    size = (high - low) * scale
    margin = PEN_WIDTH / 2 + 2
    room = np.maximum(PAD_SIDE - 2 * margin - size, 0.0)
    offset = margin + rng.uniform(0, 1, size=2) * room - low * scale
    big = Image.new("L", (PAD_SIDE * _SUPERSAMPLE,) * 2, 255)
    pen = ImageDraw.Draw(big)
    radius = PEN_WIDTH * _SUPERSAMPLE / 2
    for stroke in drifted:
        xy = [tuple(p) for p in (stroke * scale + offset) * _SUPERSAMPLE]
        if len(xy) > 1:
            pen.line(xy, fill=0, width=round(2 * radius), joint="curve")
        for x, y in (xy[0], xy[-1]):  # round caps
            pen.ellipse((x - radius, y - radius, x + radius, y + radius), fill=0)
    return big.reduce(_SUPERSAMPLE)
