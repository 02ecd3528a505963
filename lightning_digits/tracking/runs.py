"""MLflow tracking, in this one package: the `--mlflow.*` options, the record of a fit's run in its artifacts
folder (so that `evaluate` logs its files to the same run), and the study's parent run under which `tune` nests
its trials. What fit adds to its Trainer (Lightning's MLFlowLogger, the record callback) is in fit_logger.py.

MLflow is an optional extra: nothing here imports it until a run asks for it, and then a missing install is
one line saying how to get it. This module imports no Lightning (evaluate uses it). Knows nothing of the model,
the data or Optuna.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from lightning_digits.errors import UserError

RUN_RECORD = "mlflow_run.json"  # in the artifacts folder: which MLflow run the last fit there logged to
INSTALL = 'pip install "lightning-digits[mlflow]"'


@dataclass
class MlflowSettings:
    """Log to MLflow too (`-c mlflow` sets a local SQLite store). The CSV log stays: `evaluate` reads it.

    Args:
        tracking_uri: MLflow tracking store: `sqlite:///mlflow.db` (a local file), `http://host:5000`, ...;
            null: no MLflow.
        experiment_name: the MLflow experiment the run goes into.
        run_name: the run's name (default: MLflow's random one).
        parent_run_id: nest this run under another run (`tune` sets it to its study's run).
    """

    tracking_uri: str | None = None
    experiment_name: str = "lightning-digits"
    run_name: str | None = None
    parent_run_id: str | None = None


def require_mlflow(what: str) -> None:
    try:
        import mlflow  # noqa: F401
    except ImportError as exc:
        raise UserError(f"{what} needs MLflow, which is not installed; install it with: {INSTALL}") from exc


def read_record(folder: Path | str) -> dict | None:
    """The MLflow run that the last fit into `folder` logged to, or None."""
    path = Path(folder) / RUN_RECORD
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None


def log_files_since(folder: Path | str, since: float) -> str | None:
    """Log the files written in `folder` since `since` (evaluate's reports, plots and ONNX model) to the run
    that the fit there logged to; returns its id, or None when that fit did not use MLflow."""
    record = read_record(folder)
    if record is None:
        return None
    require_mlflow(f"{Path(folder) / RUN_RECORD} (the fit there logged to MLflow)")
    from mlflow.tracking import MlflowClient

    client = MlflowClient(record["tracking_uri"])
    for path in sorted(Path(folder).iterdir()):
        if path.is_file() and path.stat().st_mtime >= since and path.suffix != ".ckpt" and path.name != RUN_RECORD:
            client.log_artifact(record["run_id"], str(path))
    return record["run_id"]


class StudyRun:
    """The MLflow run of a whole study: trials nest under it (their fits get `--mlflow.parent_run_id`)."""

    def __init__(self, settings: MlflowSettings, run_id: str | None, study_name: str) -> None:
        require_mlflow("tune with --mlflow.tracking_uri")
        from mlflow.tracking import MlflowClient

        self.client = MlflowClient(settings.tracking_uri)
        if run_id is None:
            experiment = self.client.get_experiment_by_name(settings.experiment_name)
            experiment_id = (
                experiment.experiment_id if experiment else self.client.create_experiment(settings.experiment_name)
            )
            run_id = self.client.create_run(experiment_id, run_name=f"study {study_name}").info.run_id
        self.run_id = run_id

    def trial_finished(self, folder: Path, state: str, value: float | None) -> None:
        """Tag the trial's own run with its outcome (a pruned fit ends as a failed run in Lightning's eyes)."""
        record = read_record(folder)
        if record is None:
            return
        self.client.set_tag(record["run_id"], "optuna.state", state)
        if state == "PRUNED":
            self.client.set_terminated(record["run_id"], status="KILLED")

    def log_best(self, metrics: dict[str, float], files: list[Path]) -> None:
        for name, value in metrics.items():
            self.client.log_metric(self.run_id, name, value)
        for path in files:
            self.client.log_artifact(self.run_id, str(path))
