"""A study from start to end, for `tune`: every check before the first trial (the space's shape, the storage,
`fit`'s own parser on the space's extreme values), the Optuna objective (a trial is a `fit` with overrides,
pruned from its validation accuracy per epoch), one progress line per trial, and afterwards the study's files
and the one test of the best checkpoint. Knows nothing of model internals.
"""

from __future__ import annotations

import json
import logging
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import optuna
from jsonargparse import ArgumentError
from lightning.pytorch import LightningModule, Trainer
from optuna.trial import FrozenTrial, TrialState
from optuna_integration import PyTorchLightningPruningCallback

from lightning_digits import presets
from lightning_digits.atomic import ensure_writable_dir, write_text
from lightning_digits.errors import UserError, say
from lightning_digits.tracking.runs import MlflowSettings, StudyRun
from lightning_digits.tuning import space, study_files
from lightning_digits.tuning import study as studies
from lightning_digits.tuning import trial as trials
from lightning_digits.tuning.command import TuneOptions
from lightning_digits.tuning.space import Dimension

DB_FILE = "study.db"
BEST_JSON = "best.json"


@dataclass
class Plan:
    """What every trial shares: its configs and fixed flags, the study's folder, the MLflow parent run."""

    dims: list[Dimension]
    configs: list[str]
    fixed: list[str]
    folder: Path
    options: TuneOptions
    mlflow: StudyRun | None = None

    def trial_folder(self, number: int) -> Path:
        return self.folder / f"trial_{number:04d}"


def _check_against_fit(plan: Plan):
    """fit's own parser and the model's and data's checks, on every end of every range and every choice, before
    any trial starts: a key fit does not know or a value it refuses is one line now, not a failed trial later."""
    corners = max(len(dim.extremes()) for dim in plan.dims)
    config = None
    for corner in range(corners):
        values = {dim.key: dim.extremes()[min(corner, len(dim.extremes()) - 1)] for dim in plan.dims}
        args = trials.fit_args(plan.configs, plan.fixed, space.flags(values), plan.folder)
        try:
            config = trials.check(args)
        except (UserError, ArgumentError) as exc:
            message = " ".join(str(exc).split())
            raise UserError(
                f"fit refuses the tune config's settings (space at {' '.join(space.flags(values))}): {message}"
            ) from exc
    devices, strategy = config.trainer.devices, str(config.trainer.strategy)
    if any(name in strategy for name in ("ddp", "fsdp", "deepspeed")) or devices not in (1, "1", [0], "auto"):
        raise UserError(
            f"tune runs each trial in one process (trainer.devices={devices}, trainer.strategy={strategy}); for "
            "more devices start one tune worker per device on the same --storage (e.g. CUDA_VISIBLE_DEVICES=N)"
        )
    return config


def _plan(options: TuneOptions) -> Plan:
    dims = space.parse_space(options.space)
    if options.n_trials < 1:
        raise UserError(f"--n_trials must be at least 1, got {options.n_trials}")
    folder = Path(options.study_dir) / options.study_name
    ensure_writable_dir(folder, "--study_dir")
    configs = [presets.expand_config_args(["--config", config])[1] for config in options.configs or []]
    return Plan(dims, configs, space.flags(space.dotted(options.fit)), folder, options)


class _Pruning(PyTorchLightningPruningCallback):
    """optuna-integration's callback, except at the last epoch: stopping there saves nothing and would throw
    away a finished trial's result. Its value is still reported, for the plots of values per epoch."""

    def __init__(self, trial: optuna.Trial, monitor: str) -> None:
        super().__init__(trial, monitor)
        self.trial = trial  # the parent keeps it as a private attribute

    def on_validation_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        score = trainer.callback_metrics.get(self.monitor)
        if trainer.sanity_checking or score is None or trainer.current_epoch + 1 < (trainer.max_epochs or 0):
            super().on_validation_end(trainer, pl_module)
        else:
            self.trial.report(score.item(), step=trainer.current_epoch)


def _objective(plan: Plan):
    options = plan.options

    def objective(trial: optuna.Trial) -> float:
        studies.reseed_for(trial, options.seed, options.random_trials)
        values = {dim.key: dim.suggest(trial) for dim in plan.dims}
        folder = plan.trial_folder(trial.number)
        trial.set_user_attr("worker", studies.WORKER)
        trial.set_user_attr("folder", str(folder.resolve()))
        extra = []
        if plan.mlflow is not None:
            extra = [f"--mlflow.parent_run_id={plan.mlflow.run_id}", f"--mlflow.run_name=trial {trial.number}"]
        args = trials.fit_args(plan.configs, plan.fixed, [*space.flags(values), *extra], folder)
        callbacks = [_Pruning(trial, monitor=trials.OBJECTIVE)] if options.pruning else []
        try:
            result = trials.run_fit(args, callbacks)
        except RuntimeError as exc:  # out of memory, say: this trial fails, the study goes on
            trial.set_user_attr("error", f"{type(exc).__name__}: {' '.join(str(exc).split())[:200]}")
            raise
        trial.set_user_attr("checkpoint", str(Path(result.checkpoint).resolve()))
        trial.set_user_attr("config", str(Path(result.config).resolve()))
        return result.value

    return objective


