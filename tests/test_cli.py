"""The command's subcommands, options, configs, fit and resume. In this process through main(argv) (the
lightning-hydra-template's way), except the one check of what a user sees of a whole run on stderr."""

import csv
import functools
import inspect
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from PIL import Image

from lightning_digits import demo
from lightning_digits.evaluation import commands, ensemble
from lightning_digits.serving import server
from lightning_digits.tuning import command as tune_command

from .conftest import REPO, TINY_MODEL, run_cli

# Each subcommand's --help must show options of its own: a missing or mis-wired command shows none of them.
OWN_OPTIONS = {
    "fit": ["--trainer.max_epochs", "--model.lr", "--data.batch_size", "--ckpt_path", "--early_stopping.patience"],
    "distill": ["--teacher", "--temperature", "--teacher_weight", "--trainer.max_epochs", "--ema_decay"],
    "adapt": ["--digits", "--start", "--data.extra_weight", "--data.extra_val_fraction", "--trainer.max_epochs"],
    "validate": ["--ckpt_path", "--trainer.limit_val_batches", "--data.data_dir"],
    "test": ["--ckpt_path", "--trainer.limit_test_batches", "--data.data_dir"],
    "predict": ["--ckpt_path", "--data.predict_path", "--trainer.limit_predict_batches"],
    "evaluate": ["--checkpoint", "--baseline_subset", "--mistakes", "--samples"],
    "export": ["--checkpoint", "--output", "--int8"],
    "baselines": ["--dataset", "--subset", "--artifacts_dir"],
    "grid": ["--checkpoint", "--samples", "--seed"],
    "demo": ["--artifacts_dir", "--host", "--port"],
    "tune": ["--space", "--n_trials", "--storage", "--study_name", "--prune_after"],
}
LIGHTNING = ("fit", "validate", "test", "predict", "distill", "adapt")
ONLY_IN = {
    "--trainer.max_epochs": LIGHTNING,
    "--baseline_subset": ("evaluate",),
    "--int8": ("export",),
    "--port": ("demo",),
    "--subset": ("baselines",),
    "--teacher_weight": ("distill",),
}


def _metrics(artifacts) -> list[dict]:
    [metrics_file] = sorted(artifacts.glob("logs/version_*/metrics.csv"))
    with open(metrics_file) as f:
        return list(csv.DictReader(f))


@pytest.mark.parametrize("command", OWN_OPTIONS)
def test_each_subcommand_has_help_with_its_own_options(cli, command):
    result = cli(command, "--help")
    assert result.code == 0, result.err
    for option in OWN_OPTIONS[command]:
        assert option in result.out, f"{command} --help lacks {option}"
    for option, owners in ONLY_IN.items():
        assert command in owners or option not in result.out, f"{command} --help shows {option} of {owners}"


# What each command must run, written out here rather than read from cli.py's table: a command wired to the
# wrong function, or to none, fails below. serve's function is part of the serving side's contract.
RUNS = {
    "evaluate": (commands, "evaluate"),
    "export": (commands, "export"),
    "baselines": (commands, "baselines"),
    "grid": (commands, "grid"),
    "ensemble": (ensemble, "ensemble"),
    "demo": (demo, "demo"),
    "serve": (server, "serve"),
}


@pytest.mark.parametrize("command", RUNS)
def test_each_command_runs_its_own_function(cli, monkeypatch, command):
    module, name = RUNS[command]
    calls = []

    @functools.wraps(getattr(module, name))  # the same signature, so the same options
    def record(*args, **kwargs):
        calls.append(kwargs or args)

    monkeypatch.setattr(module, name, record)
    args = ["a.ckpt", "b.ckpt"] if command == "ensemble" else []
    result = cli(command, *args, "--seed=7" if "seed" in inspect.signature(record).parameters else "--help")
    assert result.code == 0, result.err
    if "seed" in inspect.signature(record).parameters:
        assert len(calls) == 1 and calls[0]["seed"] == 7, calls
    else:
        assert calls == [] and inspect.getdoc(record).splitlines()[0] in " ".join(result.out.split())


