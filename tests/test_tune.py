"""`lightning-digits tune` through the real command on tiny data: one study on the default SQLite storage, run
twice in this process (resume, pruning, the study's files, the one test of the best checkpoint, `fit -c
best.yaml`, MLflow's nested runs); a bad search space or storage as one line before any trial; and two worker
processes on a throwaway PostgreSQL server, one of them killed mid-trial."""

from __future__ import annotations

import csv
import glob
import io
import json
import os
import pwd
import shutil
import subprocess
import sys
import tempfile
import time
from contextlib import redirect_stderr, redirect_stdout
from dataclasses import dataclass
from pathlib import Path

import optuna
import pytest
import yaml
from harness import free_port

from lightning_digits.data import degrade

from .conftest import REPO, TINY_MODEL, Ran, write_dataset

# A trial is `fit` on 250 tiny images: 2 epochs of 3 batches, validated on 50.
TINY_FIT = {
    "data.val_size": 50,
    "data.batch_size": 32,
    "trainer.max_epochs": 2,
    "trainer.limit_train_batches": 3,
    "trainer.num_sanity_val_steps": 0,
    # Without the default config's page-and-camera augmentation, which makes 6 steps on tiny data a coin toss.
    **{f"data.{kind}": 0.0 for kind in degrade.KINDS},
    **dict(flag.removeprefix("--").split("=", 1) for flag in TINY_MODEL),
}
SPACE = {
    "model.lr": {"low": 1.0e-5, "high": 1.0e-1, "log": True},
    "model.label_smoothing": {"low": 0.0, "high": 0.1},
}
GOOD, POOR = {"model.lr": 0.02, "model.label_smoothing": 0.0}, {"model.lr": 1.0e-5, "model.label_smoothing": 0.0}


def _tune_config(folder: Path, data: Path, **settings) -> Path:
    config = {
        "fit": {**TINY_FIT, "data.data_dir": str(data)},
        "space": SPACE,
        "study_dir": str(folder / "tune"),
        "study_name": "tiny",
        **settings,
    }
    path = folder / "tune.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def _in_process(main, *args: str) -> Ran:
    """Like the `cli` fixture, for a module-scoped fixture (which cannot use capsys)."""
    saved, out, err = dict(os.environ), io.StringIO(), io.StringIO()
    try:
        with redirect_stdout(out), redirect_stderr(err):
            main(list(args))
        code = 0
    except SystemExit as exit_:
        code = exit_.code if isinstance(exit_.code, int) else 1
    finally:
        os.environ.clear()
        os.environ.update(saved)
    return Ran(code, out.getvalue(), err.getvalue())


@dataclass
class Study:
    folder: Path  # the study's folder: trials, best.yaml, trials.csv, plots
    url: str
    mlflow_uri: str
    first: Ran
    second: Ran

    def trials(self) -> list[optuna.trial.FrozenTrial]:
        return optuna.load_study(study_name="tiny", storage=self.url).get_trials()


@pytest.fixture(scope="module")
def study(tmp_path_factory, _cli_main) -> Study:
    """Two trials (a good one, then a poor one, queued through Optuna's API), then the same command with
    --n_trials 3: the study continues with one trial that TPE draws."""
    root = tmp_path_factory.mktemp("study")
    mlflow_uri = f"sqlite:///{root / 'mlflow.db'}"
    config = _tune_config(root, write_dataset(root / "data"), prune_after=1)
    settings = yaml.safe_load(config.read_text())
    settings["fit"]["mlflow.tracking_uri"] = mlflow_uri
    config.write_text(yaml.safe_dump(settings))
    (root / "tune").mkdir()
    url = f"sqlite:///{root / 'tune' / 'study.db'}"  # tune's default storage for this study_dir
    queued = optuna.create_study(storage=url, study_name="tiny", direction="maximize")
    queued.enqueue_trial(GOOD)
    queued.enqueue_trial(POOR)
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(root)  # MLflow keeps its artifacts under ./mlruns
        patch.setattr(sys, "argv", ["lightning-digits"])
        first = _in_process(_cli_main, "tune", "-c", str(config), "--n_trials", "2")
        second = _in_process(_cli_main, "tune", "-c", str(config), "--n_trials", "3")
    assert first.code == 0 and second.code == 0, (first.err + second.err)[-4000:]
    return Study(root / "tune" / "tiny", url, mlflow_uri, first, second)


