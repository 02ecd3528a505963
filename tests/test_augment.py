import pytest
import torch

from lightning_digits.data.augment import AffineRanges, random_affine


def _batch(n: int = 16) -> torch.Tensor:
    images = torch.zeros(n, 1, 28, 28)
    images[:, :, 6:22, 12:16] = 1.0  # the same upright bar in every image
    return images


def test_each_sample_gets_its_own_transform():
    out = random_affine(_batch(), AffineRanges(rotation=30, shift=0.1, scale=0.2), torch.Generator().manual_seed(0))
    flat = out.flatten(1)
    distances = torch.cdist(flat, flat)
    off_diagonal = distances[~torch.eye(len(flat), dtype=torch.bool)]
    assert off_diagonal.min() > 0.1, "two samples got the same transform"


def test_disabled_augmentation_is_the_identity():
    images = _batch()
    assert random_affine(images, AffineRanges(rotation=0, shift=0, scale=0)) is images


def test_rotation_alone_keeps_the_ink_centred_and_its_mass():
    images = _batch(64)
    out = random_affine(images, AffineRanges(rotation=20, shift=0, scale=0), torch.Generator().manual_seed(1))
    assert torch.allclose(out.sum(dim=(1, 2, 3)), images.sum(dim=(1, 2, 3)), rtol=0.05)


def test_same_generator_seed_gives_the_same_batch():
    ranges = AffineRanges()
    a = random_affine(_batch(), ranges, torch.Generator().manual_seed(5))
    b = random_affine(_batch(), ranges, torch.Generator().manual_seed(5))
    assert torch.equal(a, b)


@pytest.mark.parametrize(
    "kwargs, message", [({"rotation": -1}, "rotation"), ({"shift": 0.7}, "shift"), ({"scale": 1.0}, "scale")]
)
def test_out_of_range_values_are_refused(kwargs, message):
    with pytest.raises(ValueError, match=message):
        AffineRanges(**kwargs)
