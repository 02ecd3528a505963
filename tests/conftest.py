"""Shared fixtures: tiny IDX data sets written by the tests, the real MNIST from ../shared, and two ways to run
the command: `cli` (main(argv) in this process, for everything a fresh Python proves nothing more about) and
`run_cli` (a real subprocess, for kills, DDP, and what a user sees of the whole program on stderr)."""

from __future__ import annotations

import importlib
import logging
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

# Under `make test`'s workers (pytest-xdist), each worker and every process it starts gets its share of the cores
# for torch's threads: two workers of two threads each on two cores wait on each other (OpenMP's threads wait
# busily). Set before torch is first imported, here or in a process a test starts.
if "PYTEST_XDIST_WORKER_COUNT" in os.environ:
    share = max(1, (os.cpu_count() or 1) // int(os.environ["PYTEST_XDIST_WORKER_COUNT"]))
    os.environ.setdefault("OMP_NUM_THREADS", str(share))

import numpy as np
import pytest

from lightning_digits.data.idx import write_idx

REPO = Path(__file__).resolve().parent.parent
# bench/ on the path, as it is for a bench run as a script: the tests import bench/harness.py (which starts and stops
# servers for both) and run each bench in its tiny form in this process (tests/test_benches.py).
BENCH = REPO / "bench"
sys.path.insert(0, str(BENCH))
REAL_MNIST = Path(os.environ.get("LIGHTNING_DIGITS_DATA", REPO.parent / "shared" / "data" / "mnist"))
COMMITTED_MODEL = REPO / "artifacts_digits" / "digits_cnn.onnx"  # from `make train && make evaluate`


def committed_model_accuracy() -> float:
    """The committed model's test accuracy as its own metadata records it (what `serve` reports): tests read it
    here, so that training and exporting the model again cannot break them."""
    import onnx

    metadata = {p.key: p.value for p in onnx.load(str(COMMITTED_MODEL), load_external_data=False).metadata_props}
    return float(metadata["test_accuracy"])


def synthetic_digits(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Images whose class is a bright bar at one of ten positions: learnable, valid, and fast to make."""
    rng = np.random.default_rng(seed)
    labels = (np.arange(n) % 10).astype(np.uint8)
    images = rng.integers(0, 40, size=(n, 28, 28), dtype=np.uint8)
    for i, label in enumerate(labels):
        images[i, 4:24, 3 + 2 * label : 5 + 2 * label] = 255
    return images, labels


def write_dataset(folder: Path, n_train: int = 300, n_test: int = 100, gz: bool = True) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    suffix = ".gz" if gz else ""
    for prefix, n, seed in (("train", n_train, 0), ("t10k", n_test, 1)):
        images, labels = synthetic_digits(n, seed)
        write_idx(folder / f"{prefix}-images-idx3-ubyte{suffix}", images)
        write_idx(folder / f"{prefix}-labels-idx1-ubyte{suffix}", labels)
    return folder


@pytest.fixture
def tiny_data(tmp_path: Path) -> Path:
    return write_dataset(tmp_path / "tiny")


@pytest.fixture
def real_mnist() -> Path:
    if not (REAL_MNIST / "t10k-images-idx3-ubyte.gz").is_file():
        pytest.skip(f"real MNIST not found at {REAL_MNIST}; set LIGHTNING_DIGITS_DATA")
    return REAL_MNIST


@pytest.fixture(autouse=True)
def _unit_tests_start_no_process(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """A test marked `unit` (make test-unit: seconds in all) fails if it starts a process."""
    if request.node.get_closest_marker("unit"):

        def refuse(*args: object, **kwargs: object) -> None:
            raise AssertionError("a test marked unit started a process: take the mark off, or the process out")

        monkeypatch.setattr(subprocess.Popen, "__init__", refuse)


# Files whose module-scoped fixtures are dear (a trained model, a built wheel, a server, a study, a browser, the
# processes a fixture starts): under `make test` each stays on one worker, so that its fixtures are made once;
# every other test is handed out on its own, so that the two workers end together. (test_ddp and test_reliability
# share only a generated data set, cheaper to write twice than to keep their slow tests on one worker.)
SHARED_FIXTURE_FILES = {
    "test_averaging",
    "test_benches",
    "test_disk_faults",
    "test_errors",
    "test_evaluation",
    "test_mnist_c",
    "test_package",
    "test_predict",
    "test_serve",
    "test_tune",
    "test_web",
}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Slow tests first: the workers take them while the quick ones are left to even out the end (a long test
    collected last would run alone while the other worker sits idle)."""
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)  # stable: the order within each kind is kept


def pytest_xdist_make_scheduler(config: pytest.Config, log: object) -> object | None:
    """`-n 2` (pytest-xdist's `--dist load`): a file of SHARED_FIXTURE_FILES is one unit of work, any other test
    its own. (xdist's `--dist loadgroup` would say the same with marks, but pytest 9.2's node ids keep it from
    grouping anything: pytest-xdist issue 1386.) Units go out in collection order with `--no-loadscope-reorder`."""
    if config.getvalue("dist") != "load":
        return None
    from xdist.scheduler import LoadScopeScheduling

    class SharedFixtureScheduling(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            path = nodeid.split("::", 1)[0]
            return path if Path(path).stem in SHARED_FIXTURE_FILES else nodeid

    return SharedFixtureScheduling(config, log)


@dataclass
class Ran:
    code: int
    out: str
    err: str


@pytest.fixture(scope="session")
def _cli_main():
    """Imported outside any test's capsys: Lightning's loggers keep the stderr they find at import, and one
    that a finished test had captured is closed by the next. cli.py itself imports Lightning only when a
    Lightning command runs, so its Lightning side is imported here too."""
    import lightning_digits.training.lightning_commands  # noqa: F401
    from lightning_digits.cli import main

    return main


@contextmanager
def _environment_put_back() -> Iterator[None]:
    """The environment as it was before, whatever a command run in this process set in it (Lightning's
    PL_GLOBAL_SEED, ...), so that later subprocesses start clean."""
    saved = dict(os.environ)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


@pytest.fixture
def cli(_cli_main, capsys, monkeypatch):
    """`lightning-digits ARGS` as main(argv) in this process: its exit code, stdout and stderr. Environment
    variables it sets (Lightning's PL_GLOBAL_SEED, ...) are put back, so later subprocesses start clean."""
    main = _cli_main
    monkeypatch.setattr(sys, "argv", ["lightning-digits"])  # not pytest's own arguments: LightningCLI warns

    def run(*args: str) -> Ran:
        capsys.readouterr()
        try:
            with _environment_put_back():
                main(list(args))
            code = 0
        except SystemExit as exit_:
            code = 0 if exit_.code is None else exit_.code if isinstance(exit_.code, int) else 1
        out, err = capsys.readouterr()
        return Ran(code, out, err)

    return run


@pytest.fixture
def lightning_run(monkeypatch):
    """`lightning-digits fit|validate|test|predict ARGS` in this process, returning Lightning's CLI object (its
    trainer, model and config) for the test to look into. Environment variables the run sets (Lightning's
    PL_GLOBAL_SEED, ...) are put back, so later subprocesses start clean."""
    from lightning_digits.training.lightning_commands import run_lightning

    monkeypatch.setattr(sys, "argv", ["lightning-digits"])  # not pytest's own arguments: LightningCLI warns

    def run(*args: str):
        with _environment_put_back():
            return run_lightning(list(args))

    return run


@pytest.fixture
def commands_in_process(cli, monkeypatch):
    """`python -m lightning_digits ARGS` that a bench starts with subprocess.run runs as main(ARGS) in this process
    instead: the same command and parser, without a Python and a Lightning to start for each (seconds apiece).
    Every other process, and a DDP fit (its launcher starts the ranks from sys.argv), is started for real."""
    start = subprocess.run

    def run(command, *args, check=False, **kwargs):
        ddp = any("strategy=ddp" in str(arg) for arg in command)
        if ddp or list(command[:3]) != [sys.executable, "-m", "lightning_digits"]:
            return start(command, *args, check=check, **kwargs)
        ran = cli(*map(str, command[3:]))
        if check and ran.code:
            raise subprocess.CalledProcessError(ran.code, command, ran.out, ran.err)
        return subprocess.CompletedProcess(command, ran.code, ran.out, ran.err)

    monkeypatch.setattr(subprocess, "run", run)


def run_bench(name: str, args: list[str], monkeypatch: pytest.MonkeyPatch, capsys) -> list[str]:
    """`python bench/NAME.py ARGS` as its main() in this process: the lines it printed since the last command it
    ran in this process (the last is the JSON line that every bench ends with)."""
    module = importlib.import_module(name)
    monkeypatch.setattr(sys, "argv", [str(BENCH / f"{name}.py"), *args])
    capsys.readouterr()
    module.main()
    return capsys.readouterr().out.strip().splitlines()


class _Collect(logging.Handler):
    def __init__(self, level: int) -> None:
        super().__init__(level)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


@pytest.fixture
def notices():
    """The text of what the package told the user through logging (the "lightning_digits" logger) during the
    test. A handler on that logger itself: the CLI stops it propagating to the root logger, where caplog is."""
    handler = _Collect(logging.INFO)
    logger = logging.getLogger("lightning_digits")
    level = logger.level
    logger.setLevel(logging.INFO)
    logger.addHandler(handler)
    yield lambda: "\n".join(handler.messages)
    logger.removeHandler(handler)
    logger.setLevel(level)


def sigint_as_from_a_terminal() -> None:
    """A process's SIGINT as a terminal's Ctrl-C finds it (the default), for `preexec_fn`: a suite started in the
    background (`make test &`) would otherwise hand its children SIGINT ignored, as a shell without job control does,
    and a test of Ctrl-C would see the signal do nothing."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def run_cli(*args: str, cwd: Path | None = None, timeout: float = 300, env: dict | None = None):
    """Run the real command in a subprocess, as a user would from a terminal."""
    full_env = {**os.environ, **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "lightning_digits", *args],
        capture_output=True,
        text=True,
        cwd=cwd or REPO,
        timeout=timeout,
        env=full_env,
        preexec_fn=sigint_as_from_a_terminal,
    )


# Small, fast training settings for CLI tests (a narrow network, no extra loggers' cost worth noting).
TINY_MODEL = ["--model.channels=[8,16]", "--model.hidden=32", "--trainer.precision=32-true"]


def tiny_fit_args(data: Path, art: Path, *extra: str) -> list[str]:
    """`fit` of the tiny network on a small written data set (200 images held out, batches of 32), quiet: the run
    that the tests of kills, resumes, locks and full disks interrupt."""
    return [
        "fit",
        f"--data.data_dir={data}",
        "--data.val_size=200",
        "--data.batch_size=32",
        f"--artifacts_dir={art}",
        *TINY_MODEL,
        "--progress_bar.refresh_rate=0",
        "--trainer.enable_model_summary=false",
        *extra,
    ]


# Two CPU processes (gloo) with a process-group timeout of one minute instead of 30: a collective that waits for
# a rank that is gone gives up within the test rather than after it.
DDP_BOUNDED = [
    "--trainer.accelerator=cpu",
    "--trainer.devices=2",
    "--trainer.strategy=lightning.pytorch.strategies.DDPStrategy",
    "--trainer.strategy.timeout=0:01:00",
]