def _progress_lines(err: str) -> list[str]:
    return [line for line in err.splitlines() if line.startswith("trial ")]


def test_running_the_command_again_continues_the_study(study):
    trials = study.trials()
    assert [t.number for t in trials] == [0, 1, 2]
    assert all(t.state.is_finished() and t.state.name in ("COMPLETE", "PRUNED") for t in trials)
    assert len({tuple(sorted(t.params.items())) for t in trials}) == 3, "no trial repeated"
    assert "0/2 trials finished" in study.first.err and "2/3 trials finished" in study.second.err
    first, second = _progress_lines(study.first.err), _progress_lines(study.second.err)
    assert [line.split(" (")[0] for line in first + second] == ["trial 0", "trial 1", "trial 2"], "a line each"
    assert "val_acc" in first[0] and "model.lr=0.02" in first[0]
    rows = list(csv.DictReader(open(study.folder / "trials.csv")))
    assert [row["number"] for row in rows] == ["0", "1", "2"]


def test_a_poor_trial_is_pruned_after_its_first_epoch(study):
    good, poor = study.trials()[:2]
    assert good.state.name == "COMPLETE" and poor.state.name == "PRUNED"
    assert list(poor.intermediate_values) == [0] and poor.intermediate_values[0] < good.intermediate_values[0]
    assert "pruned after epoch 1" in _progress_lines(study.first.err)[1]


def test_the_best_checkpoint_is_tested_once_and_best_yaml_reproduces_it(study, cli, monkeypatch):
    best = max((t for t in study.trials() if t.state.name == "COMPLETE"), key=lambda t: t.value)
    record = json.loads((study.folder / "best.json").read_text())
    assert record["trial"] == best.number and 0 <= record["test_acc"] <= 1
    trial_logs = Path(best.user_attrs["folder"]) / "logs"
    assert len(list(trial_logs.glob("version_*"))) == 2, "the trial's fit, then one test: the test set once"

    monkeypatch.chdir(study.folder.parent.parent)  # the MLflow store of the fixture, as a user would be there
    again = cli("fit", "-c", str(study.folder / "best.yaml"))
    assert again.code == 0, again.err[-3000:]
    refit = study.folder / "best" / "logs" / "version_0" / "metrics.csv"
    values = [float(row["val_acc"]) for row in csv.DictReader(open(refit)) if row["val_acc"]]
    assert max(values) == pytest.approx(best.value, abs=1e-6), "fit -c best.yaml trains the best trial again"


def test_the_study_folder_has_the_plots(study):
    for name in ("history.png", "importances.png", "parallel.png", "slices.png", "epochs.png"):
        assert (study.folder / name).read_bytes()[:4] == b"\x89PNG", name
    assert not list(study.folder.glob(".*")), "no temporary file left behind"


