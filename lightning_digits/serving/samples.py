"""A person's labelled digits, collected in a folder of the class layout (DIR/0/ .. DIR/9/, as `adapt DIR` and
`fit --data.extra_dir` read it): store one image as a PNG file under a new name, atomically and never over
another file, up to a cap per class; count each class. Both doors use it, the page's server (`demo
--collect_dir`) and POST /samples (`serve --collect_dir`), from any number of processes at once.
Knows nothing of HTTP, the model or torch.
"""

from __future__ import annotations

import fcntl
import io
import os
import secrets
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from PIL import Image

from lightning_digits.atomic import atomic_path

LABELS = tuple(str(digit) for digit in range(10))
# Per class: MNIST's training set has about 6,000 of each; a person's collection far beyond that is a runaway
# client rather than handwriting, and each file can be as large as an upload.
DEFAULT_LIMIT = 10_000
_PNG_MODES = {"1", "L", "LA", "P", "RGB", "RGBA", "I;16", "I;16B"}  # what Pillow writes as PNG unchanged


class Full(Exception):
    """The class folder holds its cap of files: nothing was written."""


def as_png(data: bytes) -> bytes:
    """An image file's bytes -> a PNG file's. A PNG is kept byte for byte (the page's drawing as drawn); any
    other format is encoded as PNG, in RGB(A) where PNG cannot hold its mode. The caller has checked that it
    is an image with a digit on it."""
    with Image.open(io.BytesIO(data)) as image:
        if image.format == "PNG":
            return data
        if image.mode not in _PNG_MODES:
            image = image.convert("RGBA" if image.has_transparency_data else "RGB")
        buffer = io.BytesIO()
        image.save(buffer, format="PNG")
        return buffer.getvalue()


class Samples:
    """The collection in `folder`: `limit` files at most in each class folder."""

    def __init__(self, folder: Path | str, limit: int = DEFAULT_LIMIT) -> None:
        self.folder, self.limit = Path(folder), limit

    def store(self, label: str, png: bytes) -> Path:
        """Write `png` as a new file of class `label` (one of LABELS) -> its path. Raises Full at the cap."""
        class_dir = self.folder / label
        class_dir.mkdir(parents=True, exist_ok=True)
        with _locked(class_dir):  # counting and writing as one step: two writers at cap - 1 keep the cap
            if (count := _count(class_dir)) >= self.limit:
                raise Full(
                    f"{class_dir} holds {count:,} digits, the cap (--collect_limit {self.limit:,}); "
                    "nothing was written: move some away or raise the cap"
                )
            while True:  # a name taken meanwhile (a clock set back) gets another: nothing is overwritten
                path = class_dir / f"{time.strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(4)}.png"
                try:
                    with atomic_path(path, overwrite=False) as tmp:
                        tmp.write_bytes(png)
                    return path
                except FileExistsError:
                    continue

    def counts(self) -> dict[str, int]:
        """Label -> files stored, for every label (0 where the folder is absent)."""
        return {label: _count(self.folder / label) for label in LABELS}


def _count(class_dir: Path) -> int:
    """PNG files in the folder, not counting the hidden temporary files of writes in progress."""
    try:
        with os.scandir(class_dir) as entries:
            return sum(1 for entry in entries if entry.name.endswith(".png") and not entry.name.startswith("."))
    except FileNotFoundError:
        return 0


@contextmanager
def _locked(folder: Path) -> Iterator[None]:
    """An exclusive lock on the folder itself (no lock file to leave behind), across processes."""
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)
