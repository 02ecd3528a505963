"""The real command in a subprocess, as a user runs it."""

import csv

import pytest
import yaml
from PIL import Image

from .conftest import REPO, TINY_MODEL, run_cli


def _metrics(artifacts) -> list[dict]:
    [metrics_file] = sorted(artifacts.glob("logs/version_*/metrics.csv"))
    with open(metrics_file) as f:
        return list(csv.DictReader(f))


def test_help_lists_the_subcommands():
    result = run_cli("--help")
    assert result.returncode == 0
    for command in ("fit", "validate", "test", "predict"):
        assert command in result.stdout


def test_print_config_shows_the_default_config_applied():
    result = run_cli("fit", "--print_config")
    assert result.returncode == 0, result.stderr
    config = yaml.safe_load(result.stdout)
    assert config["trainer"]["max_epochs"] == 10
    assert config["model"]["lr"] == 0.001 and config["data"]["batch_size"] == 128
    assert config["checkpoint"]["monitor"] == "val_loss"


def test_overrides_on_the_command_line_win():
    result = run_cli("fit", "--model.lr=0.01", "--data.batch_size=64", "--print_config")
    config = yaml.safe_load(result.stdout)
    assert config["model"]["lr"] == 0.01 and config["data"]["batch_size"] == 64


@pytest.mark.parametrize("config", sorted((REPO / "configs").glob("*.yaml")), ids=lambda path: path.name)
def test_every_shipped_config_parses_and_sets_what_it_says(config):
    result = run_cli("fit", f"--config={config}", "--print_config")
    assert result.returncode == 0, result.stderr
    printed, written = yaml.safe_load(result.stdout), yaml.safe_load(config.read_text())
    for section, values in written.items():
        for key, value in values.items() if isinstance(values, dict) else [(None, values)]:
            assert (printed[section] if key is None else printed[section][key]) == value, (section, key)


def test_fast_dev_run_on_tiny_data_is_quiet(tmp_path, tiny_data):
    result = run_cli(
        "fit",
        f"--data.data_dir={tiny_data}",
        "--data.val_size=50",
        f"--artifacts_dir={tmp_path / 'art'}",
        "--trainer.fast_dev_run=2",
        *TINY_MODEL,
    )
    assert result.returncode == 0, result.stderr
    assert "Warning" not in result.stderr and "deprecat" not in result.stderr.lower(), result.stderr


def test_resume_from_last_continues_the_same_run(tmp_path, tiny_data):
    common = [f"--data.data_dir={tiny_data}", "--data.val_size=50", f"--artifacts_dir={tmp_path}", *TINY_MODEL]
    assert run_cli("fit", *common, "--trainer.max_epochs=1").returncode == 0
    assert (tmp_path / "digits_cnn.ckpt").is_file() and (tmp_path / "digits_cnn_final.ckpt").is_file()
    resumed = run_cli("fit", *common, "--trainer.max_epochs=2", "--ckpt_path=last")
    assert resumed.returncode == 0, resumed.stderr
    assert "Restoring states from the checkpoint path" in resumed.stderr + resumed.stdout
    latest = sorted(tmp_path.glob("logs/version_*/metrics.csv"))[-1]
    epochs = {row["epoch"] for row in csv.DictReader(open(latest)) if row["val_loss"]}
    assert epochs == {"1"}, "the resumed run must train epoch 1 only"


@pytest.mark.slow
def test_real_mnist_fit_test_predict(tmp_path, real_mnist):
    """A few thousand real digits for one epoch, then test and predict end to end."""
    art = tmp_path / "art"
    data = [f"--data.data_dir={real_mnist}", f"--artifacts_dir={art}"]
    fit = run_cli("fit", *data, "--data.train_subset=5000", "--data.batch_size=64", "--trainer.max_epochs=1")
    assert fit.returncode == 0, fit.stderr
    [last_epoch] = [row for row in _metrics(art) if row["val_acc"]]
    assert float(last_epoch["val_acc"]) > 0.9

    test = run_cli("test", *data, f"--ckpt_path={art / 'digits_cnn.ckpt'}")
    assert test.returncode == 0, test.stderr
    assert "test_acc" in test.stdout

    drawn = tmp_path / "drawn"
    drawn.mkdir()
    from lightning_digits.data.idx import read_idx

    digits = read_idx(real_mnist / "t10k-images-idx3-ubyte.gz", 3)[:8]
    for i, digit in enumerate(digits):  # dark ink on light paper, scaled up: not MNIST's own format
        Image.fromarray(255 - digit).resize((112, 112)).save(drawn / f"digit_{i}.png")
    predict = run_cli("predict", *data, f"--ckpt_path={art / 'digits_cnn.ckpt'}", f"--data.predict_path={drawn}")
    assert predict.returncode == 0, predict.stderr
    rows = list(csv.DictReader(open(art / "predictions.csv")))
    assert [r["file"].rsplit("/", 1)[1] for r in rows] == [f"digit_{i}.png" for i in range(8)]
    labels = read_idx(real_mnist / "t10k-labels-idx1-ubyte.gz", 1)[:8]
    correct = sum(int(r["predicted"]) == int(label) for r, label in zip(rows, labels, strict=True))
    assert correct >= 6
    assert all(len(r["top3"].split()) == 3 and 0 < float(r["confidence"]) <= 1 for r in rows)
