"""Every mistake a user can make ends in one line on stderr that says what is wrong and how to fix it, exit
code 2, no traceback, and existing artifacts untouched.

Each case runs through main(argv) in this process: the one line and the exit code come from main() itself.
A representative few run as real subprocesses too, for what only the whole program shows (no traceback, no
usage screen, nothing else that says "error"). The IDX reader's own errors are unit-tested in test_idx.py;
here one of them stands for all, since the CLI turns every UserError into its line the same way."""

from __future__ import annotations

import gzip
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
from PIL import Image

from .conftest import REPO, TINY_MODEL, synthetic_digits, write_dataset
from .test_extra import write_user_digits

SENTINELS = {"summary.json": '{"test_accuracy": 0.99}\n', "digits_cnn.onnx": "previous model"}


@dataclass
class Case:
    name: str
    args: Callable[[Path, Path], list[str]]  # (tmp folder, artifacts folder) -> arguments after the program
    message: str  # a piece of the one line the user must see
    module: str = "lightning_digits"


def _data(tmp: Path, change: Callable[[Path], None] | None = None) -> Path:
    folder = write_dataset(tmp / "data", n_train=120, n_test=40)
    if change:
        change(folder)
    return folder


def _fit(
    tmp: Path, art: Path, data: Path, *extra: str, length: tuple[str, ...] = ("--trainer.fast_dev_run=1",)
) -> list[str]:
    return [
        "fit",
        f"--data.data_dir={data}",
        "--data.val_size=20",
        "--data.download=false",
        f"--artifacts_dir={art}",
        *length,
        *TINY_MODEL,
        *extra,
    ]


def _rewrite(name: str, make: Callable[[bytes], bytes]) -> Callable[[Path], None]:
    def change(folder: Path) -> None:
        path = folder / name
        path.write_bytes(make(path.read_bytes()))

    return change


def _images_folder(tmp: Path, write: Callable[[Path], None]) -> Path:
    folder = tmp / "images"
    folder.mkdir()
    write(folder)
    return folder


def _predict(tmp: Path, art: Path, images: Path) -> list[str]:
    return [
        "predict",
        f"--data.data_dir={_data(tmp)}",
        f"--data.predict_path={images}",
        f"--artifacts_dir={art}",
        *TINY_MODEL,
    ]


def _huge_png(folder: Path) -> None:
    Image.new("1", (20_000, 20_000), 1).save(folder / "huge.png")


def _checkpoint_of_another_model(tmp: Path) -> Path:
    path = tmp / "other.ckpt"
    torch.save({"state_dict": {"encoder.weight": torch.zeros(3, 3)}, "hyper_parameters": {"width": 3}}, path)
    return path


def _teacher(tmp: Path, name: str, **data: object) -> Path:
    """A checkpoint of a tiny network as `fit` saves one (weights, hyperparameters, the data module's), unfitted."""
    from lightning_digits.models.lit import LitDigits

    model = LitDigits(channels=(4,), hidden=0)
    path = tmp / "teachers" / name / "digits_cnn.ckpt"
    path.parent.mkdir(parents=True)
    torch.save(
        {
            "state_dict": model.state_dict(),
            "hyper_parameters": dict(model.hparams),
            "datamodule_hyper_parameters": {"dataset": "mnist", "split_seed": 42, "val_size": 20, **data},
        },
        path,
    )
    return path


def _distill(tmp: Path, art: Path, *args: str) -> list[str]:
    return [
        "distill",
        *args,
        f"--data.data_dir={_data(tmp)}",
        "--data.val_size=20",
        f"--artifacts_dir={art}",
        "--trainer.fast_dev_run=1",
        *TINY_MODEL,
    ]


def _adapt(tmp: Path, art: Path, digits: Callable[[Path], Path] | None, checkpoint: Path | None = None) -> list[str]:
    """`adapt` of the digits that `digits` writes (none given when it is None) from `checkpoint` (a tiny one)."""
    return [
        "adapt",
        *([str(digits(tmp / "mine"))] if digits else []),
        f"--checkpoint={checkpoint or _teacher(tmp, 'start')}",
        f"--output_dir={art}",
        f"--data.data_dir={_data(tmp)}",
        "--trainer.fast_dev_run=1",
    ]


