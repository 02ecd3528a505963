"""Configs by name or by path, and the one line a user gets for a config file that is missing or not YAML."""

from __future__ import annotations

import csv

import yaml

from lightning_digits import presets
from lightning_digits.checkpoints import load_checkpoint

from .conftest import REPO


def test_a_preset_by_name_is_the_same_as_its_file(cli):
    by_name = cli("fit", "-c", "fast", "--print_config")
    by_path = cli("fit", f"--config={REPO / 'configs' / 'fast.yaml'}", "--print_config")
    assert by_name.code == by_path.code == 0, by_name.err + by_path.err
    assert by_name.out == by_path.out and yaml.safe_load(by_name.out)["model"]["channels"] == [16, 32, 64]


def test_every_file_in_configs_is_a_preset():
    assert presets.preset_names() == sorted(path.stem for path in (REPO / "configs").glob("*.yaml"))


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
    preset = yaml.safe_load((presets.PRESETS_DIR / "best.yaml").read_text())
    assert preset["early_stopping"]["patience"] > preset["trainer"]["max_epochs"], "a one-cycle run goes to its end"
    with open(art / "logs" / "version_0" / "metrics.csv") as log:
        validations = [row for row in csv.DictReader(log) if row["val_acc"]]
    assert len(validations) == 3, "validated after each of the three epochs"
    # The checkpoint that evaluate, export and serve use is the epoch of the best validation accuracy (the first
    # of equals), not of the lowest validation loss, which label smoothing keeps from falling.
    accuracies = [float(row["val_acc"]) for row in validations]
    assert load_checkpoint(art / "digits_cnn.ckpt").epoch == accuracies.index(max(accuracies))


def test_the_one_cycle_presets_keep_the_checkpoint_of_the_best_validation_accuracy(cli):
    for preset in ("fast", "best"):
        shown = cli("fit", "-c", preset, "--print_config")
        assert shown.code == 0, shown.err
        assert yaml.safe_load(shown.out)["checkpoint"] | {"dirpath": None} == {
            "dirpath": None,
            "monitor": "val_acc",
            "mode": "max",
        }