def test_each_trial_is_a_run_nested_under_the_study_run_in_mlflow(study):
    pytest.importorskip("mlflow", reason="the mlflow extra is not installed")
    from mlflow.tracking import MlflowClient

    client = MlflowClient(study.mlflow_uri)
    [experiment] = [e for e in client.search_experiments() if e.name == "lightning-digits"]
    runs = client.search_runs([experiment.experiment_id])
    [parent] = [run for run in runs if run.info.run_name == "study tiny"]
    children = {run.info.run_name: run for run in runs if run.data.tags.get("mlflow.parentRunId") == parent.info.run_id}
    assert sorted(children) == ["trial 0", "trial 1", "trial 2"]
    assert children["trial 1"].data.tags["optuna.state"] == "PRUNED"
    assert float(children["trial 0"].data.params["lr"]) == 0.02
    assert parent.data.metrics["best_val_acc"] == max(t.value for t in study.trials() if t.value is not None)
    assert "best.yaml" in [f.path for f in client.list_artifacts(parent.info.run_id)]


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"space": {"model.lrr": {"low": 0.1, "high": 0.2}}}, "unrecognized arguments: --model.lrr=0.1"),
        ({"space": {"model.lr": {"low": 0.1, "high": 0.1}}}, "'model.lr': empty range, low=0.1 is not below high=0.1"),
        ({"space": {"model.lr": {"choices": ["fast"]}}}, "Expected a <class 'float'>. Got value: fast"),
        ({"space": {"model.lr": {"low": "a", "high": 0.1}}}, "low and high must both be numbers, got low='a'"),
        ({"space": {"model.conv_dropout": {"low": 0.0, "high": 1.5}}}, "model.conv_dropout must be in [0, 1), got 1.5"),
        ({"storage": "postgresql://u:secret@127.0.0.1:1/none"}, "cannot open the study storage postgresql://u:***@"),
    ],
    ids=["unknown key", "empty range", "wrong type", "not a number", "out of fit's range", "unreachable storage"],
)
def test_a_bad_search_space_or_storage_is_one_line_before_any_trial(cli, tmp_path, change, expected):
    config = _tune_config(tmp_path, tmp_path / "no-data-needed", **change)
    result = cli("tune", "-c", str(config))
    assert result.code == 2 and result.err.count("\n") == 1, result.err[-3000:]
    assert result.err.startswith("lightning-digits: error: ") and expected in result.err
    assert not list(tmp_path.glob("tune/tiny/trial_*")), "no trial started"


def test_two_fit_flags_of_one_section_are_refused_in_one_line_naming_the_form_that_keeps_both(cli, tmp_path):
    """jsonargparse keeps the last --fit.trainer.KEY alone: the first would be dropped without a word."""
    flags = ["--fit.trainer.max_epochs=1", "--fit.data.batch_size", "16", "--fit.trainer.limit_train_batches=2"]
    result = cli("tune", "-c", "tune", *flags, f"--study_dir={tmp_path / 'study'}")
    assert result.code == 2 and result.err.count("\n") == 1, result.err[-3000:]
    assert "--fit.trainer '{max_epochs: ..., limit_train_batches: ...}'" in result.err
    assert not (tmp_path / "study").exists(), "refused before anything is written"


def test_the_shipped_search_space_is_one_fit_accepts_at_every_end(tmp_path, monkeypatch):
    from lightning_digits import presets
    from lightning_digits.tuning import search
    from lightning_digits.tuning.command import TuneOptions

    monkeypatch.setattr(sys, "argv", ["lightning-digits"])
    shipped = yaml.safe_load(presets.preset_path("tune").read_text())
    plan = search._plan(TuneOptions(**{**shipped, "study_dir": str(tmp_path)}))
    config = search._check_against_fit(plan)
    assert list(config.model.channels) == [20, 40, 80] and config.trainer.limit_train_batches == 320


