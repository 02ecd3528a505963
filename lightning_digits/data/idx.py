"""Reading and writing IDX files (MNIST's format), with the checks that turn a bad file into a clear error.

Knows nothing of torch or Lightning: arrays in, arrays out.
"""

from __future__ import annotations

import gzip
import zlib
from pathlib import Path

import numpy as np

from lightning_digits.errors import UserError

# The third byte of the magic number is the element type; MNIST only uses unsigned bytes (0x08).
_UBYTE = 0x08
IMAGE_MAGIC = 0x00000803  # ubyte, 3 dimensions
LABEL_MAGIC = 0x00000801  # ubyte, 1 dimension


def _read_bytes(path: Path) -> bytes:
    try:
        raw = path.read_bytes()
        return gzip.decompress(raw) if raw[:2] == b"\x1f\x8b" else raw
    except (OSError, EOFError, zlib.error) as exc:
        raise UserError(f"{path}: cannot read it ({exc}); the file is corrupt: download it again") from exc


def _shape(path: Path, head: bytes, expected_dims: int) -> tuple[int, ...]:
    """The shape an IDX header gives, after checking its magic number (`head`: the file's first bytes, or all)."""
    if len(head) < 4:
        raise UserError(f"{path}: only {len(head)} bytes, not an IDX file; download it again")
    magic = int.from_bytes(head[:4], "big")
    expected_magic = (_UBYTE << 8) | expected_dims
    if magic != expected_magic:
        raise UserError(
            f"{path}: magic number 0x{magic:08x}, expected 0x{expected_magic:08x} for an IDX file of "
            f"{expected_dims}-dimensional unsigned bytes; is it the right file?"
        )
    if len(head) < 4 + 4 * expected_dims:
        raise UserError(f"{path}: truncated inside its header; download it again")
    return tuple(int.from_bytes(head[4 + 4 * i : 8 + 4 * i], "big") for i in range(expected_dims))


def read_shape(path: Path | str, expected_dims: int) -> tuple[int, ...]:
    """The shape in an IDX file's header (its first dimension is the count), without reading the rest."""
    path = Path(path)
    size = 4 + 4 * expected_dims
    try:
        with open(path, "rb") as file:
            head = file.read(size)
        if head[:2] == b"\x1f\x8b":
            with gzip.open(path, "rb") as file:
                head = file.read(size)
    except (OSError, EOFError, zlib.error) as exc:
        raise UserError(f"{path}: cannot read it ({exc}); the file is corrupt: download it again") from exc
    return _shape(path, head, expected_dims)


def read_idx(path: Path | str, expected_dims: int) -> np.ndarray:
    """Read one IDX file (gzipped or raw) of unsigned bytes and check its header against its length."""
    path = Path(path)
    data = _read_bytes(path)
    shape = _shape(path, data, expected_dims)
    header_len = 4 + 4 * expected_dims
    expected_len = header_len + int(np.prod(shape))
    if len(data) != expected_len:
        raise UserError(
            f"{path}: header says shape {shape} ({expected_len} bytes) but the file has {len(data)} bytes; "
            "it is truncated or corrupt: download it again"
        )
    return np.frombuffer(data, dtype=np.uint8, offset=header_len).reshape(shape)


def read_images_and_labels(images_path: Path, labels_path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Read a pair of IDX files and check that they describe the same 28x28 digits with labels 0-9."""
    images = read_idx(images_path, expected_dims=3)
    labels = read_idx(labels_path, expected_dims=1)
    if images.shape[1:] != (28, 28):
        raise UserError(f"{images_path}: images are {images.shape[1]}x{images.shape[2]}, expected 28x28")
    if len(images) != len(labels):
        raise UserError(
            f"{images_path} has {len(images)} images but {labels_path} has {len(labels)} labels; "
            "the two files must come from the same set"
        )
    if labels.size and labels.max() > 9:
        bad = int(np.argmax(labels > 9))
        raise UserError(f"{labels_path}: label {labels[bad]} at index {bad}; labels must be 0-9")
    return images, labels


def write_idx(path: Path | str, array: np.ndarray) -> None:
    """Write an array of unsigned bytes as an IDX file (gzipped if the name ends in .gz); used by tests."""
    array = np.ascontiguousarray(array, dtype=np.uint8)
    header = ((_UBYTE << 8) | array.ndim).to_bytes(4, "big")
    header += b"".join(int(n).to_bytes(4, "big") for n in array.shape)
    payload = header + array.tobytes()
    path = Path(path)
    path.write_bytes(gzip.compress(payload) if path.suffix == ".gz" else payload)
