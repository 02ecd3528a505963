"""Finding, downloading and reading a data set's four IDX files, and the rule that sizes the training split.

Looked for, in this order: an explicit folder, the data set's environment variable, system folders (Debian's
Fashion-MNIST), ./data, where torchvision may download them. numpy only (torchvision is imported only to
download), so the reports, the benches and the baselines read the data without Lightning.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lightning_digits.data.idx import read_images_and_labels, read_shape
from lightning_digits.errors import UserError

SPLIT_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}


@dataclass(frozen=True)
class DatasetInfo:
    class_names: tuple[str, ...]
    env_var: str  # points at a folder holding the four files
    torchvision_class: str  # also the folder torchvision downloads into: <root>/<name>/raw
    system_dirs: tuple[str, ...] = ()


DATASETS = {
    "mnist": DatasetInfo(tuple(str(d) for d in range(10)), "LIGHTNING_DIGITS_DATA", "MNIST"),
    "fashion_mnist": DatasetInfo(
        ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"),
        "LIGHTNING_DIGITS_FASHION_DATA",
        "FashionMNIST",
        system_dirs=("/usr/share/datasets/fashion-mnist",),  # Debian's dataset-fashion-mnist
    ),
}
DEFAULT_DATA_ROOT = "data"


def _find_file(folder: Path, name: str, info: DatasetInfo) -> Path | None:
    for where in (folder, folder / info.torchvision_class / "raw"):
        for candidate in (where / name, where / f"{name}.gz"):
            if candidate.is_file():
                return candidate
    return None


def find_split(folder: Path, split: str, info: DatasetInfo) -> tuple[Path, Path] | None:
    """The (images, labels) files of a split in `folder` (flat or torchvision layout, raw or .gz)."""
    found = [_find_file(folder, name, info) for name in SPLIT_FILES[split]]
    return (found[0], found[1]) if all(found) else None


def _missing_files(folder: Path, info: DatasetInfo) -> list[str]:
    return [name for names in SPLIT_FILES.values() for name in names if _find_file(folder, name, info) is None]


def resolve_data_dir(dataset: str, data_dir: str | None, download: bool) -> Path:
    """The folder holding all four IDX files of `dataset`, downloading them there if allowed."""
    info = DATASETS[dataset]
    if data_dir is not None:
        candidates = [Path(data_dir)]
    elif os.environ.get(info.env_var):
        candidates = [Path(os.environ[info.env_var])]
    else:
        candidates = [Path(d) for d in info.system_dirs] + [Path(DEFAULT_DATA_ROOT)]
    for folder in candidates:
        if not _missing_files(folder, info):
            return folder
    target = candidates[-1]
    missing = _missing_files(target, info)
    if download:
        _download(dataset, target)
        if not _missing_files(target, info):
            return target
    raise UserError(
        f"{dataset} files not found in {target.resolve()} (missing: {', '.join(missing)}; raw or .gz, flat or in "
        f"{info.torchvision_class}/raw/); fix: put the four files there or point --data.data_dir / "
        f"{info.env_var} at a folder that has them, or allow --data.download true on a machine with internet"
    )


def load_split(dataset: str, data_dir: str | None, split: str) -> tuple[np.ndarray, np.ndarray]:
    """uint8 images [N, 28, 28] and labels [N] of "train" or "test", from files that must already exist."""
    folder = resolve_data_dir(dataset, data_dir, download=False)
    images_path, labels_path = find_split(folder, split, DATASETS[dataset])
    return read_images_and_labels(images_path, labels_path)


def split_size(dataset: str, data_dir: str | None, split: str) -> int:
    """How many images a split has, from its images file's header alone."""
    folder = resolve_data_dir(dataset, data_dir, download=False)
    images_path, _ = find_split(folder, split, DATASETS[dataset])
    return read_shape(images_path, expected_dims=3)[0]


def _download(dataset: str, root: Path) -> None:
    import torchvision.datasets

    dataset_class = getattr(torchvision.datasets, DATASETS[dataset].torchvision_class)
    try:
        for train in (True, False):
            dataset_class(root=str(root), train=train, download=True)
    except Exception as exc:  # torchvision raises RuntimeError/URLError/OSError depending on the failure
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UserError(
            f"downloading {dataset} into {root.resolve()} failed ({reason}); fix: copy the four "
            f"IDX files there or point --data.data_dir / {DATASETS[dataset].env_var} at a folder that has them"
        ) from exc


def training_set_size(available: int, val_size: int, train_subset: int | None) -> int:
    """How many images `fit` learns from: the training file less the validation split, cut to train_subset.
    One rule for setup() and for the reports, which state it beside the baselines (they learn from the whole
    file)."""
    remaining = available - val_size
    return remaining if train_subset is None else min(remaining, train_subset)
