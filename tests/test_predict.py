"""`predict` on one's own images, as a user with no data set on the machine runs it."""

from __future__ import annotations

import csv
import shutil
import warnings

import pytest
from PIL import Image

from .conftest import TINY_MODEL, synthetic_digits, write_dataset


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory, _cli_main):
    """A tiny model fitted for one batch on generated data, whose data folder is then deleted."""
    root = tmp_path_factory.mktemp("predict")
    data = write_dataset(root / "data", n_train=120, n_test=20)
    _cli_main(
        [
            "fit",
            f"--data.data_dir={data}",
            "--data.val_size=20",
            f"--artifacts_dir={root / 'art'}",
            "--data.batch_size=32",
            "--trainer.max_epochs=1",
            "--trainer.limit_train_batches=1",
            "--progress_bar.refresh_rate=0",
            *TINY_MODEL,
        ]
    )
    shutil.rmtree(data)
    return root / "art" / "digits_cnn.ckpt"


def test_predict_on_own_images_needs_no_data_set_and_reports_skipped_files(cli, checkpoint, tmp_path, monkeypatch):
    monkeypatch.delenv("LIGHTNING_DIGITS_DATA", raising=False)
    monkeypatch.chdir(tmp_path)  # no ./data here either: a download would be the only way to get MNIST
    images = tmp_path / "my_digits"
    images.mkdir()
    for i, digit in enumerate(synthetic_digits(3, seed=2)[0]):
        Image.fromarray(255 - digit).save(images / f"{i}.png")
    (images / "notes.txt").write_text("not an image")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # as PYTHONWARNINGS=ignore would: the notice must still reach the user
        result = cli("predict", f"--ckpt_path={checkpoint}", f"--data.predict_path={images}", "--artifacts_dir=out")
    assert result.code == 0, result.err[-3000:]
    assert f"skipping {images / 'notes.txt'}: not a .png/.jpg/.jpeg/.bmp file" in result.err
    rows = list(csv.DictReader(open(tmp_path / "out" / "predictions.csv")))
    assert [row["file"] for row in rows] == [str(images / f"{i}.png") for i in range(3)]
    assert not (tmp_path / "data").exists(), "nothing may be downloaded"


def test_a_missing_checkpoint_names_the_flag_the_user_gave(cli, tmp_path):
    result = cli("test", f"--ckpt_path={tmp_path / 'nope.ckpt'}")
    assert result.code == 2 and "pass --ckpt_path" in result.err and "--checkpoint" not in result.err
    result = cli("evaluate", f"--checkpoint={tmp_path / 'nope.ckpt'}")
    assert result.code == 2 and result.err.count("\n") == 1
    assert f"checkpoint {tmp_path / 'nope.ckpt'} does not exist" in result.err and "pass --checkpoint" in result.err
