from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw, ImageFont

from lightning_digits.data.datamodule import DigitsDataModule, fit_validation_set
from lightning_digits.data.extra import held_out, read_extra_dir, repeats
from lightning_digits.data.images import load_digit
from lightning_digits.errors import UserError

from .conftest import TINY_MODEL

FORMATS = ("png", "jpg", "bmp")


def write_user_digits(folder: Path, per_class: int = 5, classes: range = range(10)) -> Path:
    """The digit in Pillow's built-in bitmap font, blown up to 60x50 px, dark ink (a shade per image) on light
    paper, in turns PNG, JPEG and BMP."""
    for label in classes:
        (folder / str(label)).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            small = Image.new("L", (10, 12), 230)
            ImageDraw.Draw(small).text((2, 0), str(label), fill=20 + 3 * i, font=ImageFont.load_default())
            small.resize((50, 60), Image.Resampling.NEAREST).save(folder / str(label) / f"d{i}.{FORMATS[i % 3]}")
    return folder


def test_every_class_folder_is_read_through_predicts_recipe(tmp_path):
    folder = write_user_digits(tmp_path / "mine", per_class=3, classes=range(0, 10, 3))
    extra = read_extra_dir(folder)
    assert extra.labels.tolist() == [0, 0, 0, 3, 3, 3, 6, 6, 6, 9, 9, 9]
    assert extra.images.dtype == torch.uint8 and extra.images.shape == (12, 28, 28)
    expected = np.round(load_digit(folder / "6" / "d1.jpg") * 255).astype(np.uint8)
    assert np.array_equal(extra.images[7].numpy(), expected)


def test_hidden_files_and_folders_are_not_digits(tmp_path, notices):
    folder = write_user_digits(tmp_path / "mine", per_class=2, classes=range(2))
    (folder / "1" / "d0.png").rename(folder / "1" / ".d0.png.k2x9f.png")  # a writer killed mid-write left it
    (folder / ".ipynb_checkpoints").mkdir()
    (folder / ".collect.lock").write_text("")
    assert read_extra_dir(folder).labels.tolist() == [0, 0, 1]
    assert "skipping" not in notices()


@pytest.mark.unit
def test_a_stated_fraction_of_each_class_is_held_out_seeded():
    labels = torch.tensor([0] * 10 + [1] * 7 + [2] * 1 + [3] * 2)
    mask = held_out(labels, 0.2, seed=42)
    # floor(0.2 * count), but one of a class of two, and none of a class of one
    assert [int(mask[labels == c].sum()) for c in range(4)] == [2, 1, 0, 1]
    assert not held_out(labels, 0.0, seed=42).any()
    assert torch.equal(mask, held_out(labels, 0.2, seed=42))
    assert not torch.equal(mask, held_out(labels, 0.2, seed=1))


@pytest.mark.unit
def test_repeats_make_the_stated_weight_of_an_epoch():
    times = repeats(55_000, 160, 0.1)
    assert times * 160 / (55_000 + times * 160) == pytest.approx(0.1, abs=0.002)
    assert repeats(250, 1000, 0.1) == 1  # never fewer than once
    assert repeats(100, 0, 0.5) == 0


def test_the_data_module_joins_them_to_training_and_validation(tmp_path, tiny_data, notices):
    mine = write_user_digits(tmp_path / "mine", per_class=5)
    dm = DigitsDataModule(
        data_dir=str(tiny_data),
        download=False,
        val_size=50,
        extra_dir=str(mine),
        extra_weight=0.5,
        extra_val_fraction=0.2,
    )
    dm.setup("fit")
    # 250 MNIST-like training images; 4 of each class's 5 train, 40 in all, repeated round(250 / 40) = 6 times.
    assert (len(dm.train_set), len(dm.val_set)) == (250 + 6 * 40, 50 + 10)
    user_val = dm.val_set.tensors[0][50:]
    user_train = dm.train_set.tensors[0][250:]
    assert not any(torch.equal(v, t) for v in user_val for t in user_train[:40]), "an image in both splits"
    assert torch.equal(dm.train_set.tensors[1][250:].bincount(), torch.full((10,), 24))
    assert "50 images; 40 to training, each taken 6x (240 of 490 training images, 49.0%), 10 to" in notices()