def test_tune_parses_its_options_into_one_dataclass_and_runs_it(cli, monkeypatch, tmp_path):
    calls = []
    monkeypatch.setattr(tune_command, "tune", calls.append)
    config = tmp_path / "tune.yaml"
    config.write_text("n_trials: 3\nspace: {model.lr: {low: 0.001, high: 0.01, log: true}}\n")
    result = cli("tune", "-c", str(config), "--seed=7", "--fit.trainer.max_epochs=1")
    assert result.code == 0, result.err
    expected = tune_command.TuneOptions(
        space={"model.lr": {"low": 0.001, "high": 0.01, "log": True}},
        fit={"trainer.max_epochs": 1},
        n_trials=3,
        seed=7,
    )
    assert calls == [expected]


def test_top_level_help_fits_a_terminal_and_lists_the_presets(cli):
    """The presets list grows with each shipped config: on a line of its own it still fits 120 columns."""
    result = cli("--help")
    assert result.code == 0, result.err
    assert max(len(line) for line in result.out.splitlines()) <= 120, result.out
    assert "Presets: best, ddp, fashion, fast, mlflow, mnist." in result.out


def test_unknown_command_is_one_line_naming_the_commands(cli):
    result = cli("fitt")
    assert result.code == 2 and "'fitt' is not a command; choose one of fit, validate" in result.err
    assert "serve, tune" in result.err


# What a command may not import (top-level packages): --help needs none of it, serve and demo no torch,
# Lightning's commands none of the serving, tuning or reporting stack. Beside each, the module that must run.
NOT_LOADED = {
    ("--help",): (("torch", "lightning", "jsonargparse", "numpy", "onnxruntime"), "lightning_digits.cli"),
    ("serve", "--help"): (("torch", "lightning", "matplotlib"), "lightning_digits.serving.server"),
    ("demo", "--help"): (("torch", "lightning", "onnx", "onnxruntime"), "lightning_digits.demo"),
    ("tune", "--help"): (("torch", "lightning", "optuna"), "lightning_digits.tuning.command"),
    # (matplotlib is not on this list: torchmetrics, under Lightning, imports it.)
    ("fit", "--help"): (
        ("litserve", "fastapi", "optuna", "onnxruntime", "sklearn", "mlflow"),
        "lightning_digits.training.lightning_commands",
    ),
    ("distill", "--help"): (
        ("litserve", "fastapi", "optuna", "onnxruntime", "sklearn", "mlflow"),
        "lightning_digits.training.distill",
    ),
    # (adapt exports ONNX and tests before and after: onnxruntime and the reports are its own.)
    ("adapt", "--help"): (("litserve", "fastapi", "optuna", "mlflow"), "lightning_digits.training.adapt"),
}
SHOW_MODULES = """import sys
from lightning_digits.cli import main
try:
    main(sys.argv[1:])
except SystemExit as exit_:
    assert not exit_.code, exit_.code
print(" ".join(sorted(sys.modules)))
"""


