"""Configs by name or by path: each shipped preset parses and sets what its comment says, layered over the default;
the one line a user gets for a config file that is missing or not YAML."""

from __future__ import annotations

import csv

import pytest
import yaml

from lightning_digits import presets
from lightning_digits.checkpoints import load_checkpoint
from lightning_digits.cli import COMMAND_PRESETS
from lightning_digits.models.cnn import Architecture, DigitsCNN

from .conftest import REPO


def _parameters(model_config: dict) -> int:
    return sum(p.numel() for p in DigitsCNN(Architecture.from_hparams(model_config)).parameters())


# What each fit preset's opening comment promises, read back from the config `fit` builds of it (the default layered
# under it): a preset whose keys were renamed, dropped or mistyped reads back otherwise here.
PROMISES = {
    # "the original Keras case study's setup: 10 epochs, batch 128, Adam lr 1e-3", the original's 871,530 parameters
    "mnist": lambda c: (
        c["trainer"]["max_epochs"] == 10
        and c["data"]["batch_size"] == 128
        and (c["model"]["optimizer"], c["model"]["lr"]) == ("adam", 0.001)
        and _parameters(c["model"]) == 871_530
    ),
    # "six 3x3 conv-BN-ReLU layers of 16/32/64 channels ... about 70k parameters ... 640 steps: two epochs of 320"
    "fast": lambda c: (
        c["model"]["channels"] == [16, 32, 64]
        and 60_000 < _parameters(c["model"]) < 80_000
        and c["trainer"]["max_epochs"] * c["trainer"]["limit_train_batches"] == 640
        and (c["model"]["optimizer"], c["model"]["scheduler"]) == ("adamw", "one_cycle")
    ),
    # "the default network with a third block of 128 channels, AdamW with a one-cycle schedule and label smoothing,
    # for 13 epochs"
    "best": lambda c: (
        c["model"]["channels"] == [32, 64, 128]
        and (c["model"]["optimizer"], c["model"]["scheduler"]) == ("adamw", "one_cycle")
        and c["model"]["label_smoothing"] > 0
        and c["trainer"]["max_epochs"] == 13
    ),
    # "Data-parallel training on every GPU of this machine ... layered on the default config"
    "ddp": lambda c: (
        (c["trainer"]["devices"], c["trainer"]["strategy"]) == (-1, "ddp")
        and c["model"]["lr_scaling"] == "linear"
        and c["trainer"]["max_epochs"] == 10
    ),
    # "Fashion-MNIST ... layered on the default config", with its own pixel statistics
    "fashion": lambda c: (
        c["data"]["dataset"] == "fashion_mnist" and c["model"]["mean"] != 0.1307 and c["trainer"]["max_epochs"] == 10
    ),
    # "Also log the run to MLflow ... A local SQLite store in the current folder"
    "mlflow": lambda c: c["mlflow"]["tracking_uri"] == "sqlite:///mlflow.db",
}


def test_every_fit_preset_is_in_the_table_of_promises():
    assert sorted(PROMISES) == [name for name in presets.preset_names() if name not in COMMAND_PRESETS]


@pytest.mark.parametrize("name", PROMISES)
def test_each_preset_parses_and_sets_what_its_comment_promises(cli, name):
    shown = cli("fit", "-c", name, "--print_config")
    assert shown.code == 0, shown.err
    assert PROMISES[name](yaml.safe_load(shown.out)), (presets.preset_path(name).read_text(), shown.out)


def test_a_preset_is_layered_over_the_default_and_a_flag_wins_over_both(cli):
    shown = cli("fit", "-c", "fast", "--trainer.max_epochs=5", "--print_config")
    assert shown.code == 0, shown.err
    config = yaml.safe_load(shown.out)
    assert config["trainer"]["precision"] == "bf16-mixed", "the default config's, which fast.yaml does not set"
    assert config["model"]["channels"] == [16, 32, 64] and config["trainer"]["max_epochs"] == 5


