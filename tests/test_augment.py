import pytest
import torch

from lightning_digits.data.augment import AffineRanges, random_affine
from lightning_digits.errors import UserError

pytestmark = pytest.mark.unit  # pure functions: `make test-unit` runs them


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


def _centre_of_mass(images: torch.Tensor) -> torch.Tensor:
    """[N, 1, H, W] -> [N, 2]: each image's (row, column) centre of mass in pixels."""
    rows = torch.arange(images.shape[2], dtype=images.dtype).view(1, 1, -1, 1)
    cols = torch.arange(images.shape[3], dtype=images.dtype).view(1, 1, 1, -1)
    mass = images.sum(dim=(1, 2, 3))
    return torch.stack([(images * rows).sum(dim=(1, 2, 3)) / mass, (images * cols).sum(dim=(1, 2, 3)) / mass], 1)


def test_rotation_alone_keeps_the_ink_centred_and_its_mass():
    images = _batch(64)  # the bar's centre of mass is the image's centre, (13.5, 13.5), which rotation keeps
    out = random_affine(images, AffineRanges(rotation=20, shift=0, scale=0), torch.Generator().manual_seed(1))
    assert (out - images).abs().amax(dim=(1, 2, 3)).median() > 0.3, "the images were hardly rotated"
    torch.testing.assert_close(_centre_of_mass(out), _centre_of_mass(images), atol=0.1, rtol=0)
    assert torch.allclose(out.sum(dim=(1, 2, 3)), images.sum(dim=(1, 2, 3)), rtol=0.05)


def test_shift_moves_the_ink_by_up_to_its_range():
    """The counterpart of the test above: the centre-of-mass check sees a shift when there is one."""
    images = _batch(64)
    out = random_affine(images, AffineRanges(rotation=0, shift=0.1, scale=0), torch.Generator().manual_seed(1))
    moved = (_centre_of_mass(out) - _centre_of_mass(images)).abs()
    assert moved.max() > 1.0 and moved.max() <= 0.1 * 28 + 0.1


def test_same_generator_seed_gives_the_same_batch():
    ranges = AffineRanges()
    a = random_affine(_batch(), ranges, torch.Generator().manual_seed(5))
    b = random_affine(_batch(), ranges, torch.Generator().manual_seed(5))
    assert torch.equal(a, b)


@pytest.mark.parametrize(
    "kwargs, message", [({"rotation": -1}, "rotation"), ({"shift": 0.7}, "shift"), ({"scale": 1.0}, "scale")]
)
def test_out_of_range_values_are_refused(kwargs, message):
    with pytest.raises(UserError, match=f"data.{message} must be in"):
        AffineRanges(**kwargs)
