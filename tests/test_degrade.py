"""The page-and-camera augmentations of data/degrade.py: each keeps the batch's shape and range, is repeatable from
a generator, does what it says on a plain case, and reaches the training batches through --data.* options."""

from __future__ import annotations

import pytest
import torch

from lightning_digits.data.degrade import KINDS, DegradeRates, random_degrade
from lightning_digits.errors import UserError

pytestmark = pytest.mark.unit  # pure functions: `make test-unit` runs them


def bar_digits(n: int = 16) -> torch.Tensor:
    images = torch.zeros(n, 1, 28, 28)
    images[:, :, 6:22, 12:16] = 1.0  # a "1"
    return images


@pytest.mark.parametrize("name", list(KINDS))
def test_each_kind_keeps_shape_and_range_and_repeats_from_its_generator(name):
    images = bar_digits()
    once = KINDS[name](images, torch.Generator().manual_seed(3))
    assert once.shape == images.shape and once.dtype == images.dtype
    assert once.min() >= 0 and once.max() <= 1
    assert torch.equal(once, KINDS[name](images, torch.Generator().manual_seed(3)))
    assert not torch.equal(once, images)


def test_background_lifts_the_paper_and_keeps_the_digit_brighter_than_it():
    out = KINDS["background"](bar_digits(), torch.Generator().manual_seed(0))
    paper, ink = out[:, 0, 2, 2], out[:, 0, 14, 13]
    assert (paper >= 0).all() and paper.max() > 0.2
    assert (ink > paper).all()


def test_lines_cross_the_image_and_stripes_invert_the_sides():
    blank = torch.zeros(8, 1, 28, 28)
    lined = KINDS["lines"](blank, torch.Generator().manual_seed(1))
    assert ((lined[:, 0] > 0.5).any(dim=1).float().mean(dim=1) > 0.4).all()  # lit in most columns
    striped = KINDS["stripes"](blank, torch.Generator().manual_seed(1))
    assert (striped[:, :, :, :3] == 1).all() and (striped[:, :, :, 10:18] == 0).all()


def test_outline_is_hollow_and_surrounds_the_stroke():
    out = KINDS["outline"](bar_digits(2), torch.Generator().manual_seed(0))
    assert (out[:, 0, 14, 13:15] == 0).all()  # the stroke's inside is empty
    assert (out[:, 0, 14, :12].sum(dim=1) >= 1).all() and (out[:, 0, 14, 16:].sum(dim=1) >= 1).all()


def test_rates_choose_a_fraction_of_the_batch_and_zero_rates_change_nothing():
    images = bar_digits(400)
    assert random_degrade(images, DegradeRates()) is images
    out = random_degrade(images, DegradeRates(stripes=0.25), torch.Generator().manual_seed(0))
    changed = (out != images).flatten(1).any(dim=1).float().mean()
    assert 0.15 < changed < 0.35


def test_a_rate_outside_0_1_is_one_line_naming_the_option():
    with pytest.raises(UserError, match=r"data\.noise must be in \[0, 1\]"):
        DegradeRates(noise=1.5)
