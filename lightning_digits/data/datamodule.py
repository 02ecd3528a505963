"""The Lightning data module: the seeded train/val split, the loaders, and the per-batch hook that scales and
augments on the device. Finding and reading the files is data/sources.py's job.

The whole set is one uint8 tensor in memory (MNIST is 47 MB), on the training device: no PIL, no per-sample
transform, no workers, and the loaders gather a whole batch with one index instead of 128 item lookups and a stack.
Knows nothing of the model.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from typing import Literal

import lightning.pytorch as pl
import numpy as np
import torch
import torch.distributed as dist
from torch.utils.data import DataLoader, TensorDataset

from lightning_digits.data.augment import AffineRanges, as_model_input, random_affine, rank_seed
from lightning_digits.data.degrade import DegradeRates, random_degrade
from lightning_digits.data.extra import join_extra, read_extra_dir
from lightning_digits.data.images import find_images, load_digit
from lightning_digits.data.ink import InkRanges, random_ink
from lightning_digits.data.sources import DATASETS, load_split, resolve_data_dir, training_set_size
from lightning_digits.data.styles import style_digits_for
from lightning_digits.errors import UserError, check_ranges
from lightning_digits.training.lightning_internals import UnrepeatedDistributedSampler

VAL_SIZE, SPLIT_SEED = 5000, 42  # the validation split `fit` holds out unless told otherwise


def split_indices(
    available: int, val_size: int, split_seed: int, train_subset: int | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """(training, validation) indices into the training file: a seeded permutation, its first `val_size` held out.
    Also what evaluation/mnist_c.py corrupts for its choosing set, so that it is the split `fit` validates on."""
    if val_size >= available:
        raise UserError(f"data.val_size is {val_size} but the training file has only {available} images")
    order = torch.randperm(available, generator=torch.Generator().manual_seed(split_seed))
    train_size = training_set_size(available, val_size, train_subset)
    return order[val_size : val_size + train_size], order[:val_size]


class TensorBatches(TensorDataset):
    """A TensorDataset that a DataLoader reads a batch at a time: the DataLoader calls `__getitems__` with the
    sampler's indices (torch >= 2.0), so samplers, shuffling and Lightning's distributed samplers still apply."""

    def __getitems__(self, indices: list[int]) -> list[torch.Tensor]:
        index = torch.as_tensor(indices, device=self.tensors[0].device)
        return [tensor[index] for tensor in self.tensors]


def _already_collated(batch: list[torch.Tensor]) -> list[torch.Tensor]:
    return batch


def _batch_loader(dataset: TensorBatches, batch_size: int, **kwargs) -> DataLoader:
    # `__getitems__` already returns the batch; the default collate would stack it again.
    return DataLoader(dataset, batch_size=batch_size, collate_fn=_already_collated, **kwargs)


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
        val_size: int = VAL_SIZE,
        split_seed: int = SPLIT_SEED,
        train_subset: int | None = None,
        rotation: float = 10.0,
        shift: float = 0.1,
        scale: float = 0.1,
        slant: float = 0.0,
        elastic: float = 0.0,
        elastic_sigma: float = 4.0,
        stroke: float = 0.0,
        background: float = 0.0,
        noise: float = 0.0,
        blur: float = 0.0,
        lines: float = 0.0,
        stripes: float = 0.0,
        outline: float = 0.0,
        styles: float = 0.0,
        predict_path: str | None = None,
        extra_dir: str | None = None,
        extra_weight: float = 0.1,
        extra_val_fraction: float = 0.2,
    ) -> None:
        super().__init__()
        check_ranges(
            "data.",
            {
                "batch_size": (batch_size, batch_size >= 1, "at least 1"),
                "eval_batch_size": (eval_batch_size, eval_batch_size >= 1, "at least 1"),
                "val_size": (val_size, val_size >= 1, "at least 1"),
                "train_subset": (
                    train_subset,
                    train_subset is None or train_subset >= 1,
                    "at least 1 (or null for all)",
                ),
                "styles": (styles, 0 <= styles < 1, "in [0, 1)"),
                "extra_weight": (extra_weight, 0 <= extra_weight < 1, "in [0, 1)"),
                "extra_val_fraction": (extra_val_fraction, 0 <= extra_val_fraction < 1, "in [0, 1)"),
            },
        )
        if styles > 0 and dataset != "mnist":
            raise UserError(
                f"data.styles: the style digits are digits, not {dataset}'s classes; "
                "use -c fashion or set --data.styles 0"
            )
        self.augmentation = AffineRanges(rotation=rotation, shift=shift, scale=scale)
        self.ink = InkRanges(slant=slant, elastic=elastic, elastic_sigma=elastic_sigma, stroke=stroke)
        self.degrade = DegradeRates(background, noise, blur, lines, stripes, outline)
        self.save_hyperparameters()
        self.class_names = DATASETS[dataset].class_names
        self.predict_names: list[str] = []
        self._augment_generator: torch.Generator | None = None

    def prepare_data(self) -> None:
        if self._predicting_on_user_images():
            return  # predicting on one's own images needs no data set, nor a download of one
        resolve_data_dir(self.hparams.dataset, self.hparams.data_dir, self.hparams.download)

    def _predicting_on_user_images(self) -> bool:
        return self.hparams.predict_path is not None and self.trainer is not None and self.trainer.predicting

    def _load_split(self, split: str) -> tuple[torch.Tensor, torch.Tensor]:
        images, labels = load_split(self.hparams.dataset, self.hparams.data_dir, split)
        return torch.from_numpy(images.copy()), torch.from_numpy(labels.astype(np.int64))

    def setup(self, stage: str) -> None:
        if stage in ("fit", "validate"):
            images, labels = self._load_split("train")
            train_idx, val_idx = split_indices(
                len(images), self.hparams.val_size, self.hparams.split_seed, self.hparams.train_subset
            )
            train, val = (images[train_idx], labels[train_idx]), (images[val_idx], labels[val_idx])
            if self.hparams.styles > 0:
                styles = style_digits_for(len(train[1]), self.hparams.styles, self.hparams.split_seed)
                train, val = join_extra(train, val, styles, self.hparams.styles, 0.0, 0, "data.styles")
            if self.hparams.extra_dir is not None:
                extra = read_extra_dir(self.hparams.extra_dir, len(self.class_names))
                train, val = join_extra(
                    train,
                    val,
                    extra,
                    self.hparams.extra_weight,
                    self.hparams.extra_val_fraction,
                    self.hparams.split_seed,
                )
            self.train_set, self.val_set = TensorBatches(*train), TensorBatches(*val)
        if stage == "test" or (stage == "predict" and self.hparams.predict_path is None):
            self.test_set = TensorBatches(*self._load_split("test"))
        if stage == "predict":
            self.predict_set, self.predict_names = self._predict_inputs()
        if self.trainer is not None:
            self._to_device(self.trainer.strategy.root_device)

    def _to_device(self, device: torch.device) -> None:
        """Every split on the training device, once (MNIST is 47 MB of uint8): the loaders then gather each batch
        there, instead of on the host and a copy from pageable memory per batch. A no-op on the CPU."""
        for name in ("train_set", "val_set", "test_set", "predict_set"):
            if hasattr(self, name):
                setattr(self, name, TensorBatches(*(t.to(device) for t in getattr(self, name).tensors)))

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
        images = as_model_input(images)
        if self.trainer is not None and self.trainer.training:
            images = random_affine(images, self.augmentation, self._generator(images.device))
            images = random_ink(images, self.ink, self._generator(images.device))
            images = random_degrade(images, self.degrade, self._generator(images.device))
        return [images, second]

    def _generator(self, device: torch.device) -> torch.Generator:
        # Its own generator, offset by rank: under DDP every rank is seeded alike, but its draws must differ.
        if self._augment_generator is None or self._augment_generator.device != device:
            rank = self.trainer.global_rank if self.trainer is not None else 0
            self._augment_generator = torch.Generator(device).manual_seed(rank_seed(torch.initial_seed(), rank))
        return self._augment_generator


def fit_validation_set(data_hparams: Mapping) -> tuple[np.ndarray, np.ndarray]:
    """The (images, labels) a fit validated on, rebuilt from its checkpoint's data settings, all of them (the
    split, and the held-out part of --data.extra_dir's digits): what benches choose on after a fit. Never downloads."""
    accepted = inspect.signature(DigitsDataModule).parameters
    settings = {k: v for k, v in data_hparams.items() if k in accepted and k != "download"}
    module = DigitsDataModule(**settings, download=False)
    module.setup("fit")
    images, labels = module.val_set.tensors
    return images.numpy(), labels.numpy()