def _after_trial(plan: Plan):
    def callback(study: optuna.Study, trial: FrozenTrial) -> None:
        say(studies.progress_line(study, trial, plan.options.n_trials))
        study_files.write_trials(study.get_trials(deepcopy=False), plan.folder)
        if plan.mlflow is not None:
            plan.mlflow.trial_finished(plan.trial_folder(trial.number), trial.state.name, trial.value)

    return callback


@contextmanager
def _one_line_per_trial() -> Iterator[None]:
    """tune's own line per trial instead of Lightning's and Optuna's notices per fit."""
    names = ("lightning.pytorch", "lightning.fabric")
    levels = {name: logging.getLogger(name).level for name in names}
    for name in names:
        logging.getLogger(name).setLevel(logging.WARNING)
    studies.quiet_optuna()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)  # heartbeats, plots
        # Trials are built from args on purpose; sys.argv holds tune's own command line.
        warnings.filterwarnings("ignore", ".*args parameter is intended to run from within Python.*")
        # A trial's logs go into its fresh folder before its checkpoints do.
        warnings.filterwarnings("ignore", ".*Checkpoint directory .*trial_\\d+ exists and is not empty.*")
        try:
            yield
        finally:
            for name, level in levels.items():
                logging.getLogger(name).setLevel(level)


def _test_once(study: optuna.Study, best: FrozenTrial) -> dict:
    """The test set's figures for the best trial: measured once per study (recorded in the storage)."""
    tested = study.user_attrs.get("tested", {})
    if tested.get("trial") == best.number:
        return tested
    checkpoint = best.user_attrs.get("checkpoint", "")
    if not Path(checkpoint).is_file():
        say(
            f"the best trial ran on {best.user_attrs.get('worker', 'another worker')}; test its checkpoint there: "
            f"lightning-digits test -c {best.user_attrs.get('config')} --ckpt_path {checkpoint}"
        )
        return {}
    say(f"testing the best trial's checkpoint once on the test set: {checkpoint}")
    tested = {"trial": best.number, **trials.run_test(best.user_attrs["config"], checkpoint)}
    study.set_user_attr("tested", tested)
    return tested


def _write_outputs(plan: Plan, study: optuna.Study) -> None:
    all_trials = study.get_trials(deepcopy=False)
    files = [study_files.write_trials(all_trials, plan.folder)]
    states = {state: sum(t.state == state for t in all_trials) for state in TrialState}
    summary = (
        f"study {study.study_name}: {states[TrialState.COMPLETE] + states[TrialState.PRUNED]} finished "
        f"({states[TrialState.PRUNED]} pruned), {states[TrialState.FAIL]} failed"
    )
    if not states[TrialState.COMPLETE]:
        say(f"{summary}; no trial completed, so no best.yaml")
        return
    best = study.best_trial
    tested = _test_once(study, best) if plan.options.test_best else {}
    config = Path(best.user_attrs.get("config", ""))
    if config.is_file():
        text = study_files.best_yaml(config, best, study.study_name, plan.folder, tested)
        write_text(plan.folder / study_files.BEST_YAML, text)
        files.append(plan.folder / study_files.BEST_YAML)
    record = {
        "trial": best.number,
        "val_acc": best.value,
        "params": best.params,
        **best.user_attrs,
        **{key: value for key, value in tested.items() if key != "trial"},
    }
    write_text(plan.folder / BEST_JSON, json.dumps(record, indent=2) + "\n")
    files += [plan.folder / BEST_JSON, *study_files.write_plots(study, plan.folder, say)]
    if plan.mlflow is not None:
        metrics = {"best_val_acc": best.value, **{f"best_{k}": v for k, v in tested.items() if k != "trial"}}
        plan.mlflow.log_best(metrics, files)
    test = f", test_acc {tested['test_acc']:.4f}" if "test_acc" in tested else ""
    say(f"{summary}; best: trial {best.number}, val_acc {best.value:.4f}{test}; files in {plan.folder}/")


def _study(plan: Plan, storage: optuna.storages.RDBStorage, url: str, fit_config) -> None:
    options = plan.options
    study = studies.open_study(
        storage, options.study_name, options.seed, options.random_trials, options.pruning, options.prune_after
    )
    if fit_config.mlflow.tracking_uri:
        settings = MlflowSettings(**fit_config.mlflow.as_dict())
        plan.mlflow = StudyRun(settings, study.user_attrs.get("mlflow_run_id"), options.study_name)
        study.set_user_attr("mlflow_run_id", plan.mlflow.run_id)
    optuna.storages.fail_stale_trials(study)  # a worker killed since the last run: its trial ends FAILED now
    finished = studies.count(study)
    say(
        f"study {options.study_name} in {studies.shown(url)}: {finished}/{options.n_trials} trials finished; "
        f"worker {studies.WORKER}"
    )
    if finished < options.n_trials:
        started = time.monotonic()
        study.optimize(
            _objective(plan),
            timeout=options.timeout,
            catch=(RuntimeError,),
            callbacks=[_after_trial(plan), studies.stop_when_done(options.n_trials)],
        )
        say(f"this worker ran for {time.monotonic() - started:.1f} s")
    _write_outputs(plan, study)


def tune(options: TuneOptions) -> None:
    plan = _plan(options)
    url = options.storage or f"sqlite:///{Path(options.study_dir).resolve() / DB_FILE}"
    with _one_line_per_trial():
        storage = studies.open_storage(url, options.heartbeat)
        fit_config = _check_against_fit(plan)
        _study(plan, storage, url, fit_config)