def test_an_unknown_preset_names_the_ones_there_are(cli):
    result = cli("fit", "-c", "fsat", "--print_config")
    assert result.code == 2 and result.out == ""
    names = ", ".join(sorted(path.stem for path in (REPO / "configs").glob("*.yaml")))
    assert "fast" in names and "mnist" in names
    assert result.err.strip() == (
        f"lightning-digits: error: config 'fsat' is neither a file nor a shipped preset (presets: {names} in "
        f"{presets.PRESETS_DIR}); give a path to a YAML file or one of those names"
    )


def test_a_missing_config_file_is_one_line(cli, tmp_path):
    result = cli("fit", f"--config={tmp_path / 'nope.yaml'}")
    assert result.code == 2 and result.err.count("\n") == 1
    assert f"config file {tmp_path / 'nope.yaml'} does not exist" in result.err


def test_a_config_that_is_not_yaml_names_the_file_and_the_place(cli, tmp_path):
    broken = tmp_path / "mine.yaml"
    broken.write_text("trainer:\n  max_epochs: [1\nmodel:\n  lr: 0.01\n")
    result = cli("fit", "-c", str(broken), "--print_config")
    assert result.code == 2 and result.err.count("\n") == 1
    assert result.err.startswith(f"lightning-digits: error: {broken}: not valid YAML (") and "line 3" in result.err
    assert "<unicode string>" not in result.err


def test_inline_yaml_still_reaches_the_parser(cli):
    result = cli("fit", "--config", "{trainer: {max_epochs: 3}}", "--print_config")
    assert result.code == 0, result.err
    assert yaml.safe_load(result.out)["trainer"]["max_epochs"] == 3


def test_the_best_preset_trains_its_three_block_network_with_its_one_cycle_schedule(cli, tiny_data, tmp_path):
    art = tmp_path / "art"
    fit = cli(
        "fit",
        "-c",
        "best",
        f"--data.data_dir={tiny_data}",
        "--data.val_size=50",
        "--data.batch_size=32",
        f"--artifacts_dir={art}",
        "--trainer.max_epochs=3",
        "--trainer.limit_train_batches=3",
    )
    assert fit.code == 0, fit.err[-3000:]
    config = yaml.safe_load((art / "logs" / "version_0" / "config.yaml").read_text())
    assert config["model"]["channels"] == [32, 64, 128] and config["model"]["scheduler"] == "one_cycle"
    with open(art / "logs" / "version_0" / "metrics.csv") as log:
        validations = [row for row in csv.DictReader(log) if row["val_acc"]]
    assert len(validations) == 3, "validated after each of the three epochs"
    # The checkpoint that evaluate, export and serve use is the epoch of the best validation accuracy (the first
    # of equals), not of the lowest validation loss, which label smoothing keeps from falling.
    accuracies = [float(row["val_acc"]) for row in validations]
    assert load_checkpoint(art / "digits_cnn.ckpt").epoch == accuracies.index(max(accuracies))


def test_the_one_cycle_presets_keep_the_best_validation_accuracy_and_run_their_schedule_to_its_end(cli):
    """A one-cycle schedule gains most in its last epochs: early stopping on the validation loss (flat under label
    smoothing) would cut it where the learning rate is still high, as `-c fast --trainer.max_epochs=40` was at 23."""
    one_cycle = [name for name in PROMISES if "scheduler: one_cycle" in presets.preset_path(name).read_text()]
    assert sorted(one_cycle) == ["best", "fast"]
    for preset in one_cycle:
        shown = cli("fit", "-c", preset, "--print_config")
        assert shown.code == 0, shown.err
        config = yaml.safe_load(shown.out)
        assert config["checkpoint"] | {"dirpath": None} == {"dirpath": None, "monitor": "val_acc", "mode": "max"}
        assert config["early_stopping"]["patience"] >= 100, f"{preset}: early stopping is on"
