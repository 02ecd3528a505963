"""What a study leaves in its folder, each file written atomically: `trials.csv` (one row per trial),
`best.yaml` (the best trial's full `fit` config, writing into a folder of its own, so that
`lightning-digits fit -c best.yaml` reproduces it) and Optuna's matplotlib plots. Knows nothing of training.
"""

from __future__ import annotations

import csv
import io
import warnings
from collections.abc import Callable
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import optuna
import yaml
from optuna.trial import FrozenTrial
from optuna.visualization import matplotlib as optuna_plots

from lightning_digits.atomic import atomic_path, write_text

TRIALS_CSV = "trials.csv"
BEST_YAML = "best.yaml"
BEST_FIT_DIR = "best"  # where `fit -c best.yaml` writes: not the trial's own folder
PLOTS = {
    "history.png": optuna_plots.plot_optimization_history,
    "importances.png": optuna_plots.plot_param_importances,
    "parallel.png": optuna_plots.plot_parallel_coordinate,
    "slices.png": optuna_plots.plot_slice,
    "epochs.png": optuna_plots.plot_intermediate_values,
}
# Set by tune for each trial; in best.yaml they go back to fit's defaults (or to the new folder).
TRIAL_ONLY = (
    "checkpoint.dirpath",
    "final_checkpoint.dirpath",
    "trainer.default_root_dir",
    "progress_bar.refresh_rate",
    "trainer.enable_model_summary",
    "mlflow.run_name",
    "mlflow.parent_run_id",
)


def trials_csv(trials: list[FrozenTrial]) -> str:
    keys = sorted({key for trial in trials for key in trial.params})
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["number", "state", "val_acc", "pruned_after_epoch", "seconds", *keys, "worker", "folder"])
    for trial in trials:
        pruned_after = max(trial.intermediate_values, default=-1) + 1 if trial.state.name == "PRUNED" else ""
        seconds = f"{trial.duration.total_seconds():.1f}" if trial.duration else ""
        writer.writerow(
            [
                trial.number,
                trial.state.name,
                "" if trial.value is None else f"{trial.value:.6f}",
                pruned_after,
                seconds,
                *(trial.params.get(key, "") for key in keys),
                trial.user_attrs.get("worker", ""),
                trial.user_attrs.get("folder", ""),
            ]
        )
    return out.getvalue()


def _drop(config: dict, dotted: str) -> None:
    *parents, leaf = dotted.split(".")
    for parent in parents:
        config = config.get(parent) or {}
    if isinstance(config, dict):
        config.pop(leaf, None)


def best_yaml(trial_config: Path, trial: FrozenTrial, study_name: str, folder: Path, tested: dict) -> str:
    """The best trial's config.yaml, pointed at `folder/best` and without tune's own settings."""
    config = yaml.safe_load(trial_config.read_text(encoding="utf-8"))
    for dotted in TRIAL_ONLY:
        _drop(config, dotted)
    config["artifacts_dir"] = str(folder / BEST_FIT_DIR)
    test = f", test_acc {tested['test_acc']:.4f}" if "test_acc" in tested else ""
    header = (
        f"# The best trial of study {study_name!r}: trial {trial.number}, val_acc {trial.value:.4f}{test}.\n"
        f"# Its full fit config; `lightning-digits fit -c {folder / BEST_YAML}` trains it again into\n"
        f"# {folder / BEST_FIT_DIR}/. Chosen values: "
        + ", ".join(f"{key}={value}" for key, value in trial.params.items())
        + "\n"
    )
    return header + yaml.safe_dump(config, sort_keys=False)


def _save(figure: plt.Figure, target: Path) -> None:
    with atomic_path(target) as tmp:
        figure.savefig(tmp, format="png", dpi=100, bbox_inches="tight")
    plt.close(figure)


def _sized(name: str, panels: np.ndarray) -> plt.Figure:
    """Optuna draws at matplotlib's default size whatever the study holds; with ten parameters the tick labels of
    neighbouring axes run into each other. Size the two plots that have a part per parameter to their parts."""
    figure = panels[0].figure
    if name == "slices.png":  # one panel per parameter, in one row
        figure.set_size_inches(4.2 * len(panels), 4.2)
        for panel in panels:
            panel.tick_params(axis="x", labelrotation=30)  # the choices' labels, long ones too
    elif name == "parallel.png":  # one vertical axis per parameter (and the objective), labelled on its right
        axes_count = len(panels[0].get_xticks())
        figure.set_size_inches(1.7 * axes_count + 2, 6.5)
        panels[0].tick_params(axis="x", labelrotation=30)
    return figure


def write_plots(study: optuna.Study, folder: Path, say: Callable[[str], None]) -> list[Path]:
    """Optuna's plots, each one skipped with a line when the study cannot draw it yet (too few trials)."""
    written = []
    for name, plot in PLOTS.items():
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # "experimental" notices, and the ones about empty studies
                axes = plot(study)
            figure = _sized(name, np.ravel(axes))
            _save(figure, folder / name)
            written.append(folder / name)
        except (ValueError, RuntimeError, ZeroDivisionError, IndexError) as exc:
            say(f"        {name} skipped: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}")
            plt.close("all")
    return written


def write_trials(trials: list[FrozenTrial], folder: Path) -> Path:
    write_text(folder / TRIALS_CSV, trials_csv(trials))
    return folder / TRIALS_CSV
