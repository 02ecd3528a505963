"""An out-of-distribution digit set made offline, from two sources: "scan", digits rendered from the fonts Debian
packages (handwriting-like hands and common faces), with the variation of scanned forms (stroke width, slant,
scale, position, blur, paper tone, ink tone, noise, JPEG) and written as dark ink on light paper, 40-220 px,
PNG, JPEG and BMP files; and "pen", digits drawn on the browser page's pad by a simulated hand (evaluation/drawn.py),
written as the pad's 280x280 PNG. Both reach the model through the same `load_digit` path as a user's images.

Deterministic: image i of digit d of a family is drawn from its own seed (the set's seed, the family's name,
d, i), so a family's images do not depend on which other fonts are installed. Families are split in two
parts: "choose" (for choosing settings) and "report" (for the figures reported); a family is never in both.
Never MNIST. Uses numpy and Pillow only. The fonts come from `make fonts` (Debian packages).
"""

from __future__ import annotations

import math
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont

from lightning_digits.atomic import atomic_path
from lightning_digits.evaluation.drawn import HERSHEY, draw_digit

Part = Literal["choose", "report"]
Source = Literal["scan", "pen"]
_TRUETYPE, _OPENTYPE = Path("/usr/share/fonts/truetype"), Path("/usr/share/fonts/opentype")


@dataclass(frozen=True)
class Family:
    """One source of the set: a hand (or face) and the font files of its styles."""

    name: str
    package: str  # the Debian package that installs it
    part: Part
    files: tuple[Path, ...]

    def installed(self) -> tuple[Path, ...]:
        return tuple(path for path in self.files if path.is_file())

    @property
    def source(self) -> Source:
        """Hershey's stroke fonts are drawn with the browser page's pen, every other font is scanned."""
        return "pen" if self.files[0].suffix == ".jhf" else "scan"


def _family(name: str, package: str, part: Part, folder: Path, *files: str) -> Family:
    return Family(name, package, part, tuple(folder / f for f in files))


_BWHT = _OPENTYPE / "bwht"
# Crossbar sevens and closed-top fours are in both parts (dkg-handwriting chooses, ecolier-court reports), as are
# script hands and plain faces. Not fonts-femkeklaver: its digits are outlines, which nobody writes.
FAMILIES: tuple[Family, ...] = (
    _family("bwht-build", "fonts-bwht", "choose", _BWHT, "BecauseWeBuild-Regular.otf"),
    _family("bwht-connect", "fonts-bwht", "choose", _BWHT, "BecauseWeConnect-Regular.otf"),
    _family("bwht-create", "fonts-bwht", "choose", _BWHT, "BecauseWeCreate-Regular.otf"),
    _family(
        "dkg-handwriting",
        "fonts-dkg-handwriting",
        "choose",
        _TRUETYPE / "fifthhorseman",
        "dkg.ttf",
        "dkgBd.ttf",
        "dkgIt.ttf",
        "dkgBI.ttf",
    ),
    _family(
        "comic-neue",
        "fonts-comic-neue",
        "choose",
        _OPENTYPE / "comic-neue",
        "ComicNeue-Regular.otf",
        "ComicNeue-Bold.otf",
        "ComicNeue-Italic.otf",
        "ComicNeue-Light.otf",
    ),
    _family(
        "dancing-script",
        "fonts-dancingscript",
        "choose",
        _OPENTYPE / "dancingscript",
        "DancingScript-Regular.otf",
        "DancingScript-Bold.otf",
    ),
    _family(
        "dejavu-sans",
        "fonts-dejavu-core",
        "choose",
        _TRUETYPE / "dejavu",
        "DejaVuSans.ttf",
        "DejaVuSans-Bold.ttf",
    ),
    _family(
        "liberation-serif",
        "fonts-liberation",
        "choose",
        _TRUETYPE / "liberation",
        "LiberationSerif-Regular.ttf",
        "LiberationSerif-Bold.ttf",
    ),
    _family("bwht-learn", "fonts-bwht", "report", _BWHT, "BecauseWeLearn-Regular.otf"),
    _family("bwht-mentor", "fonts-bwht", "report", _BWHT, "BecauseWeMentor-Regular.otf"),
    _family("bwht-organize", "fonts-bwht", "report", _BWHT, "BecauseWeOrganize-Regular.otf"),
    _family("ecolier-court", "fonts-ecolier-court", "report", _TRUETYPE / "ecolier-court", "Ecolier-court.ttf"),
    _family("breip", "fonts-breip", "report", _TRUETYPE / "breip", "Breip.ttf", "breipfont.ttf"),
    _family("humor-sans", "fonts-humor-sans", "report", _TRUETYPE / "humor-sans", "Humor-Sans.ttf"),
    _family(
        "kaushan-script", "fonts-kaushanscript", "report", _OPENTYPE / "kaushanscript", "KaushanScript-Regular.otf"
    ),
    _family(
        "dejavu-serif",
        "fonts-dejavu-core",
        "report",
        _TRUETYPE / "dejavu",
        "DejaVuSerif.ttf",
        "DejaVuSerif-Bold.ttf",
    ),
    _family(
        "liberation-sans",
        "fonts-liberation",
        "report",
        _TRUETYPE / "liberation",
        "LiberationSans-Regular.ttf",
        "LiberationSans-Bold.ttf",
    ),
    # Single-stroke Hershey fonts, drawn with the page's pen; near-copies (simplex and its Roman twin, the
    # script in its simplex and complex cuts) stay in one part.
    _family("pen-simplex", "hershey-fonts-data", "choose", HERSHEY, "futural.jhf", "rowmans.jhf"),
    _family("pen-times", "hershey-fonts-data", "choose", HERSHEY, "timesr.jhf", "timesi.jhf"),
    _family("pen-script", "hershey-fonts-data", "report", HERSHEY, "scripts.jhf", "scriptc.jhf"),
    _family("pen-cursive", "hershey-fonts-data", "report", HERSHEY, "cursive.jhf"),
)
FORMATS = {"png": "PNG", "jpg": "JPEG", "bmp": "BMP"}
_GLYPH_SIZE = 96  # px: glyphs are drawn large, then scaled down to the image like a scanner would


