import math

import pytest
import torch

from lightning_digits.data.ink import (
    InkRanges,
    change_stroke,
    elastic_field,
    max_3x3,
    random_ink,
    slant_matrices,
    smoothing_matrix,
    warp,
)
from lightning_digits.errors import UserError

pytestmark = pytest.mark.unit  # pure functions: `make test-unit` runs them


def _bar(n: int = 1, width: int = 3) -> torch.Tensor:
    """An upright bar `width` pixels wide, columns 13.. of rows 4..23, in every image of the batch."""
    images = torch.zeros(n, 1, 28, 28)
    images[:, :, 4:24, 13 : 13 + width] = 1.0
    return images


def _widths(images: torch.Tensor) -> torch.Tensor:
    """Ink per row of the bar's middle rows, i.e. its width in pixels where it is straight."""
    return images[:, 0, 8:20].sum(dim=2)


def test_the_3x3_maximum_is_max_pooling_to_the_bit():
    images = torch.rand(5, 1, 28, 28)
    assert torch.equal(max_3x3(images), torch.nn.functional.max_pool2d(images, 3, stride=1, padding=1))
    assert torch.equal(-max_3x3(-images), -torch.nn.functional.max_pool2d(-images, 3, stride=1, padding=1))


def test_full_dilation_widens_a_line_by_one_pixel_on_each_side():
    out = change_stroke(_bar(width=1), torch.tensor([1.0]))
    assert torch.equal(out[0, 0, 10, 11:16], torch.tensor([0.0, 1.0, 1.0, 1.0, 0.0]))
    assert torch.equal(_widths(out), torch.full((1, 12), 3.0))
    assert out[0, 0, 3, 13] == 1 and out[0, 0, 2, 13] == 0  # one pixel longer at each end too


def test_full_erosion_thins_a_three_pixel_line_to_one():
    out = change_stroke(_bar(width=3), torch.tensor([-1.0]))
    assert torch.equal(out[0, 0, 10, 11:18], torch.tensor([0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0]))
    assert out[0, 0, 4, 14] == 0 and out[0, 0, 5, 14] == 1  # the ends lose a pixel


def test_half_a_dilation_adds_half_intensity_at_the_edges():
    out = change_stroke(_bar(width=1), torch.tensor([0.5]))
    torch.testing.assert_close(out[0, 0, 10, 11:16], torch.tensor([0.0, 0.5, 1.0, 0.5, 0.0]))


def test_each_image_gets_its_own_stroke_amount():
    out = change_stroke(_bar(3, width=1), torch.tensor([1.0, 0.0, 0.5]))
    assert _widths(out)[:, 0].tolist() == [3.0, 1.0, 2.0]


def test_slant_leans_the_top_right_by_the_tangent_of_its_angle():
    angle = math.radians(20)
    out = warp(_bar(), slant_matrices(torch.tensor([angle])))
    columns = torch.arange(28, dtype=torch.float32)
    rows = range(6, 22)
    centre = torch.stack([(out[0, 0, r] * columns).sum() / out[0, 0, r].sum() for r in rows])
    slope = (centre[-1] - centre[0]) / (rows[-1] - rows[0])  # columns per row, rows growing downwards
    assert slope.item() == pytest.approx(-math.tan(angle), abs=0.01)
    assert out.sum().item() == pytest.approx(_bar().sum().item(), rel=0.01)  # a shear keeps the area


def test_a_constant_displacement_of_one_pixel_moves_the_image_one_pixel():
    images = _bar()
    identity = slant_matrices(torch.zeros(1))
    displacement = torch.zeros(1, 2, 28, 28)
    displacement[:, 0] = 1.0  # each output pixel reads the input one pixel to its right
    out = warp(images, identity, displacement)
    torch.testing.assert_close(out[..., :27], images[..., 1:])
    assert torch.equal(warp(images, identity), images)


def test_the_smoothing_is_a_normalised_gaussian_reflected_at_the_edges():
    matrix = smoothing_matrix(28, 2.0, torch.device("cpu"))
    torch.testing.assert_close(torch.ones(1, 28) @ matrix, torch.ones(1, 28))  # a constant stays constant
    impulse = torch.zeros(1, 28)
    impulse[0, 14] = 1
    response = (impulse @ matrix)[0]
    gaussian = torch.exp(-0.5 * (torch.arange(28.0) - 14) ** 2 / 2.0**2)
    gaussian[(torch.arange(28) - 14).abs() > 6] = 0  # cut at 3 sigma
    torch.testing.assert_close(response, gaussian / gaussian.sum(), atol=1e-6, rtol=0)
    # Reflected at the edge: pixel 0 reads pixel 1 on both sides (the padding mirrors pixel -1 onto pixel 1).
    assert matrix[1, 0].item() == pytest.approx(2 * response[15].item(), rel=1e-5)