def _digits(per_class: int = 3, classes: range = range(10)) -> Callable[[Path], Path]:
    return lambda folder: write_user_digits(folder, per_class, classes)


def _not_class_layout(folder: Path) -> Path:
    write_user_digits(folder, 3)
    (folder / "sevens").mkdir()
    return folder


CASES = [
    Case(
        "truncated file",
        lambda t, a: _fit(
            t, a, _data(t, _rewrite("train-images-idx3-ubyte.gz", lambda b: gzip.compress(gzip.decompress(b)[:-100])))
        ),
        "truncated or corrupt",
    ),
    Case(
        "predict path with no images", lambda t, a: _predict(t, a, _images_folder(t, lambda f: None)), "no images found"
    ),
    Case(
        "unreadable image",
        lambda t, a: _predict(t, a, _images_folder(t, lambda f: (f / "broken.png").write_bytes(b"\x89PNG nope"))),
        "broken.png: cannot read it as an image",
    ),
    Case("huge image", lambda t, a: _predict(t, a, _images_folder(t, _huge_png)), "above the limit of 40,000,000"),
    Case(
        "checkpoint path does not exist",
        lambda t, a: ["test", f"--data.data_dir={_data(t)}", f"--artifacts_dir={a}", f"--ckpt_path={t / 'no.ckpt'}"],
        "does not exist",
    ),
    Case(
        "file that is not a checkpoint",
        lambda t, a: [
            "test",
            f"--data.data_dir={_data(t)}",
            f"--artifacts_dir={a}",
            f"--ckpt_path={_data(t) / 'train-labels-idx1-ubyte.gz'}",
        ],
        "is not a readable PyTorch checkpoint",
    ),
    Case(
        "unknown view set, named before the checkpoint is read",
        lambda t, a: ["evaluate", f"--checkpoint={t / 'no.ckpt'}", "--tta=sideways"],
        "tta 'sideways' is not a view set; choose one of none, shifts",
    ),
    Case(
        "checkpoint of another model",
        lambda t, a: ["evaluate", f"--checkpoint={_checkpoint_of_another_model(t)}"],
        "is not a lightning-digits checkpoint",
    ),
    Case(
        "corrupt ONNX file",
        lambda t, a: [str(a / "digits_cnn.onnx"), str(_images_folder(t, lambda f: None))],
        "not a loadable ONNX model",
        module="lightning_digits.onnx_predictor",
    ),
    Case(
        "missing ONNX file",
        lambda t, a: [str(t / "missing.onnx"), str(_images_folder(t, lambda f: None))],
        "missing.onnx does not exist; write one with `lightning-digits export`",
        module="lightning_digits.onnx_predictor",
    ),
    Case(
        "unknown config key",
        lambda t, a: _fit(t, a, _data(t), "--model.nope=1"),
        "unrecognized arguments: --model.nope",
    ),
    Case(
        "wrong type",
        lambda t, a: _fit(t, a, _data(t), "--model.lr=fast"),
        "Expected a <class 'float'>. Got value: fast",
    ),
    Case(
        "negative learning rate",
        lambda t, a: _fit(t, a, _data(t), "--model.lr=-0.001"),
        "model.lr must be above 0, got -0.001",
    ),
    Case("batch size 0", lambda t, a: _fit(t, a, _data(t), "--data.batch_size=0"), "data.batch_size must be at least"),
    Case("augmentation out of range", lambda t, a: _fit(t, a, _data(t), "--data.rotation=500"), "rotation must be in"),
    Case(
        "EMA decay out of range",
        lambda t, a: _fit(t, a, _data(t), "--ema_decay=1.5"),
        "--ema_decay must be in (0, 1), or null for none, got 1.5",
    ),
    Case(
        "validation off while early stopping watches it",
        lambda t, a: _fit(t, a, _data(t), "--trainer.limit_val_batches=0"),
        "--trainer.limit_val_batches 0 turns validation off, but --early_stopping.monitor val_loss",
    ),
    Case(
        "validation fraction below one batch (Lightning's own check)",
        lambda t, a: _fit(
            t,
            a,
            _data(t),
            "--trainer.limit_val_batches=0.001",
            length=("--trainer.max_epochs=1", "--trainer.limit_train_batches=1"),
        ),
        "Lightning refuses the settings: You requested to check 0.001 of the `val_dataloader`",
    ),
    Case("distill without a teacher", lambda t, a: _distill(t, a), "distill needs a teacher"),
    Case(
        "distill from a folder without checkpoints",
        lambda t, a: _distill(t, a, str(_images_folder(t, lambda f: None))),
        "no digits_cnn.ckpt below",
    ),
    Case(
        "distill from members trained on different data sets",
        lambda t, a: _distill(t, a, str(_teacher(t, "a")), str(_teacher(t, "b", dataset="fashion_mnist"))),
        "the checkpoints were trained on different data sets (fashion_mnist, mnist); use one",
    ),
    Case(
        "distill into a student preset that does not exist",
        lambda t, a: _distill(t, a, str(_teacher(t, "a")), "-c", "fsat"),
        "config 'fsat' is neither a file nor",
    ),
    Case(
        "distill a teacher of another data set",
        lambda t, a: _distill(t, a, str(_teacher(t, "a", dataset="fashion_mnist"))),
        "the teacher was trained on fashion_mnist, the student on mnist (--data.dataset)",
    ),
    Case(
        "distill a teacher that learnt the student's validation images",
        lambda t, a: _distill(t, a, str(_teacher(t, "a", split_seed=7))),
        "a teacher network held out other validation images (--data.split_seed 7",
    ),
    Case(
        "distill at a temperature out of range",
        lambda t, a: _distill(t, a, str(_teacher(t, "a")), "--temperature=0"),
        "--temperature must be above 0",
    ),
    Case(
        "adapt without digits",
        lambda t, a: _adapt(t, a, None),
        "adapt needs your digits: a folder with a sub-folder of images per class",
    ),
    Case(
        "adapt with a class missing",
        lambda t, a: _adapt(t, a, _digits(classes=range(9))),
        "has no digits of class 9; adapt needs every class 0-9",
    ),
    Case(
        "adapt with too few digits of a class",
        lambda t, a: _adapt(t, a, _digits(per_class=1)),
        "too few digits of class 0 (1), 1 (1)",
    ),
    Case(
        "adapt from a folder not in the class layout",
        lambda t, a: _adapt(t, a, _not_class_layout),
        "is not a class folder (its name must be a class index",
    ),
    Case(
        "adapt a checkpoint of another data set",
        lambda t, a: _adapt(t, a, _digits(), _teacher(t, "f", dataset="fashion_mnist")),
        "was trained on fashion_mnist; adapt teaches handwritten digits to a model of mnist",
    ),
    Case(
        "adapt without a checkpoint",
        lambda t, a: _adapt(t, a, _digits(), t / "none.ckpt"),
        "none.ckpt does not exist; train first (`lightning-digits fit`) or pass --checkpoint",
    ),
    Case(
        "artifacts folder cannot be written",
        lambda t, a: _fit(t, (a / "summary.json") / "sub", _data(t)),
        "cannot write to",
    ),
]


