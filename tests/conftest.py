"""Shared fixtures: tiny IDX data sets written by the tests, the real MNIST from ../shared, and a CLI runner."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from lightning_digits.data.idx import write_idx

REPO = Path(__file__).resolve().parent.parent
REAL_MNIST = Path(os.environ.get("LIGHTNING_DIGITS_DATA", REPO.parent / "shared" / "data" / "mnist"))


def synthetic_digits(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Images whose class is a bright bar at one of ten positions: learnable, valid, and fast to make."""
    rng = np.random.default_rng(seed)
    labels = (np.arange(n) % 10).astype(np.uint8)
    images = rng.integers(0, 40, size=(n, 28, 28), dtype=np.uint8)
    for i, label in enumerate(labels):
        images[i, 4:24, 3 + 2 * label : 5 + 2 * label] = 255
    return images, labels


def write_dataset(folder: Path, n_train: int = 300, n_test: int = 100, gz: bool = True) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    suffix = ".gz" if gz else ""
    for prefix, n, seed in (("train", n_train, 0), ("t10k", n_test, 1)):
        images, labels = synthetic_digits(n, seed)
        write_idx(folder / f"{prefix}-images-idx3-ubyte{suffix}", images)
        write_idx(folder / f"{prefix}-labels-idx1-ubyte{suffix}", labels)
    return folder


@pytest.fixture
def tiny_data(tmp_path: Path) -> Path:
    return write_dataset(tmp_path / "tiny")


@pytest.fixture
def real_mnist() -> Path:
    if not (REAL_MNIST / "t10k-images-idx3-ubyte.gz").is_file():
        pytest.skip(f"real MNIST not found at {REAL_MNIST}; set LIGHTNING_DIGITS_DATA")
    return REAL_MNIST


def run_cli(*args: str, cwd: Path | None = None, timeout: float = 300, env: dict | None = None):
    """Run the real command in a subprocess, as a user would."""
    full_env = {**os.environ, **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "lightning_digits", *args],
        capture_output=True,
        text=True,
        cwd=cwd or REPO,
        timeout=timeout,
        env=full_env,
    )


# Small, fast training settings for CLI tests (a narrow network, no extra loggers' cost worth noting).
TINY_MODEL = ["--model.channels=[8,16]", "--model.hidden=32", "--trainer.precision=32-true"]
