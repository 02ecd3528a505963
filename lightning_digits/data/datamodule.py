"""Where the data comes from (a folder, an environment variable, or a torchvision download), the seeded
train/val split, the loaders, and the per-batch hook that scales and augments on the device.

The whole set is one uint8 tensor in memory (MNIST is 47 MB): no PIL, no per-sample transform, no workers,
and the loaders gather a whole batch with one index instead of 128 item lookups and a stack.
Knows nothing of the model.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import lightning.pytorch as pl
import numpy as np
import torch
import torch.distributed as dist
from lightning.pytorch.overrides.distributed import UnrepeatedDistributedSampler
from torch.utils.data import DataLoader, TensorDataset

from lightning_digits.data.augment import AffineRanges, random_affine
from lightning_digits.data.idx import read_images_and_labels
from lightning_digits.data.images import find_images, load_digit
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


class TensorBatches(TensorDataset):
    """A TensorDataset that a DataLoader reads a batch at a time: the DataLoader calls `__getitems__` with the
    sampler's indices (torch >= 2.0), so samplers, shuffling and Lightning's distributed samplers still apply."""

    def __getitems__(self, indices: list[int]) -> list[torch.Tensor]:
        index = torch.as_tensor(indices)
        return [tensor[index] for tensor in self.tensors]


def _already_collated(batch: list[torch.Tensor]) -> list[torch.Tensor]:
    return batch


def _batch_loader(dataset: TensorBatches, batch_size: int, **kwargs) -> DataLoader:
    # `__getitems__` already returns the batch; the default collate would stack it again.
    return DataLoader(dataset, batch_size=batch_size, collate_fn=_already_collated, **kwargs)


def training_set_size(available: int, val_size: int, train_subset: int | None) -> int:
    """How many images `fit` learns from: the training file less the validation split, cut to train_subset.
    One rule for setup() and for the reports, which state it beside the baselines (they learn from the whole
    file)."""
    remaining = available - val_size
    return remaining if train_subset is None else min(remaining, train_subset)


class DigitsDataModule(pl.LightningDataModule):
    """MNIST (or Fashion-MNIST) from IDX files: 55k/5k seeded train/val split, the official 10k test set,
    and predict on the test set or on user images (`predict_path`)."""

    def __init__(
        self,
        data_dir: str | None = None,
        dataset: Literal["mnist", "fashion_mnist"] = "mnist",
        download: bool = True,
        batch_size: int = 128,
        eval_batch_size: int = 1000,
        val_size: int = 5000,
        split_seed: int = 42,
        train_subset: int | None = None,
        rotation: float = 10.0,
        shift: float = 0.1,
        scale: float = 0.1,
        predict_path: str | None = None,
    ) -> None:
        super().__init__()
        for name, value in (("batch_size", batch_size), ("eval_batch_size", eval_batch_size), ("val_size", val_size)):
            if value < 1:
                raise UserError(f"data.{name} must be at least 1, got {value}")
        if train_subset is not None and train_subset < 1:
            raise UserError(f"data.train_subset must be at least 1 (or null for all), got {train_subset}")
        try:
            self.augmentation = AffineRanges(rotation=rotation, shift=shift, scale=scale)
        except ValueError as exc:
            raise UserError(f"data.{exc}") from exc
        self.save_hyperparameters()
        self.class_names = DATASETS[dataset].class_names
        self.predict_names: list[str] = []
        self._augment_generator: torch.Generator | None = None

    def prepare_data(self) -> None:
        resolve_data_dir(self.hparams.dataset, self.hparams.data_dir, self.hparams.download)

    def _load_split(self, split: str) -> tuple[torch.Tensor, torch.Tensor]:
        images, labels = load_split(self.hparams.dataset, self.hparams.data_dir, split)
        return torch.from_numpy(images.copy()), torch.from_numpy(labels.astype(np.int64))

    def setup(self, stage: str) -> None:
        if stage in ("fit", "validate"):
            images, labels = self._load_split("train")
            val_size = self.hparams.val_size
            if val_size >= len(images):
                raise UserError(f"data.val_size is {val_size} but the training file has only {len(images)} images")
            order = torch.randperm(len(images), generator=torch.Generator().manual_seed(self.hparams.split_seed))
            train_size = training_set_size(len(images), val_size, self.hparams.train_subset)
            train_idx, val_idx = order[val_size : val_size + train_size], order[:val_size]
            self.train_set = TensorBatches(images[train_idx], labels[train_idx])
            self.val_set = TensorBatches(images[val_idx], labels[val_idx])
        if stage == "test" or (stage == "predict" and self.hparams.predict_path is None):
            self.test_set = TensorBatches(*self._load_split("test"))
        if stage == "predict":
            self.predict_set, self.predict_names = self._predict_inputs()

    def _predict_inputs(self) -> tuple[TensorBatches, list[str]]:
        if self.hparams.predict_path is None:
            images = self.test_set.tensors[0]
            names = [f"test[{i}]" for i in range(len(images))]
        else:
            paths = find_images(self.hparams.predict_path)
            images = torch.from_numpy(np.stack([load_digit(p) for p in paths]))
            names = [str(p) for p in paths]
        return TensorBatches(images, torch.arange(len(images))), names

    def train_dataloader(self) -> DataLoader:
        return _batch_loader(self.train_set, self.hparams.batch_size, shuffle=True, drop_last=True)

    def _eval_loader(self, dataset: TensorBatches) -> DataLoader:
        return _batch_loader(dataset, self.hparams.eval_batch_size)

    def val_dataloader(self) -> DataLoader:
        return self._eval_loader(self.val_set)

    def test_dataloader(self) -> DataLoader:
        if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
            # Lightning's default sampler pads the shards with repeated images; the test figure must count each
            # image once, so that it equals the single-process figure exactly. (Not for validation during fit:
            # DDP syncs buffers on every forward there, and shards one batch apart would deadlock.)
            sampler = UnrepeatedDistributedSampler(self.test_set, shuffle=False)
            return _batch_loader(self.test_set, self.hparams.eval_batch_size, sampler=sampler)
        return self._eval_loader(self.test_set)

    def predict_dataloader(self) -> DataLoader:
        return self._eval_loader(self.predict_set)

    def on_after_batch_transfer(self, batch: list[torch.Tensor], dataloader_idx: int) -> list[torch.Tensor]:
        """uint8 [N, 28, 28] -> float [N, 1, 28, 28] in [0, 1]; training batches also get augmented."""
        images, second = batch
        if images.dtype == torch.uint8:
            images = images.float().div_(255)
        if images.ndim == 3:
            images = images.unsqueeze(1)
        if self.trainer is not None and self.trainer.training:
            images = random_affine(images, self.augmentation, self._generator(images.device))
        return [images, second]

    def _generator(self, device: torch.device) -> torch.Generator:
        # Its own generator, offset by rank: under DDP every rank is seeded alike, but its draws must differ.
        if self._augment_generator is None or self._augment_generator.device != device:
            rank = self.trainer.global_rank if self.trainer is not None else 0
            seed = torch.initial_seed() + 7919 * rank
            self._augment_generator = torch.Generator(device).manual_seed(seed % 2**63)
        return self._augment_generator