def test_a_fit_with_them_runs_and_validates_on_them(cli, tmp_path, tiny_data):
    mine = write_user_digits(tmp_path / "mine", per_class=5)
    art = tmp_path / "art"
    result = cli(
        "fit",
        f"--data.data_dir={tiny_data}",
        "--data.val_size=50",
        f"--data.extra_dir={mine}",
        f"--artifacts_dir={art}",
        "--trainer.max_epochs=1",
        "--trainer.log_every_n_steps=1",
        *TINY_MODEL,
    )
    assert result.code == 0, result.err
    assert "each taken" in result.err and (art / "digits_cnn_final.ckpt").is_file()


def _bad_case(tmp_path: Path, case: str) -> Path:
    folder = write_user_digits(tmp_path / "mine", per_class=2, classes=range(3))
    if case == "not a digit":
        (folder / "seven").mkdir()
    elif case == "unreadable":
        (folder / "1" / "broken.png").write_bytes(b"not really a png")
    elif case == "empty":
        (folder / "5").mkdir()
    elif case == "no class folders":
        folder = tmp_path / "nothing"
        folder.mkdir()
    elif case == "missing":
        folder = tmp_path / "absent"
    return folder


@pytest.mark.parametrize(
    "case, message",
    [
        ("not a digit", r"mine/seven is not a class folder \(its name must be a class index, 0 to 9\)"),
        ("unreadable", r"mine/1/broken.png: cannot read it as an image"),
        ("empty", r"mine/5 has no .png/.jpg/.jpeg/.bmp images; add some or remove the folder"),
        ("no class folders", r"nothing has no class folders; give a folder"),
        ("missing", r"absent is not a folder; give a folder"),
    ],
)
def test_each_bad_folder_is_one_user_error(tmp_path, case, message):
    with pytest.raises(UserError, match=message) as raised:
        read_extra_dir(_bad_case(tmp_path, case))
    assert "\n" not in str(raised.value)


def test_the_command_says_it_in_one_line(cli, tmp_path, tiny_data):
    folder = _bad_case(tmp_path, "not a digit")
    result = cli(
        "fit",
        f"--data.data_dir={tiny_data}",
        "--data.val_size=50",
        f"--data.extra_dir={folder}",
        f"--artifacts_dir={tmp_path / 'art'}",
        "--trainer.max_epochs=1",
        *TINY_MODEL,
    )
    assert result.code != 0
    errors = [line for line in result.err.splitlines() if "error" in line.lower()]
    assert len(errors) == 1 and "seven is not a class folder" in errors[0], result.err


@pytest.mark.unit
@pytest.mark.parametrize("kwargs", [{"extra_weight": 1.0}, {"extra_val_fraction": -0.1}])
def test_out_of_range_weights_are_refused(kwargs):
    with pytest.raises(UserError, match=next(iter(kwargs))):
        DigitsDataModule(**kwargs)


def test_a_fits_validation_set_is_rebuilt_with_its_held_out_digits(tmp_path, tiny_data):
    """What benches choose on after a fit (bench/tta.py, bench/teacher.py): the split and the extra digits' part."""
    mine = write_user_digits(tmp_path / "mine", per_class=5)
    saved = {"data_dir": str(tiny_data), "val_size": 50, "split_seed": 3, "extra_dir": str(mine), "download": True}
    saved["_instantiator"] = "lightning.pytorch.cli.instantiate_module"  # as a checkpoint records it
    images, labels = fit_validation_set(saved)
    dm = DigitsDataModule(data_dir=str(tiny_data), download=False, val_size=50, split_seed=3, extra_dir=str(mine))
    dm.setup("fit")
    assert len(labels) == 50 + 10 and np.array_equal(images, dm.val_set.tensors[0].numpy())
