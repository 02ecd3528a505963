"""Two CPU processes (gloo) under Lightning's DDP, through the real CLI in subprocesses: Lightning's ddp
launcher re-executes sys.argv, so it must never run inside the pytest process. The one-process runs that the
DDP tests compare with or resume in need no launcher, so they run here through main(argv). Faults as they come:
an exception on one rank, SIGTERM from outside."""

import csv
import importlib.util
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from harness import ProcessGroup

from .conftest import DDP_BOUNDED, REPO, TINY_MODEL, run_cli, tiny_fit_args, write_dataset
from .test_extra import write_user_digits

DDP = ["--trainer.accelerator=cpu", "--trainer.devices=2", "--trainer.strategy=ddp"]


def _logged(art, key: str) -> float:
    """The value of `key` in the newest CSV log (each run writes a new version folder)."""
    latest = max(art.glob("logs/version_*"), key=lambda p: int(p.name.removeprefix("version_")))
    [value] = [row[key] for row in csv.DictReader(open(latest / "metrics.csv")) if row.get(key)]
    return float(value)


@pytest.mark.slow
def test_ddp_fit_test_predict_match_one_process(tmp_path, real_mnist, cli):
    """One two-process fit serves four checks. `--model.lr_scaling linear` under two processes doubles
    one-cycle's rates (OneCycleLR used to be given the unscaled --model.lr, so every process count trained at
    the one-process rate). The fit takes a user's own digits (`--data.extra_dir`): each rank reads the folder
    itself and must make the same split of it. With the mlflow extra installed it also logs to MLflow, whose
    record callback reads trainer.log_dir, a broadcast every rank must join (it hung on rank 0): one finished
    run. Then test and predict under two processes must match one."""
    art = tmp_path / "art"
    common = [f"--data.data_dir={real_mnist}", f"--artifacts_dir={art}", *TINY_MODEL]
    one_cycle = ["--model.scheduler=one_cycle", "--model.lr_scaling=linear", "--model.lr=0.01"]
    mine = write_user_digits(tmp_path / "mine", per_class=3)
    mlflow_uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    tracking = ["-c", "mlflow", f"--mlflow.tracking_uri={mlflow_uri}"] if importlib.util.find_spec("mlflow") else []
    fit = run_cli(
        "fit",
        *tracking,
        *common,
        *DDP,
        *one_cycle,
        "--data.train_subset=640",
        "--data.val_size=1000",
        "--trainer.max_epochs=1",
        f"--data.extra_dir={mine}",
        "--progress_bar.refresh_rate=0",
        cwd=tmp_path,  # MLflow keeps a SQLite store's artifacts under ./mlruns
        timeout=240,
    )
    assert fit.returncode == 0, fit.stderr[-3000:]
    assert sorted(p.name for p in art.glob("*.ckpt")) == ["digits_cnn.ckpt", "digits_cnn_final.ckpt"]
    assert len(list(art.glob("logs/version_*"))) == 1, "only rank 0 writes logs"
    # The rate logged at the epoch's start is one-cycle's first: its peak (2 x 0.01) over div_factor 25.
    assert _logged(art, "lr-Adam") == pytest.approx(2 * 0.01 / 25)
    # The ranks write to one stderr at once, so the two lines may share one: find each message, not each line.
    joined = re.findall(r"data\.extra_dir: 30 images;.*?to validation", fit.stderr)
    assert len(joined) == 2 and len(set(joined)) == 1, fit.stderr[-3000:]
    if tracking:
        _check_one_mlflow_run(mlflow_uri, epochs=1)
    checkpoint = f"--ckpt_path={art / 'digits_cnn.ckpt'}"

    two = run_cli("test", *common, *DDP, checkpoint, timeout=180)
    assert two.returncode == 0, two.stderr[-3000:]
    two_processes = _logged(art, "test_acc"), _logged(art, "test_loss")
    one = cli("test", *common, "--trainer.accelerator=cpu", "--trainer.devices=1", checkpoint)
    assert one.code == 0, one.err[-3000:]
    one_process = _logged(art, "test_acc"), _logged(art, "test_loss")
    assert two_processes[0] == one_process[0], "test accuracy must be that of the whole test set"
    assert two_processes[1] == pytest.approx(one_process[1], rel=1e-5)

    predict = run_cli("predict", *common, *DDP, checkpoint, timeout=180)
    assert predict.returncode == 0, predict.stderr[-3000:]
    rows = list(csv.DictReader(open(art / "predictions.csv")))
    assert [r["file"] for r in rows] == [f"test[{i}]" for i in range(10_000)]
    assert not list(art.glob(".predictions*")), "no temporary file left behind"


