"""`lightning-digits tune`: check the search space against `fit`, open (or continue) the study, run trials until
the study has `n_trials` finished ones, then write the study's files and test the best checkpoint once.

`TuneOptions` is the one place the command's options are written (their types, defaults and help): cli.py builds
the command line from it, and the study reads it. cli.py imports this module for those options; Optuna, MLflow and
the Lightning side load when the options are run only, so other commands do not pay for them. Knows nothing of
model internals.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from lightning_digits.errors import UserError


@dataclass(frozen=True)
class TuneOptions:
    """Search hyperparameters with Optuna; each trial is `lightning-digits fit` with the trial's values.

    `lightning-digits tune -c tune` runs the shipped search (configs/tune.yaml); run the same command again to
    continue a study, or on many machines with one --storage and --study_name to share it.

    Args:
        space: the search space: dotted fit keys -> {low, high[, log | step]} or {choices: [...]}.
        configs: fit configs every trial starts from (preset names or YAML files), as `fit -c` takes them.
        fit: fixed fit settings for every trial, dotted or nested (e.g. --fit.data.data_dir /data; several
            of one section at once: --fit.trainer '{max_epochs: 1, limit_train_batches: 20}', since a second
            --fit.trainer.KEY would replace the first, and is refused).
        n_trials: the study's target of finished (complete or pruned) trials, all workers and runs together.
        timeout: start no new trial after this many seconds (null: no limit).
        storage: Optuna storage URL (default: sqlite:///STUDY_DIR/study.db); postgresql://... for many machines.
        study_name: the study's name in the storage; its files go to STUDY_DIR/STUDY_NAME/.
        study_dir: where the default SQLite storage and the study's folder go.
        seed: seeds the TPE sampler (each trial's draw depends on it and on the trial's number).
        random_trials: TPE's random start-up trials before it models the results.
        pruning: stop trials whose validation accuracy after an epoch is below the median of earlier trials.
        prune_after: finished trials before pruning starts.
        heartbeat: seconds between a running trial's heartbeats; one silent for twice that is marked failed
            (its worker was killed) and retried once.
        test_best: after the study, test the best trial's checkpoint once on the test set.
    """

    space: dict[str, Any] | None = None
    configs: list[str] | None = None
    fit: dict[str, Any] | None = None
    n_trials: int = 20
    timeout: float | None = None
    storage: str | None = None
    study_name: str = "digits"
    study_dir: str = "artifacts_tune"
    seed: int = 0
    random_trials: int = 10
    pruning: bool = True
    prune_after: int = 3
    heartbeat: int = 60
    test_best: bool = True

    def __call__(self) -> None:
        """Run the study (a method jsonargparse does not offer as a subcommand, as it would `run`)."""
        tune(self)


def refuse_replaced_fit_flags(args: list[str]) -> None:
    """Two `--fit.SECTION.KEY` flags of one section with different keys: jsonargparse keeps the last alone (the
    section's mapping is replaced), so `--fit.trainer.max_epochs=1 --fit.trainer.limit_train_batches=2` trained
    every epoch in full, without a word. One line naming them and the form that keeps both."""
    keys: dict[str, str] = {}
    for arg in args:
        dotted_key = arg.split("=", 1)[0].removeprefix("--fit.")
        if not arg.startswith("--fit.") or "." not in dotted_key:
            continue
        section, key = dotted_key.split(".", 1)
        first = keys.setdefault(section, key)
        if first != key:
            raise UserError(
                f"--fit.{section}.{first} and --fit.{section}.{key}: the second would replace the first; give a "
                f"section's settings together: --fit.{section} '{{{first}: ..., {key}: ...}}'"
            )


def tune(options: TuneOptions) -> None:
    from lightning_digits.tuning import search  # Optuna and the training side: only now

    search.tune(options)