@pytest.mark.slow  # ~15 s of real processes: `make test-fast` (the edit loop) leaves them to `make test`
def test_each_command_imports_only_what_it_runs():
    """Which packages a fresh process has loaded after each command's --help (a timing budget would be a flaky
    test; the figures are in docs/benchmarks.md)."""
    processes = {
        args: subprocess.Popen(
            [sys.executable, "-c", SHOW_MODULES, *args],
            cwd=REPO,
            text=True,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        for args in NOT_LOADED
    }
    for args, process in processes.items():
        out, err = process.communicate(timeout=240)
        assert process.returncode == 0, err[-2000:]
        modules = set(out.splitlines()[-1].split())
        forbidden, runs = NOT_LOADED[args]
        loaded = {name.split(".")[0] for name in modules} & set(forbidden)
        assert not loaded, f"{' '.join(args)} imported {sorted(loaded)}"
        assert runs in modules, f"{' '.join(args)} did not reach {runs}"


def test_print_config_shows_the_default_config_applied(cli):
    result = cli("fit", "--print_config")
    assert result.code == 0, result.err
    config = yaml.safe_load(result.out)
    assert config["trainer"]["max_epochs"] == 10
    assert config["model"]["lr"] == 0.001 and config["data"]["batch_size"] == 128
    assert config["checkpoint"]["monitor"] == "val_loss"


def test_overrides_on_the_command_line_win(cli):
    result = cli("fit", "--model.lr=0.01", "--data.batch_size=64", "--print_config")
    assert result.code == 0, result.err
    config = yaml.safe_load(result.out)
    assert config["model"]["lr"] == 0.01 and config["data"]["batch_size"] == 64


@pytest.mark.parametrize("config", sorted((REPO / "configs").glob("*.yaml")), ids=lambda path: path.name)
def test_every_shipped_config_parses_and_sets_what_it_says(cli, config):
    command = "tune" if config.name == "tune.yaml" else "fit"  # the search space is the one non-fit config
    result = cli(command, f"--config={config}", "--print_config")
    assert result.code == 0, result.err
    printed, written = yaml.safe_load(result.out), yaml.safe_load(config.read_text())
    for section, values in written.items():
        for key, value in values.items() if isinstance(values, dict) else [(None, values)]:
            assert (printed[section] if key is None else printed[section][key]) == value, (section, key)


def test_one_cycle_smoke_run_trains_and_integer_limits_are_counts(tmp_path, tiny_data, notices, lightning_run):
    """`fit -c fast --trainer.limit_train_batches 4`: too few steps for one-cycle's warm-up (it divided by zero
    inside OneCycleLR), and `--trainer.limit_val_batches=1` must be one batch, not 1.0 (Lightning's "all")."""
    run = lightning_run(
        "fit",
        f"--config={REPO / 'configs' / 'fast.yaml'}",
        f"--data.data_dir={tiny_data}",
        "--data.val_size=50",
        "--data.batch_size=16",
        "--data.eval_batch_size=10",
        f"--artifacts_dir={tmp_path}",
        "--trainer.max_epochs=1",
        "--trainer.limit_train_batches=4",
        "--trainer.limit_val_batches=1",
        "--progress_bar.refresh_rate=0",
    )
    assert run.trainer.global_step == 4 and run.trainer.num_val_batches == [1]
    assert "the cycle is 5 steps long and this run stops after 4" in notices()
    whole = yaml.safe_load((Path(run.trainer.log_dir) / "config.yaml").read_text())["trainer"]  # as saved
    assert whole["limit_val_batches"] == 1 and isinstance(whole["limit_val_batches"], int)


@pytest.mark.slow  # a whole process (import included): `make test-fast` leaves it to `make test`
def test_fast_dev_run_on_tiny_data_is_quiet(tmp_path, tiny_data):
    """A subprocess on purpose: what the user sees on stderr of a whole run, import-time warnings included."""
    result = run_cli(
        "fit",
        f"--data.data_dir={tiny_data}",
        "--data.val_size=50",
        f"--artifacts_dir={tmp_path / 'art'}",
        "--trainer.fast_dev_run=2",
        *TINY_MODEL,
    )
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    assert "Warning" not in result.stderr and "deprecat" not in result.stderr.lower(), result.stderr
    assert "exists and is not empty" not in result.stderr, "a fresh folder's own lock and logs are no reason to warn"


def test_resume_from_last_continues_the_same_run(cli, tmp_path, tiny_data):
    common = [f"--data.data_dir={tiny_data}", "--data.val_size=50", f"--artifacts_dir={tmp_path}", *TINY_MODEL]
    first = cli("fit", *common, "--trainer.max_epochs=1")
    assert first.code == 0, first.err
    assert (tmp_path / "digits_cnn.ckpt").is_file() and (tmp_path / "digits_cnn_final.ckpt").is_file()
    import torch

    steps_after_first = torch.load(tmp_path / "digits_cnn_final.ckpt", weights_only=True)["global_step"]
    resumed = cli("fit", *common, "--trainer.max_epochs=2", "--ckpt_path=last")
    assert resumed.code == 0, resumed.err
    latest = sorted(tmp_path.glob("logs/version_*/metrics.csv"))[-1]
    epochs = {row["epoch"] for row in csv.DictReader(open(latest)) if row["val_loss"]}
    assert epochs == {"1"}, "the resumed run must train epoch 1 only"
    assert torch.load(tmp_path / "digits_cnn_final.ckpt", weights_only=True)["global_step"] == 2 * steps_after_first


def test_a_one_cycle_run_resumed_for_more_epochs_than_its_schedule_is_one_line(cli, tmp_path, tiny_data):
    common = [
        f"--data.data_dir={tiny_data}",
        "--data.val_size=50",
        f"--artifacts_dir={tmp_path}",
        *TINY_MODEL,
        "--model.scheduler=one_cycle",
        "--data.batch_size=32",
    ]
    assert cli("fit", *common, "--trainer.max_epochs=1").code == 0
    longer = cli("fit", *common, "--trainer.max_epochs=2", "--ckpt_path=last")
    assert longer.code == 2 and "Traceback" not in longer.err
    [line] = [line for line in longer.err.splitlines() if line.startswith("lightning-digits: error:")]
    assert "one_cycle: the checkpoint's schedule is" in line and "resume with the epochs" in line


@pytest.mark.slow
def test_real_mnist_fit_test_predict(cli, tmp_path, real_mnist):
    """A few thousand real digits for one epoch of the fast preset's network (the default network's step is 3x
    its cost and proves nothing more here: tests/test_gpu_check.py fits the default config), then test and
    predict end to end."""
    art = tmp_path / "art"
    data = [f"--data.data_dir={real_mnist}", f"--artifacts_dir={art}"]
    fit = cli(
        "fit",
        "-c",
        "fast",
        *data,
        "--data.train_subset=5000",
        "--data.batch_size=64",
        "--trainer.max_epochs=1",
        "--trainer.limit_val_batches=2",
    )
    assert fit.code == 0, fit.err
    [last_epoch] = [row for row in _metrics(art) if row["val_acc"]]
    assert float(last_epoch["val_acc"]) > 0.9

    test = cli("test", *data, f"--ckpt_path={art / 'digits_cnn.ckpt'}", "--trainer.limit_test_batches=2")
    assert test.code == 0, test.err
    assert "test_acc" in test.out

    drawn = tmp_path / "drawn"
    drawn.mkdir()
    from lightning_digits.data.idx import read_idx

    digits = read_idx(real_mnist / "t10k-images-idx3-ubyte.gz", 3)[:8]
    for i, digit in enumerate(digits):  # dark ink on light paper, scaled up: not MNIST's own format
        Image.fromarray(255 - digit).resize((112, 112)).save(drawn / f"digit_{i}.png")
    predict = cli("predict", *data, f"--ckpt_path={art / 'digits_cnn.ckpt'}", f"--data.predict_path={drawn}")
    assert predict.code == 0, predict.err
    rows = list(csv.DictReader(open(art / "predictions.csv")))
    assert [r["file"].rsplit("/", 1)[1] for r in rows] == [f"digit_{i}.png" for i in range(8)]
    labels = read_idx(real_mnist / "t10k-labels-idx1-ubyte.gz", 1)[:8]
    correct = sum(int(r["predicted"]) == int(label) for r, label in zip(rows, labels, strict=True))
    assert correct >= 6
    assert all(len(r["top3"].split()) == 3 and 0 < float(r["confidence"]) <= 1 for r in rows)
