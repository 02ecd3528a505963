"""MNIST-C's corruptions (evaluation/mnist_c.py): deterministic, shape- dtype- and range-preserving, each doing
what it says on a small exact case; the choosing set made from the validation split only; and the bench's suite
run in a tiny form on the committed model."""

from __future__ import annotations

import json

import numpy as np
import pytest

from lightning_digits.evaluation.mnist_c import CORRUPTIONS, benchmark_images, corrupt, line_from_points

from .conftest import COMMITTED_MODEL, run_bench, synthetic_digits, write_dataset

RANDOM = {
    "shot_noise",
    "impulse_noise",
    "glass_blur",
    "motion_blur",
    "shear",
    "rotate",
    "translate",
    "fog",
    "spatter",
    "dotted_line",
    "zigzag",
}


@pytest.fixture(scope="module")
def digits() -> np.ndarray:
    images, _ = synthetic_digits(20, seed=3)
    return images


@pytest.mark.unit
@pytest.mark.parametrize("name", list(CORRUPTIONS))
def test_each_corruption_keeps_shape_dtype_and_range_and_is_deterministic_for_a_seed(digits, name):
    once = corrupt(digits, name, seed=5)
    assert once.shape == digits.shape and once.dtype == np.uint8
    assert np.array_equal(once, corrupt(digits, name, seed=5))
    assert not np.array_equal(once, digits), "a corruption that changes nothing"
    if name in RANDOM:
        assert not np.array_equal(once, corrupt(digits, name, seed=6))


@pytest.mark.unit
@pytest.mark.parametrize("name", sorted(set(CORRUPTIONS) - RANDOM))
def test_a_deterministic_corruption_of_an_image_does_not_depend_on_the_rest_of_its_batch(digits, name):
    assert np.array_equal(corrupt(digits, name)[3:4], corrupt(digits[3:4], name))


@pytest.mark.unit
def test_an_unknown_corruption_names_the_known_ones(digits):
    with pytest.raises(ValueError, match="choose one of shot_noise"):
        corrupt(digits, "snow")


@pytest.mark.unit
def test_impulse_noise_flips_17_percent_of_pixels_to_black_or_white_evenly():
    grey = np.full((200, 28, 28), 128, dtype=np.uint8)
    out = corrupt(grey, "impulse_noise")
    assert abs((out == 255).mean() - 0.085) < 0.005 and abs((out == 0).mean() - 0.085) < 0.005
    assert ((out == 128) | (out == 0) | (out == 255)).all()


@pytest.mark.unit
def test_shot_noise_of_three_photons_leaves_multiples_of_a_third():
    white = np.full((50, 28, 28), 255, dtype=np.uint8)
    out = corrupt(white, "shot_noise")
    assert set(np.unique(out)) <= {0, 85, 170, 255}
    assert abs((out == 0).mean() - np.exp(-3)) < 0.01  # Poisson(3) is 0 with probability e^-3


@pytest.mark.unit
def test_brightness_lifts_black_to_grey_and_stripe_inverts_seven_columns_each_side():
    black = np.zeros((3, 28, 28), dtype=np.uint8)
    assert (corrupt(black, "brightness") == 128).all()
    striped = corrupt(black, "stripe")
    assert (striped[:, :, :7] == 255).all() and (striped[:, :, 21:] == 255).all() and (striped[:, :, 7:21] == 0).all()


@pytest.mark.unit
def test_translate_moves_by_three_pixels_along_each_axis():
    dot = np.zeros((40, 28, 28), dtype=np.uint8)
    dot[:, 14, 14] = 255
    for image in corrupt(dot, "translate"):
        (r,), (c,) = np.nonzero(image.max(1) > 0)[0], np.nonzero(image.max(0) > 0)[0]
        assert abs(r - 14) == 3 and abs(c - 14) == 3 and image.max() == 255


@pytest.mark.unit
def test_scale_shrinks_the_ink_about_the_centre():
    square = np.zeros((1, 28, 28), dtype=np.uint8)
    square[:, 4:24, 4:24] = 255
    out = corrupt(square, "scale")[0]
    rows, cols = np.nonzero(out > 127)
    assert rows.min() >= 6 and rows.max() <= 21 and cols.min() >= 6 and cols.max() <= 21
    assert 0.4 < (out > 127).sum() / 400 < 0.6  # 0.7 ** 2 of the area


