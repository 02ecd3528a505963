"""The shipped digit styles (`--data.styles`): made from the choose part's fonts only, as the tool says, and joined
to training alone at the stated weight."""

import numpy as np
import pytest
import torch

from lightning_digits.data.datamodule import DigitsDataModule
from lightning_digits.data.images import load_digit
from lightning_digits.data.styles import STYLE_DIGITS_SEED, read_style_digits, style_digits_for, style_digits_path
from lightning_digits.errors import UserError
from lightning_digits.evaluation.rendered import FAMILIES, installed_families, write_rendered_set

CHOOSE = {f.name for f in FAMILIES if f.part == "choose"}


@pytest.mark.unit
def test_the_shipped_digits_come_from_every_choose_family_and_no_report_family():
    styles, families = read_style_digits()
    assert styles.images.dtype == torch.uint8 and styles.images.shape[1:] == (28, 28)
    assert set(families) == CHOOSE
    for family in CHOOSE:
        counts = styles.labels[torch.from_numpy(families == family)].bincount(minlength=10)
        assert counts.min() == counts.max() > 0, family
    # White digits on black, centred like MNIST's: the border is paper.
    assert styles.images[:, 0, :].float().mean() < 5 and styles.images.float().mean() > 15


@pytest.mark.unit
@pytest.mark.skipif(
    {f.name for f in installed_families("choose")} != CHOOSE,
    reason="the Debian font packages are not installed: `make fonts` (needs apt-get)",
)
def test_the_shipped_digits_are_what_the_fonts_render_with_the_stated_seed(tmp_path):
    """Each family's first digit of each class, rendered again and read as `predict` reads a file, is the shipped
    one: the file holds what tools/make_style_digits.py says (those fonts, that seed), not some other set."""
    styles, families = read_style_digits()
    with np.load(str(style_digits_path())) as shipped:
        index = shipped["index"]
    for family in [f for f in FAMILIES if f.name in ("dkg-handwriting", "pen-times")]:
        for digit in write_rendered_set(tmp_path, [family], 1, STYLE_DIGITS_SEED):
            [at] = np.flatnonzero((families == family.name) & (index == 0) & (styles.labels.numpy() == digit.label))
            rendered = np.round(load_digit(digit.path) * 255).astype(np.uint8)
            assert np.array_equal(rendered, styles.images[at].numpy()), (family.name, digit.label)


@pytest.mark.unit
def test_they_make_the_stated_weight_seeded():
    everything, _ = read_style_digits()
    full = style_digits_for(55_000, 0.1, 42)
    assert len(full.labels) == round(0.1 / 0.9 * 55_000)
    assert torch.equal(full.images[: len(everything.labels)], everything.images)  # every one at least once
    sample = style_digits_for(250, 0.2, 42)
    assert len(sample.labels) == round(0.2 / 0.8 * 250)
    assert torch.equal(sample.images, style_digits_for(250, 0.2, 42).images)
    assert not torch.equal(sample.images, style_digits_for(250, 0.2, 7).images)


def test_they_join_training_only(tiny_data, notices):
    plain = DigitsDataModule(data_dir=str(tiny_data), download=False, val_size=50)
    plain.setup("fit")
    styled = DigitsDataModule(data_dir=str(tiny_data), download=False, val_size=50, styles=0.5)
    styled.setup("fit")
    # 250 MNIST-like training images and as many style digits, sampled from the shipped ones, each once.
    assert len(styled.train_set) == 500
    assert torch.equal(styled.train_set.tensors[0][:250], plain.train_set.tensors[0])
    assert all(torch.equal(a, b) for a, b in zip(styled.val_set.tensors, plain.val_set.tensors, strict=True))
    assert "data.styles: 250 images; 250 to training, each taken 1x (250 of 500" in notices()


@pytest.mark.unit
@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"styles": 1.0}, "data.styles"),
        ({"styles": 0.1, "dataset": "fashion_mnist"}, "set --data.styles 0"),
    ],
)
def test_bad_settings_are_one_user_error(kwargs, message):
    with pytest.raises(UserError, match=message):
        DigitsDataModule(download=False, **kwargs)
