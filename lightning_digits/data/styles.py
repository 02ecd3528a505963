"""Digit styles MNIST's writers rarely use (sevens with a crossbar, ones with a flag and a base, closed fours, print
and script hands) joining training (`--data.styles WEIGHT`): digits rendered from the fonts of the *choose* part of
the out-of-distribution set (evaluation/rendered.py), shipped with the package as 28x28 arrays, so that `fit`
needs no font package. The report part's families are never among them.

`tools/make_style_digits.py` writes the file from Debian's fonts (`make fonts`), each image through `load_digit`
as `predict` reads a user's file. They join the training set only, repeated to make about `weight` of each
epoch's images (as `--data.extra_dir`'s digits do); validation stays MNIST's, so that the checkpoint is chosen
and validation figures compared as without them. Knows nothing of the model or of Lightning.
"""

from __future__ import annotations

from importlib import resources

import numpy as np
import torch

from lightning_digits.data.extra import ExtraDigits

STYLE_DIGITS_FILE = "style_digits.npz"
STYLE_DIGITS_SEED = 2  # the rendered set's seed: 0 is the out-of-distribution set's, 1 the extra_dir experiment's


def style_digits_path():
    """The shipped file, inside the installed package (a checkout, an editable install or a wheel)."""
    return resources.files("lightning_digits.data") / STYLE_DIGITS_FILE


def read_style_digits() -> tuple[ExtraDigits, np.ndarray]:
    """The shipped digits (uint8 [N, 28, 28], white on black like the IDX files) and the family of each."""
    with resources.as_file(style_digits_path()) as path, np.load(path) as shipped:
        images, labels, families = shipped["images"], shipped["labels"], shipped["families"]
    return ExtraDigits(torch.from_numpy(images), torch.from_numpy(labels.astype(np.int64))), families


def style_digits_for(base_count: int, weight: float, seed: int) -> ExtraDigits:
    """The shipped digits that make `weight` of the training set beside `base_count` other images: each of them
    as often as fits, then a seeded sample of the rest. A quick run on a few hundred images
    (`--data.train_subset`) gets a few dozen, not four thousand."""
    styles, _ = read_style_digits()
    wanted = max(1, round(weight / (1 - weight) * base_count))
    whole, rest = divmod(wanted, len(styles.labels))
    sample = torch.randperm(len(styles.labels), generator=torch.Generator().manual_seed(seed))[:rest]
    chosen = torch.cat([torch.arange(len(styles.labels)).repeat(whole), sample])
    return ExtraDigits(styles.images[chosen], styles.labels[chosen])