def installed_families(part: Part | None = None) -> list[Family]:
    """The families whose fonts are installed here (all of a part when `part` is given)."""
    return [f for f in FAMILIES if f.installed() and (part is None or f.part == part)]


@dataclass(frozen=True)
class RenderedDigit:
    path: Path
    family: str
    part: Part
    label: int
    source: Source


def _glyph_mask(font_path: Path, digit: int, stroke: int) -> Image.Image:
    """The digit as white on black ("L"), cropped to its ink; stroke -1 thins it by a pixel (unless that would
    take most of a thin hand's ink away), 1..3 thickens."""
    font = ImageFont.truetype(str(font_path), _GLYPH_SIZE)
    side = 3 * _GLYPH_SIZE
    mask = Image.new("L", (side, side), 0)
    ImageDraw.Draw(mask).text(
        (side / 2, side / 2), str(digit), fill=255, font=font, anchor="mm", stroke_width=max(stroke, 0), stroke_fill=255
    )
    if stroke < 0:
        thinned = mask.filter(ImageFilter.MinFilter(3))
        if np.asarray(thinned, dtype=np.float64).sum() > 0.5 * np.asarray(mask, dtype=np.float64).sum():
            mask = thinned
    return mask.crop(mask.getbbox())


def _slanted(mask: Image.Image, degrees: float) -> Image.Image:
    """Shear horizontally so that a positive angle leans the top right; the canvas widens to keep all ink."""
    t = math.tan(math.radians(degrees))
    width, height = mask.size
    extra = math.ceil(abs(t) * height)
    offset = 0 if t >= 0 else extra
    # PIL's affine maps each output pixel to an input one: x_in = x_out + t * y_out - t * height - offset.
    return mask.transform(
        (width + extra, height),
        Image.Transform.AFFINE,
        (1, t, -t * height - offset, 0, 1, 0),
        Image.Resampling.BILINEAR,
    )


@dataclass(frozen=True)
class Scan:
    """One rendered digit before it is written: the picture, the file suffix it gets, Pillow's save options."""

    image: Image.Image
    suffix: str
    options: dict


def render_digit(family: Family, digit: int, index: int, seed: int = 0) -> Scan:
    """One image of `digit` in `family`'s hand: a scan-like file, or the page's pad after a pen drew it."""
    rng = np.random.default_rng([seed, zlib.crc32(family.name.encode()), digit, index])
    fonts = family.installed()
    font = fonts[rng.integers(len(fonts))]
    if family.source == "pen":
        return Scan(draw_digit(font, digit, rng), "png", {})
    mask = _glyph_mask(font, digit, int(rng.integers(-1, 4)))
    mask = _slanted(mask, rng.uniform(-12, 18))
    height = int(rng.integers(40, 221))
    width = int(np.clip(height * rng.uniform(0.75, 1.35), 40, 220))
    digit_height = rng.uniform(0.45, 0.85) * height
    scale = min(digit_height / mask.height, 0.9 * width / mask.width)
    size = (max(1, round(mask.width * scale)), max(1, round(mask.height * scale)))
    mask = mask.resize(size, Image.Resampling.LANCZOS)
    canvas = Image.new("L", (width, height), 0)
    canvas.paste(mask, (int(rng.integers(0, width - size[0] + 1)), int(rng.integers(0, height - size[1] + 1))))
    blur = rng.uniform(0, 1.2) * height / 100
    if blur > 0.3:
        canvas = canvas.filter(ImageFilter.GaussianBlur(blur))
    ink_amount = np.asarray(canvas, dtype=np.float64) / 255
    paper, ink = rng.uniform(0.75, 1.0), rng.uniform(0.0, 0.3)
    gray = paper - ink_amount * (paper - ink) + rng.normal(0, rng.uniform(0, 0.025), ink_amount.shape)
    image = Image.fromarray(np.clip(np.round(gray * 255), 0, 255).astype(np.uint8))
    suffix = str(rng.choice(list(FORMATS)))
    return Scan(image, suffix, {"quality": int(rng.integers(40, 96))} if suffix == "jpg" else {})


def write_rendered_set(
    folder: Path, families: list[Family], per_class: int, seed: int = 0, by_family: bool = True
) -> list[RenderedDigit]:
    """`per_class` images of each digit of each family under folder/<family>/<digit>/, or with `by_family`
    false under folder/<digit>/, the layout `--data.extra_dir` reads."""
    written = []
    for family in families:
        for digit in range(10):
            for index in range(per_class):
                scan = render_digit(family, digit, index, seed)
                parent = folder / family.name if by_family else folder
                path = parent / str(digit) / f"{family.name}_{digit}_{index:04d}.{scan.suffix}"
                with atomic_path(path) as tmp:
                    scan.image.save(tmp, FORMATS[scan.suffix], **scan.options)
                written.append(RenderedDigit(path, family.name, family.part, digit, family.source))
    return written
