"""`lightning-digits ensemble CKPT [CKPT ...]`: several checkpoints as one model, the average of their
probabilities (optionally over test-time views too), with the same reports as `evaluate` and one ONNX file of
the same contract as a single network's. Members may differ in architecture; they must share a data set.
"""

from __future__ import annotations

import json
from pathlib import Path

from lightning_digits import run_lock
from lightning_digits.atomic import ensure_writable_dir
from lightning_digits.checkpoints import load_members
from lightning_digits.data.sources import DATASETS, load_split
from lightning_digits.errors import UserError, say
from lightning_digits.evaluation import report
from lightning_digits.evaluation.commands import write_summary
from lightning_digits.evaluation.report_files import write_test_reports
from lightning_digits.models.averaging import Averaged, views


def ensemble(
    checkpoints: list[str],
    output_dir: str = "artifacts_ensemble",
    data_dir: str | None = None,
    tta: str = "none",
    samples: int = 9,
    mistakes: int = 36,
    seed: int = 0,
) -> None:
    """Several checkpoints as one model: the reports of `evaluate` and one ONNX file for their average.

    The probabilities of the members (and of the views, with --tta) are averaged; the ONNX model
    (digits_cnn.onnx in the output folder) has the same input and output as a single network's.

    Args:
        checkpoints: two or more checkpoint files, or folders searched for digits_cnn.ckpt (e.g. runs/).
        output_dir: where the reports and the ONNX model go.
        data_dir: folder of the IDX files (default: as the first member's run found them).
        tta: also average over these views of each image (none, shifts, rotations, shifts_rotations).
        samples: images in the inference grid.
        mistakes: misclassified images shown, most confident first.
        seed: picks the inference grid's images.
    """
    member_views = views(tta)
    paths, members = load_members(checkpoints)
    if len(paths) < 2:
        raise UserError(f"an ensemble needs at least two checkpoints, got {len(paths)}; add more, or use evaluate")
    out = Path(output_dir)
    ensure_writable_dir(out, "--output_dir")
    run_lock.hold(out, "ensemble", "--output_dir")
    dataset = members[0].dataset
    test = load_split(dataset, data_dir or members[0].data_hparams.get("data_dir"), "test")
    say(f"{len(members)} members:")
    member_rows = []
    for path, member in zip(paths, members, strict=True):
        accuracy = report.test_pass(member.net, *test).accuracy
        say(f"        {path}: test accuracy {accuracy:.4f}")
        member_rows.append({"checkpoint": str(path), "test_accuracy": accuracy})
    written = write_test_reports(
        Averaged([member.net for member in members], member_views),
        DATASETS[dataset].class_names,
        test,
        out,
        {"samples": samples, "mistakes": mistakes, "seed": seed},
        {"dataset": dataset, "test_time_augmentation": tta, "members": json.dumps([str(p) for p in paths])},
        say,
    )
    summary = {"dataset": dataset, "test_time_augmentation": tta, **written.summary, "members": member_rows}
    write_summary(summary, out)
    say(f"done: ensemble test accuracy {written.results.accuracy:.4f}; files in {out}/")