@pytest.fixture(scope="module")
def postgres():
    """A throwaway PostgreSQL cluster on a free localhost port, in a temporary folder, stopped afterwards. The
    server refuses to run as root, so under root it runs as `nobody`."""
    # On PATH here; where Debian's package put them otherwise.
    found = shutil.which("pg_ctl") or next(iter(sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"))), None)
    if not found:
        pytest.skip("PostgreSQL's server (initdb, pg_ctl) is not installed; `make postgres` (apt-get) installs it")
    bin_dir = Path(found).parent
    pytest.importorskip("psycopg", reason="no PostgreSQL driver; pip install -e '.[dev]'")
    folder = Path(tempfile.mkdtemp(prefix="pg-"))  # not under pytest's root-only tmp: `nobody` must reach it
    as_user: list[str] = []
    if os.geteuid() == 0:
        nobody = pwd.getpwnam("nobody")
        os.chown(folder, nobody.pw_uid, nobody.pw_gid)
        as_user = ["setpriv", f"--reuid={nobody.pw_uid}", f"--regid={nobody.pw_gid}", "--clear-groups"]
    port, data = free_port(), folder / "data"
    options = f"-p {port} -k {folder} -c listen_addresses=127.0.0.1 -c fsync=off"
    initdb, pg_ctl = [*as_user, str(bin_dir / "initdb")], [*as_user, str(bin_dir / "pg_ctl")]
    subprocess.run([*initdb, "-D", data, "-A", "trust", "-U", "postgres", "--no-sync"], check=True, cwd=folder)
    start = ["-D", data, "-l", folder / "log", "-o", options, "-w", "-t", "30", "start"]
    subprocess.run([*pg_ctl, *start], check=True, capture_output=True, cwd=folder)
    yield f"postgresql://postgres@127.0.0.1:{port}/postgres"
    subprocess.run([*pg_ctl, "-D", data, "-m", "immediate", "stop"], capture_output=True, cwd=folder)
    shutil.rmtree(folder, ignore_errors=True)


def _worker_of(trial: optuna.trial.FrozenTrial) -> int:
    return int(trial.user_attrs.get("worker", ":0").rsplit(":", 1)[1])


@pytest.mark.slow
def test_two_workers_share_a_postgresql_study_and_a_killed_ones_trial_is_retried(postgres, cli, tmp_path):
    config = _tune_config(
        tmp_path, write_dataset(tmp_path / "data"), storage=postgres, heartbeat=1, pruning=False, test_best=False
    )
    logs = [open(tmp_path / f"worker_{i}.log", "w") for i in range(2)]
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}  # two small processes on two cores
    a, b = (
        subprocess.Popen(
            [sys.executable, "-m", "lightning_digits", "tune", "-c", str(config), "--n_trials", "4"],
            cwd=tmp_path,
            stderr=log,
            stdout=log,
            env=env,
        )
        for log in logs
    )
    storage = optuna.storages.RDBStorage(postgres)  # one connection pool: polls take milliseconds, not a connect
    try:
        deadline, states = time.monotonic() + 120, set()
        while time.monotonic() < deadline and a.poll() is None:  # until `a` has finished a trial and started one
            try:
                trials = optuna.load_study(study_name="tiny", storage=storage).get_trials()
            except KeyError:  # not created yet
                trials = []
            states = {t.state.name for t in trials if _worker_of(t) == a.pid}
            if {"COMPLETE", "RUNNING"} <= states:
                break
            time.sleep(0.02)
        a.kill()
        assert {"COMPLETE", "RUNNING"} <= states, f"worker a was not caught inside its second trial: {states}"
        killed_at = time.monotonic()
        assert b.wait(timeout=120) == 0, (tmp_path / "worker_1.log").read_text()[-3000:]
    finally:
        a.kill()
        b.kill()
    time.sleep(max(0.0, killed_at + 2.5 - time.monotonic()))  # its heartbeat is now older than 2 x 1 s
    last = cli("tune", "-c", str(config), "--n_trials", "5")
    assert last.code == 0, last.err[-3000:]

    trials = optuna.load_study(study_name="tiny", storage=postgres).get_trials()
    [failed] = [t for t in trials if t.state.name == "FAIL"]
    assert _worker_of(failed) == a.pid, "the killed worker's trial ended FAILED"
    [retry] = [t for t in trials if t.system_attrs.get("failed_trial") == failed.number]
    assert retry.state.name == "COMPLETE" and retry.params == failed.params, "and ran again, once"
    finished = [t for t in trials if t.state.name == "COMPLETE"]
    assert len(finished) == 5 and len({t.number for t in trials}) == len(trials)
    assert {a.pid, b.pid} <= {_worker_of(t) for t in finished}, "both workers' trials count in one study"
    others = [t for t in finished if t is not retry]
    assert len({tuple(sorted(t.params.items())) for t in others}) == len(others), "no two workers drew alike"
