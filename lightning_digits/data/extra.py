"""A user's own digits joining training (`--data.extra_dir my_digits/`): one sub-folder per class, named for its
index (0/ .. 9/), of any image files `predict` reads, each read by the same `load_digit` (MNIST's recipe).

Of each class, a fixed fraction (rounded down, but at least one of a class of two or more; seeded) is held out into
the validation set; the rest joins the
training set, repeated so that it makes about `weight` of each epoch's images: a few hundred digits would
otherwise be lost among 55,000. Knows nothing of the model or of Lightning.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from lightning_digits.data.images import IMAGE_SUFFIXES, find_images, load_digit
from lightning_digits.errors import UserError

_log = logging.getLogger(__name__)
_HINT = "give a folder with one sub-folder of images per class, named 0, 1, ... 9"


@dataclass(frozen=True)
class ExtraDigits:
    images: torch.Tensor  # uint8 [N, 28, 28], white on black like the IDX files
    labels: torch.Tensor  # int64 [N]


def read_extra_dir(folder: Path | str, num_classes: int = 10) -> ExtraDigits:
    """Every image of every class folder, in a fixed order (class, then file name)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise UserError(f"data.extra_dir: {folder} is not a folder; {_HINT}")
    names = [str(i) for i in range(num_classes)]
    images, labels = [], []
    for entry in sorted(folder.iterdir()):
        if entry.name.startswith("."):
            continue  # hidden: a collection's lock file, an editor's folder, a writer's temporary file
        if not entry.is_dir():
            _log.warning("data.extra_dir: skipping %s: not a class folder", entry)
            continue
        if entry.name not in names:
            raise UserError(
                f"data.extra_dir: {entry} is not a class folder (its name must be a class index, 0 to "
                f"{num_classes - 1}); rename it or move it out of {folder}"
            )
        paths = [p for p in sorted(entry.iterdir()) if p.is_file() and not p.name.startswith(".")]
        if not any(p.suffix.lower() in IMAGE_SUFFIXES for p in paths):
            raise UserError(
                f"data.extra_dir: {entry} has no {'/'.join(IMAGE_SUFFIXES)} images; add some or remove the folder"
            )
        for path in find_images(str(entry)):
            images.append(load_digit(path))
            labels.append(int(entry.name))
    if not images:
        raise UserError(f"data.extra_dir: {folder} has no class folders; {_HINT}")
    # Stored like the IDX files (uint8), so that both go through one batch hook.
    stacked = np.round(np.stack(images) * 255).astype(np.uint8)
    return ExtraDigits(torch.from_numpy(stacked), torch.tensor(labels, dtype=torch.int64))


def held_out(labels: torch.Tensor, fraction: float, seed: int) -> torch.Tensor:
    """A boolean mask of the images that go to validation, seeded: of each class floor(fraction * count), but at
    least one where there are two or more (so that every class is tested), and never all of them."""
    generator = torch.Generator().manual_seed(seed)
    mask = torch.zeros(len(labels), dtype=torch.bool)
    for label in labels.unique():
        members = torch.nonzero(labels == label).flatten()
        count = min(len(members) - 1, max(1, int(fraction * len(members)))) if fraction > 0 else 0
        chosen = members[torch.randperm(len(members), generator=generator)[:count]]
        mask[chosen] = True
    return mask


def repeats(base_count: int, extra_count: int, weight: float) -> int:
    """How many times each of `extra_count` images is repeated beside `base_count` others so that they make
    about `weight` of the whole (at least once)."""
    if extra_count == 0:
        return 0
    return max(1, round(weight / (1 - weight) * base_count / extra_count))


Split = tuple[torch.Tensor, torch.Tensor]


def join_extra(
    train: Split,
    val: Split,
    extra: ExtraDigits,
    weight: float,
    val_fraction: float,
    seed: int,
    source: str = "data.extra_dir",
):
    """(train, val) with the extra digits added: the held-out part to val once, the rest to train repeated;
    `source` names them in the log line."""
    to_val = held_out(extra.labels, val_fraction, seed)
    times = repeats(len(train[1]), int((~to_val).sum()), weight)
    extra_train = [t[~to_val].repeat(times, *[1] * (t.ndim - 1)) for t in (extra.images, extra.labels)]
    joined_train = (torch.cat([train[0], extra_train[0]]), torch.cat([train[1], extra_train[1]]))
    joined_val = (torch.cat([val[0], extra.images[to_val]]), torch.cat([val[1], extra.labels[to_val]]))
    _log.info(
        "%s: %d images; %d to training, each taken %dx (%d of %d training images, %.1f%%), %d to validation",
        source,
        len(extra.labels),
        int((~to_val).sum()),
        times,
        len(extra_train[1]),
        len(joined_train[1]),
        100 * len(extra_train[1]) / len(joined_train[1]),
        int(to_val.sum()),
    )
    return joined_train, joined_val