def test_elastic_field_is_smooth_and_scaled_by_alpha():
    field = elastic_field(64, 28, 28, InkRanges(elastic=34, elastic_sigma=4), torch.device("cpu"))
    neighbour_step = (field[..., 1:] - field[..., :-1]).abs().mean()
    assert neighbour_step < 0.2 * field.abs().mean()  # smooth: neighbours move together
    assert 0.5 < field.std() < 3.0  # Simard's alpha 34, sigma 4 moves pixels by one or two
    doubled = elastic_field(64, 28, 28, InkRanges(elastic=68, elastic_sigma=4), torch.device("cpu"))
    assert doubled.std() == pytest.approx(2 * field.std().item(), rel=0.1)


def test_zero_strength_is_the_identity():
    images = _bar(4)
    assert random_ink(images, InkRanges()) is images
    assert torch.equal(change_stroke(images, torch.zeros(4)), images)


def test_each_sample_gets_its_own_draw_and_a_seed_repeats_it():
    ranges = InkRanges(slant=15, elastic=34, stroke=1)
    out = random_ink(_bar(16), ranges, torch.Generator().manual_seed(3))
    flat = out.flatten(1)
    off_diagonal = torch.cdist(flat, flat)[~torch.eye(16, dtype=torch.bool)]
    assert off_diagonal.min() > 0.1, "two samples got the same distortion"
    assert torch.equal(out, random_ink(_bar(16), ranges, torch.Generator().manual_seed(3)))
    assert out.min() >= 0 and out.max() <= 1


@pytest.mark.parametrize("sigma", [0.5, 8.0])
def test_the_ends_of_the_ranges_run_on_a_28_pixel_batch(sigma):
    """The field's reflect padding (3 sigma) must stay inside the 28-pixel image."""
    out = random_ink(_bar(4), InkRanges(slant=59, elastic=100, elastic_sigma=sigma, stroke=1))
    assert out.shape == (4, 1, 28, 28) and torch.isfinite(out).all()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device here: the GPU path is not exercised")
def test_the_gpu_gives_what_the_cpu_gives_for_the_same_draws():
    images, amount = _bar(8, width=2), torch.linspace(-1, 1, 8)
    field = elastic_field(8, 28, 28, InkRanges(elastic=34), torch.device("cpu"), torch.Generator().manual_seed(0))
    theta = slant_matrices(torch.linspace(-0.3, 0.3, 8))
    on_cpu = change_stroke(warp(images, theta, field), amount)
    on_gpu = change_stroke(warp(images.cuda(), theta.cuda(), field.cuda()), amount.cuda())
    torch.testing.assert_close(on_gpu.cpu(), on_cpu, atol=1e-5, rtol=0)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"slant": -1}, "slant"),
        ({"elastic": 101}, "elastic"),
        ({"elastic_sigma": 0}, "sigma"),
        ({"elastic_sigma": 9}, "sigma"),
        ({"stroke": 1.5}, "stroke"),
    ],
)
def test_out_of_range_values_are_refused(kwargs, message):
    with pytest.raises(UserError, match=message):
        InkRanges(**kwargs)


class _Training:
    training = True
    global_rank = 0


def test_the_data_module_flags_reach_the_training_batches_and_default_to_off():
    from lightning_digits.data.datamodule import DigitsDataModule

    batch = (torch.zeros(8, 28, 28, dtype=torch.uint8), torch.zeros(8))
    batch[0][:, 4:24, 13] = 255
    outs = {}
    with torch.random.fork_rng():
        torch.manual_seed(0)  # the hook's generator is seeded from torch's initial seed
        for name, kwargs in {"off": {}, "stroke": {"stroke": 1.0}, "slant": {"slant": 20.0}}.items():
            dm = DigitsDataModule(rotation=0, shift=0, scale=0, **kwargs)
            dm.trainer = _Training()
            outs[name] = dm.on_after_batch_transfer(list(batch), 0)[0]
    assert torch.equal(outs["off"], batch[0].float().div(255).unsqueeze(1))  # today's behaviour by default
    assert (outs["stroke"].sum(dim=(1, 2, 3)) != outs["off"].sum(dim=(1, 2, 3))).all()
    assert ((outs["slant"] - outs["off"]).abs().amax(dim=(1, 2, 3)) > 0.01).all()


def test_bad_ink_settings_are_one_user_error():
    from lightning_digits.data.datamodule import DigitsDataModule

    with pytest.raises(UserError, match=r"^data\.stroke must be in \[0, 1\]"):
        DigitsDataModule(stroke=2)
