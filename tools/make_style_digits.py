"""Write lightning_digits/data/style_digits.npz, the digit styles `fit --data.styles` trains on: `--per_class`
digits of each class of each *choose* family of the out-of-distribution set (never a report family), rendered
with seed 2 (the set itself uses 0), each written as its file and read back through `load_digit` as `predict`
reads a user's image. Needs Debian's fonts (`make fonts`); deterministic: the same fonts give the same arrays.

    .venv/bin/python tools/make_style_digits.py
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np

from lightning_digits.atomic import atomic_path
from lightning_digits.data.images import load_digit
from lightning_digits.data.styles import STYLE_DIGITS_FILE, STYLE_DIGITS_SEED
from lightning_digits.errors import UserError
from lightning_digits.evaluation.rendered import FAMILIES, installed_families, write_rendered_set

OUTPUT = Path(__file__).resolve().parents[1] / "lightning_digits" / "data" / STYLE_DIGITS_FILE


def render_style_digits(per_class: int) -> dict[str, np.ndarray]:
    """The arrays of the file: images (uint8 [N, 28, 28]), labels, and each image's family and index."""
    families = installed_families("choose")
    missing = [f.name for f in FAMILIES if f.part == "choose" and f not in families]
    if missing:
        raise UserError(f"the fonts of {', '.join(missing)} are not installed; run `make fonts` first")
    with tempfile.TemporaryDirectory() as folder:
        written = write_rendered_set(Path(folder), families, per_class, STYLE_DIGITS_SEED)
        images = np.stack([np.round(load_digit(d.path) * 255).astype(np.uint8) for d in written])
    return {
        "images": images,
        "labels": np.array([d.label for d in written], dtype=np.uint8),
        "families": np.array([d.family for d in written]),
        "index": np.array([int(d.path.stem.rsplit("_", 1)[1]) for d in written], dtype=np.int32),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--per_class", type=int, default=40, help="digits of each class of each family")
    parser.add_argument("--output", type=Path, default=OUTPUT)
    args = parser.parse_args()
    arrays = render_style_digits(args.per_class)
    with atomic_path(args.output) as tmp, open(tmp, "wb") as file:
        np.savez_compressed(file, **arrays)
    print(f"{args.output}: {len(arrays['labels'])} digits of {len(set(arrays['families']))} families")


if __name__ == "__main__":
    main()