REPRESENTATIVE = ["truncated file", "checkpoint of another model", "corrupt ONNX file", "unknown config key"]
DEBUG = "evaluate with --debug"


def _artifacts_with_sentinels(tmp_path: Path) -> Path:
    art = tmp_path / "artifacts"
    art.mkdir()
    for name, text in SENTINELS.items():
        (art / name).write_text(text)
    return art


def _assert_one_clear_line(case: Case, stderr: str, art: Path) -> None:
    assert "Traceback" not in stderr and "usage:" not in stderr, stderr[-3000:]
    error_lines = [line for line in stderr.splitlines() if "error" in line.lower()]
    assert len(error_lines) == 1, stderr[-3000:]
    assert case.message in error_lines[0], error_lines[0]
    for name, text in SENTINELS.items():
        assert (art / name).read_text() == text, f"{name} was touched"


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_bad_input_gives_one_clear_line(case: Case, tmp_path: Path, cli, capsys):
    art = _artifacts_with_sentinels(tmp_path)
    args = case.args(tmp_path, art)
    if case.module == "lightning_digits":
        result = cli(*args)
        code, stderr = result.code, result.err
    else:
        from lightning_digits.onnx_predictor import main

        with pytest.raises(SystemExit) as exit_:
            main(args)
        code, stderr = exit_.value.code, capsys.readouterr().err
    assert code == 2, stderr[-2000:]
    _assert_one_clear_line(case, stderr, art)