@pytest.mark.unit
def test_a_dotted_line_crosses_the_image_in_dashes_of_two_columns():
    out = corrupt(np.zeros((30, 28, 28), dtype=np.uint8), "dotted_line")
    lit_columns = out.max(axis=1) > 0
    dash = np.array([(c - 2) % 4 < 2 and c >= 2 for c in range(28)])
    assert not lit_columns[:, ~dash].any()
    assert lit_columns[:, dash].mean() > 0.9


@pytest.mark.unit
def test_a_zigzag_crosses_the_digit_between_columns_2_and_25():
    out = corrupt(np.zeros((30, 28, 28), dtype=np.uint8), "zigzag")
    lit_columns = out.max(axis=1) > 0
    assert not lit_columns[:, :2].any() and not lit_columns[:, 26:].any()
    assert lit_columns[:, 3:24].mean() > 0.9  # a zigzag at the very top or bottom may leave the image


@pytest.mark.unit
def test_line_from_points_is_brightest_on_the_line_and_zero_outside_its_columns():
    line = line_from_points(4, 10, 20, 10)
    assert line[10, 4:20].min() == 1.0 and line[14, :].max() == 0.0 and line[:, :4].max() == 0.0


@pytest.mark.unit
def test_canny_edges_of_a_filled_square_are_its_thin_outline():
    square = np.zeros((1, 28, 28), dtype=np.uint8)
    square[:, 8:20, 8:20] = 255
    edges = corrupt(square, "canny_edges")[0] > 0
    assert not edges[10:18, 10:18].any(), "the inside of the square is no edge"
    for row in range(10, 18):  # each row through the square crosses its outline at each side, a pixel wide or two
        (lit,) = np.nonzero(edges[row])
        assert set(lit) <= {7, 8, 19, 20} and lit.min() <= 8 and lit.max() >= 19
    assert set(np.unique(corrupt(square, "canny_edges"))) == {0, 255}


@pytest.mark.unit
def test_fog_and_spatter_and_blurs_keep_the_digit_readable_in_place(digits):
    for name in ("fog", "glass_blur", "motion_blur", "spatter"):
        out = corrupt(digits, name).astype(float)
        correlation = np.corrcoef(out.reshape(len(out), -1)[0], digits.reshape(len(digits), -1)[0].astype(float))
        assert correlation[0, 1] > 0.3, name


def test_the_choosing_set_is_the_validation_split_and_never_a_test_image(tmp_path):
    folder = write_dataset(tmp_path / "data", n_train=6000, n_test=200)
    train, _ = synthetic_digits(6000, 0)
    test, _ = synthetic_digits(200, 1)
    images, labels, seed = benchmark_images("choose", str(folder))
    assert len(images) == 5000 and len(labels) == 5000
    test_rows = {image.tobytes() for image in test}
    train_rows = {image.tobytes() for image in train}
    assert not any(image.tobytes() in test_rows for image in images)
    assert all(image.tobytes() in train_rows for image in images)
    _, _, test_seed = benchmark_images("test", str(folder))
    assert seed != test_seed


@pytest.mark.skipif(not COMMITTED_MODEL.is_file(), reason="no committed model: `make train && make evaluate`")
def test_the_bench_suite_runs_in_a_tiny_form_and_its_clean_figure_is_the_model_s(real_mnist, monkeypatch, capsys):
    from lightning_digits.data.sources import load_split
    from lightning_digits.onnx_predictor import OnnxDigits

    args = [str(COMMITTED_MODEL), "--suite", "mnist-c", "--limit", "60", "--data_dir", str(real_mnist)]
    result = json.loads(run_bench("robustness", args, monkeypatch, capsys)[-1])  # bench/robustness.py, in-process
    assert list(result["corruptions"]) == list(CORRUPTIONS) and result["images"] == 60
    images, labels = load_split("mnist", str(real_mnist), "test")
    expected = (OnnxDigits(COMMITTED_MODEL).probabilities(images[:60] / 255).argmax(1) == labels[:60]).mean()
    assert result["clean"]["network"] == pytest.approx(expected)
    accuracies = [row[column] for row in result["corruptions"].values() for column in ("network", "predict")]
    assert result["mean"]["network"] == pytest.approx(np.mean([r["network"] for r in result["corruptions"].values()]))
    assert all(0 <= a <= 1 for a in accuracies) and min(accuracies) < result["clean"]["network"]
