"""`lightning-digits adapt`: a trained model learns a person's digits from its own weights, says how well it reads
their held-out digits and MNIST's test set before and after, and leaves a checkpoint and an ONNX file that differ
from the start. Tiny data (bars for MNIST, Pillow's bitmap digits for the person), never MNIST's test set."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from lightning_digits.checkpoints import load_checkpoint
from lightning_digits.data import degrade
from lightning_digits.onnx_predictor import OnnxDigits
from lightning_digits.training.adapt import fit_args, report_table

from .conftest import COMMITTED_MODEL, REPO, TINY_MODEL
from .test_extra import write_user_digits

# Twelve bitmap digits of a class differ only in shade: without augmentation a tiny network learns them for sure.
NO_AUGMENTATION = [f"--data.{name}=0" for name in ("rotation", "shift", "scale", *degrade.KINDS)]


@pytest.fixture
def start(cli, tiny_data, tmp_path):
    """A checkpoint of a tiny network that read bars for two epochs: it knows nothing of the person's digits."""
    folder = tmp_path / "start"
    ran = cli(
        "fit",
        *TINY_MODEL,
        f"--data.data_dir={tiny_data}",
        "--data.val_size=50",
        "--data.batch_size=16",
        "--trainer.max_epochs=2",
        f"--artifacts_dir={folder}",
    )
    assert ran.code == 0, ran.err[-2000:]
    return folder / "digits_cnn.ckpt"


def test_adapt_learns_the_persons_digits_and_writes_both_files(cli, start, tiny_data, tmp_path):
    mine = write_user_digits(tmp_path / "mine", per_class=5)
    out = tmp_path / "adapted"
    ran = cli(
        "adapt",
        str(mine),
        f"--checkpoint={start}",
        f"--output_dir={out}",
        f"--data.data_dir={tiny_data}",
        "--data.batch_size=16",
        "--trainer.max_epochs=2",
        "--model.lr=0.003",
        *NO_AUGMENTATION,
    )
    assert ran.code == 0, ran.err[-3000:]

    record = json.loads((out / "adapt.json").read_text())
    # 40 digits learnt, each repeated 3 times beside the 250 bars (a 0.3 share): 370 images, 23 batches an epoch
    assert (record["learned"], record["held_out"], record["steps"]) == (40, 10, 2 * 23)
    mine_before, mine_after = record["your_held_out"]["before"], record["your_held_out"]["after"]
    assert mine_after > mine_before and mine_after >= 0.8, record
    assert record["mnist_test"]["images"] == 100  # the tiny set's test split, not the person's digits
    assert "your held-out digits" in ran.out and f"{mine_after:7.4f}" in ran.out

    adapted, first = load_checkpoint(out / "digits_cnn.ckpt"), load_checkpoint(start)
    assert adapted.model_hparams["channels"] == first.model_hparams["channels"]  # the start's shape, not the default's
    assert adapted.data_hparams["val_size"] == 50  # and its validation split
    weights = "features.0.0.weight"  # the first convolution's
    assert not torch.equal(adapted.net.state_dict()[weights], first.net.state_dict()[weights])
    onnx = OnnxDigits(str(out / "digits_cnn.onnx"))
    images = np.random.default_rng(0).random((4, 28, 28), dtype=np.float32)
    with torch.inference_mode():
        expected = adapted.net(torch.from_numpy(images)[:, None]).softmax(1).numpy()
    assert np.allclose(onnx.probabilities(images), expected, atol=1e-4)


@pytest.mark.unit
def test_the_command_line_becomes_a_fit_in_the_output_folder():
    args = fit_args(["mine/", "--output_dir=out", "--seed_everything=3"])
    assert args[0] == "fit" and args[1].endswith("adapt.yaml")
    assert args[2:] == ["--digits=mine/", "--artifacts_dir=out", "--seed_everything=3"]
    assert fit_args(["mine/"])[-1] == "--artifacts_dir=artifacts_adapted"


@pytest.mark.unit
def test_the_table_says_when_nothing_was_held_out():
    record = {
        "checkpoint": "a.ckpt",
        "digits": "mine",
        "learned": 10,
        "held_out": 0,
        "steps": 5,
        "seconds": 3.0,
        "mnist_test": {"before": 0.99, "after": 0.991, "images": 10_000},
        "output": {"checkpoint": "o/digits_cnn.ckpt", "onnx": "o/digits_cnn.onnx"},
    }
    table = report_table(record)
    assert "none held out (--data.extra_val_fraction 0)" in table
    assert "MNIST test" in table and "0.9900  0.9910" in table


def test_the_shipped_checkpoint_is_the_committed_model_without_its_optimiser():
    """A fresh clone adapts (and evaluates, exports) without training first: the committed weights-only checkpoint
    is the network of the committed ONNX file."""
    shipped = REPO / "artifacts_digits" / "digits_cnn.ckpt"
    saved = torch.load(shipped, map_location="cpu", weights_only=True)
    assert "optimizer_states" not in saved and "loops" not in saved
    loaded = load_checkpoint(shipped)
    images = np.random.default_rng(1).random((6, 28, 28), dtype=np.float32)
    with torch.inference_mode():
        expected = loaded.net(torch.from_numpy(images)[:, None]).softmax(1).numpy()
    assert np.allclose(OnnxDigits(str(COMMITTED_MODEL)).probabilities(images), expected, atol=1e-4)