@pytest.fixture(scope="module")
def whole_program(tmp_path_factory) -> dict[str, tuple[subprocess.CompletedProcess, Path]]:
    """The representative cases and the --debug run as real subprocesses, all started at once: most of each
    one's time is importing torch and Lightning, which two cores do side by side."""
    started = {}
    for case in [c for c in CASES if c.name in REPRESENTATIVE]:
        tmp = tmp_path_factory.mktemp("whole_program")
        art = _artifacts_with_sentinels(tmp)
        started[case.name] = [sys.executable, "-m", case.module, *case.args(tmp, art)], art
    missing = tmp_path_factory.mktemp("debug") / "missing.ckpt"
    started[DEBUG] = [sys.executable, "-m", "lightning_digits", "evaluate", f"--checkpoint={missing}", "--debug"], None
    processes = {
        name: subprocess.Popen(command, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for name, (command, _) in started.items()
    }
    results = {}
    for name, process in processes.items():
        stdout, stderr = process.communicate(timeout=180)
        results[name] = subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr), started[name][1]
    return results


@pytest.mark.slow  # ~15 s of real processes: `make test-fast` (the edit loop) leaves them to `make test`
@pytest.mark.parametrize("name", REPRESENTATIVE)
def test_the_whole_program_shows_only_that_line(name: str, whole_program):
    """A real subprocess per kind of error (data, checkpoint, other entry point, argument), as a user runs it."""
    [case] = [c for c in CASES if c.name == name]
    result, art = whole_program[name]
    assert result.returncode == 2, result.stderr[-2000:]
    _assert_one_clear_line(case, result.stderr, art)


@pytest.mark.slow  # ~15 s of real processes: `make test-fast` (the edit loop) leaves them to `make test`
def test_debug_flag_shows_the_traceback(whole_program):
    result, _ = whole_program[DEBUG]
    assert result.returncode != 0 and "Traceback" in result.stderr
    assert "UserError" in result.stderr and "missing.ckpt" in result.stderr


@pytest.mark.parametrize("command", ["evaluate", "serve", "tune"])
def test_commands_beside_lightnings_refuse_a_multi_process_launcher(cli, monkeypatch, command):
    monkeypatch.setenv("WORLD_SIZE", "2")  # as torchrun sets it for each of two processes
    result = cli(command)
    assert result.code == 2 and f"`{command}` runs in one process; start it without torchrun" in result.err


def test_non_image_files_are_skipped_with_a_notice(tmp_path, cli):
    art = tmp_path / "art"
    images = tmp_path / "images"
    images.mkdir()
    digits, _ = synthetic_digits(2, seed=0)
    for i, digit in enumerate(digits):
        Image.fromarray(255 - digit).save(images / f"{i}.png")
    (images / "notes.txt").write_text("not an image")
    result = cli(*_predict(tmp_path, art, images))
    assert result.code == 0, result.err[-2000:]
    assert "skipping" in result.err and "notes.txt" in result.err, result.err
    assert len((art / "predictions.csv").read_text().splitlines()) == 3
