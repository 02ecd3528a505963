"""MLflow tracking through the real command (`fit -c mlflow`, then `evaluate`), read back through MLflow's own
client API; and the one line a user gets when MLflow is asked for but not installed. (A two-process fit logging
to MLflow rides on test_ddp's fit, to start its two ranks once.)"""

from __future__ import annotations

import json
import sys

import pytest

from .conftest import TINY_MODEL

pytest.importorskip("mlflow", reason='the mlflow extra is not installed (pip install -e ".[mlflow]")')


def test_fit_logs_config_metrics_and_checkpoints_and_evaluate_adds_its_files(cli, tmp_path, tiny_data, monkeypatch):
    from mlflow.tracking import MlflowClient

    monkeypatch.chdir(tmp_path)  # MLflow keeps a SQLite store's artifacts under ./mlruns
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    art = tmp_path / "art"
    fit = cli(
        "fit",
        "-c",
        "mlflow",
        f"--mlflow.tracking_uri={uri}",
        "--mlflow.run_name=tiny",
        f"--data.data_dir={tiny_data}",
        "--data.val_size=50",
        "--data.batch_size=32",
        f"--artifacts_dir={art}",
        "--trainer.max_epochs=2",
        "--trainer.limit_train_batches=3",
        *TINY_MODEL,
    )
    assert fit.code == 0, fit.err[-3000:]
    assert (art / "logs" / "version_0" / "metrics.csv").is_file(), "the CSV log stays: evaluate reads it"

    client = MlflowClient(uri)
    [experiment] = [e for e in client.search_experiments() if e.name == "lightning-digits"]
    [run] = client.search_runs([experiment.experiment_id])
    assert run.info.run_name == "tiny" and run.info.status == "FINISHED"
    assert json.loads((art / "mlflow_run.json").read_text())["run_id"] == run.info.run_id
    assert [m.step for m in client.get_metric_history(run.info.run_id, "val_acc")] == [2, 5], "one value per epoch"
    assert float(run.data.params["lr"]) == 0.001
    assert run.data.tags["checkpoint.digits_cnn"] == str(art / "digits_cnn.ckpt")
    assert run.data.tags["checkpoint.digits_cnn_final"] == str(art / "digits_cnn_final.ckpt")
    assert "config.yaml" in [f.path for f in client.list_artifacts(run.info.run_id)]

    evaluate = cli("evaluate", f"--checkpoint={art / 'digits_cnn.ckpt'}", "--baselines=false")
    assert evaluate.code == 0, evaluate.err[-3000:]
    assert f"logged to MLflow run {run.info.run_id}" in evaluate.err
    logged = {f.path for f in client.list_artifacts(run.info.run_id)}
    assert {"digits_cnn.onnx", "summary.json", "confusion_matrix.png", "classification_report.txt"} <= logged
    assert not any(name.endswith(".ckpt") for name in logged), "checkpoints are named by tag, not copied"


def test_a_later_fit_without_mlflow_leaves_evaluate_out_of_mlflow(cli, tmp_path, tiny_data):
    art = tmp_path / "art"
    art.mkdir()
    (art / "mlflow_run.json").write_text('{"tracking_uri": "sqlite:///nowhere.db", "run_id": "x"}')
    fit = cli(
        "fit",
        f"--data.data_dir={tiny_data}",
        "--data.val_size=50",
        "--data.batch_size=32",
        f"--artifacts_dir={art}",
        "--trainer.fast_dev_run=1",
        *TINY_MODEL,
    )
    assert fit.code == 0, fit.err[-3000:]
    assert not (art / "mlflow_run.json").exists(), "the old record would send evaluate's files to another run"


def test_asking_for_mlflow_without_it_installed_is_one_line(cli, tmp_path, tiny_data, monkeypatch):
    monkeypatch.setitem(sys.modules, "mlflow", None)  # `import mlflow` now fails as if it were not installed
    result = cli("fit", "-c", "mlflow", f"--data.data_dir={tiny_data}", f"--artifacts_dir={tmp_path / 'art'}")
    assert result.code == 2 and result.err.count("\n") == 1, result.err[-2000:]
    assert result.err.startswith("lightning-digits: error: --mlflow.tracking_uri needs MLflow, which is not installed")
    assert 'pip install "lightning-digits[mlflow]"' in result.err
    assert not list((tmp_path / "art").glob("*.ckpt"))