def _check_one_mlflow_run(uri: str, epochs: int) -> None:
    from mlflow.tracking import MlflowClient

    client = MlflowClient(uri)
    [experiment] = [e for e in client.search_experiments() if e.name == "lightning-digits"]
    [run] = client.search_runs([experiment.experiment_id])
    assert run.info.status == "FINISHED"
    assert len(client.get_metric_history(run.info.run_id, "val_acc")) == epochs, "one value per epoch, from rank 0"
    assert "config.yaml" in [f.path for f in client.list_artifacts(run.info.run_id)]


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    # 640 training images after the 200 for validation: 10 steps of 32 per rank and epoch.
    return write_dataset(tmp_path_factory.mktemp("ddp_faults") / "data", n_train=840, n_test=200)


def _fit(data, art, *extra: str) -> list[str]:
    return [sys.executable, "-m", "lightning_digits", *tiny_fit_args(data, art, *extra)]


def _until(run: ProcessGroup, path: Path, seconds: float) -> None:
    """Wait until `path` exists; fail if the run ends first or it takes longer than `seconds`."""
    deadline = time.monotonic() + seconds
    while not path.exists():
        assert run.process.poll() is None, f"ended before {path.name} appeared:\n{run.output()[-3000:]}"
        assert time.monotonic() < deadline, f"{path.name} did not appear within {seconds} s:\n{run.output()[-3000:]}"
        time.sleep(0.2)


def _exit_code(run: ProcessGroup, seconds: float, since: str) -> int:
    try:
        return run.process.wait(timeout=seconds)
    except subprocess.TimeoutExpired:
        pytest.fail(f"still running {seconds} s after {since}:\n{run.output()[-3000:]}")


@pytest.mark.slow
def test_an_exception_on_one_rank_ends_every_rank_within_seconds_and_names_it(tmp_path, data):
    raised = tmp_path / "raised"
    run = ProcessGroup(
        _fit(
            data,
            tmp_path / "art",
            *DDP_BOUNDED,
            "--trainer.max_epochs=5",
            "--trainer.callbacks+=tests.faults.RaiseOnRank",
            "--trainer.callbacks.rank=1",
            "--trainer.callbacks.step=3",
            f"--trainer.callbacks.mark={raised}",
        ),
        tmp_path / "output.txt",
        cwd=REPO,
    )
    try:
        _until(run, raised, seconds=150)
        code = _exit_code(run, 30, since="rank 1 raised")
        run.wait_gone(within=10)  # every rank, not only the one we started
    finally:
        run.kill()
    output = run.output()
    assert code != 0, output[-3000:]
    assert "rank 1 of 2 failed with RuntimeError: injected failure on rank 1 at step 3; ending every rank" in output
    assert "Traceback" in output and "RuntimeError: injected failure on rank 1 at step 3" in output


@pytest.mark.slow
def test_sigterm_stops_every_rank_at_one_step_with_a_checkpoint_that_resumes(tmp_path, data, cli):
    """SIGTERM to the launching process only (what `timeout` or a container's stop sends): every rank stops after
    the same step within the grace period, rank 0 saves that step, and `--ckpt_path last` goes on from it."""
    art = tmp_path / "art"
    final = art / "digits_cnn_final.ckpt"
    run = ProcessGroup(_fit(data, art, *DDP_BOUNDED, "--trainer.max_epochs=50"), tmp_path / "output.txt", cwd=REPO)
    try:
        _until(run, final, seconds=150)
        time.sleep(1.0)  # into the second epoch
        run.send(signal.SIGTERM)
        code = _exit_code(run, 30, since="SIGTERM")
        run.wait_gone(within=10)
    finally:
        run.kill()
    output = run.output()
    assert code == 128 + signal.SIGTERM, output[-3000:]
    stopped = torch.load(final, map_location="cpu", weights_only=True)
    assert f"SIGTERM: stopped after step {stopped['global_step']} on every rank" in output, output[-3000:]
    assert "Traceback" not in output, output[-3000:]

    resumed = cli(*_fit(data, art, f"--trainer.max_epochs={stopped['epoch'] + 2}", "--ckpt_path=last")[3:])
    assert resumed.code == 0, resumed.err[-3000:]
    finished = torch.load(final, map_location="cpu", weights_only=True)
    assert finished["epoch"] == stopped["epoch"] + 1 and finished["global_step"] > stopped["global_step"]
