"""The Optuna study and its storage: a relational database (SQLite by default, PostgreSQL or MySQL for many
machines) with heartbeats, so that a killed worker's trial ends FAILED and is retried once; TPE seeded per
trial number; median pruning; the count of finished trials that every worker stops at; the progress line.

Why an RDB and not Optuna's journal storage: the default must be one file a user can keep and open
(`study.db`), and many machines need a server over the network, not a shared file system with working locks
(the journal's file backend); both are RDBStorage, which also has the heartbeats. Knows nothing of Lightning,
the model or the search space's meaning.
"""

from __future__ import annotations

import logging
import os
import socket

import numpy as np
import optuna
from optuna.storages import RDBStorage, RetryHeartbeatStaleTrialCallback
from optuna.trial import FrozenTrial, TrialState

from lightning_digits.errors import UserError

FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)
WORKER = f"{socket.gethostname()}:{os.getpid()}"


def shown(url: str) -> str:
    """The storage URL without its password, for messages."""
    try:
        from sqlalchemy.engine import make_url

        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # an unparsable URL: the error about it follows
        return url


def open_storage(url: str, heartbeat: int) -> RDBStorage:
    """Connect (and create the tables if new); any failure is one line naming the URL."""
    engine_kwargs = {"connect_args": {"connect_timeout": 10}} if url.startswith("postgresql") else {}
    if url.startswith("sqlite"):
        engine_kwargs = {"connect_args": {"timeout": 60}}  # two workers on one file wait for its lock
    try:
        return RDBStorage(
            url,
            engine_kwargs=engine_kwargs,
            heartbeat_interval=heartbeat,
            heartbeat_stale_trial_callback=RetryHeartbeatStaleTrialCallback(max_retry=1),
        )
    except Exception as exc:  # SQLAlchemy's errors, a missing driver, a URL that is not one
        cause = exc.__cause__ if isinstance(exc, ImportError) and exc.__cause__ else exc  # which driver is missing
        reason = f"{type(cause).__name__}: {' '.join(str(cause).splitlines()[0].split())[:300]}"
        if isinstance(cause, ModuleNotFoundError):
            reason += '; for PostgreSQL: pip install "lightning-digits[postgres]"'
        raise UserError(
            f"cannot open the study storage {shown(url)} ({reason}); give --storage a database "
            "URL that Optuna accepts, e.g. sqlite:///artifacts_tune/study.db or postgresql://user:pass@host/db, "
            "and check that its server is up and reachable"
        ) from exc


def open_study(
    storage: RDBStorage, name: str, seed: int, random_trials: int, pruning: bool, prune_after: int
) -> optuna.Study:
    """Create the study, or load it when it exists: running the same command again continues it."""
    pruner = (
        optuna.pruners.MedianPruner(n_startup_trials=prune_after, n_warmup_steps=0)
        if pruning
        else optuna.pruners.NopPruner()
    )
    return optuna.create_study(
        storage=storage,
        study_name=name,
        direction="maximize",
        sampler=seeded_sampler(seed, 0, random_trials),
        pruner=pruner,
        load_if_exists=True,
    )


def seeded_sampler(seed: int, trial_number: int, random_trials: int) -> optuna.samplers.TPESampler:
    """TPE seeded by the study's seed and the trial's number: a study run again draws what it drew before, and
    two workers never draw the same random start-up trials (a shared seed would make them sample in step).
    constant_liar: with parallel workers, running trials count as poor so that others look elsewhere."""
    trial_seed = int(np.random.SeedSequence([seed, trial_number]).generate_state(1)[0])
    return optuna.samplers.TPESampler(seed=trial_seed, n_startup_trials=random_trials, constant_liar=True)


def reseed_for(trial: optuna.Trial, seed: int, random_trials: int) -> None:
    # Before the first suggestion of a trial: TPE keeps no state but its random generator.
    trial.study.sampler = seeded_sampler(seed, trial.number, random_trials)


def count(study: optuna.Study, states: tuple[TrialState, ...] = FINISHED) -> int:
    return len(study.get_trials(deepcopy=False, states=states))


def stop_when_done(target: int, max_failures: int = 3):
    """Stop this worker once the study (all workers together) has `target` finished trials, or after
    `max_failures` failed trials of its own in a row (a setting that fails every time)."""
    failures = 0

    def callback(study: optuna.Study, trial: FrozenTrial) -> None:
        nonlocal failures
        failures = failures + 1 if trial.state == TrialState.FAIL else 0
        if count(study) >= target or failures >= max_failures:
            study.stop()

    return callback


def _value(value: object) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def progress_line(study: optuna.Study, trial: FrozenTrial, target: int) -> str:
    """trial 7 (4/20 finished): val_acc 0.9871, best 0.9893 (trial 3), 21.4 s; model.lr=0.00213 ..."""
    seconds = trial.duration.total_seconds() if trial.duration else float("nan")
    params = " ".join(f"{key}={_value(value)}" for key, value in trial.params.items())
    head = f"trial {trial.number} ({count(study)}/{target} finished)"
    if trial.state == TrialState.COMPLETE:
        best = study.best_trial
        outcome = f"val_acc {trial.value:.4f}, best {best.value:.4f} (trial {best.number})"
    elif trial.state == TrialState.PRUNED:
        step, value = max(trial.intermediate_values.items(), default=(-1, float("nan")))
        outcome = f"pruned after epoch {step + 1} (val_acc {value:.4f})"
    else:
        outcome = f"failed ({trial.user_attrs.get('error', trial.state.name)})"
    return f"{head}: {outcome}, {seconds:.1f} s; {params}"


def quiet_optuna() -> None:
    # Optuna logs its own line per trial; tune prints one with the pruning and the timing.
    optuna.logging.set_verbosity(logging.WARNING)
