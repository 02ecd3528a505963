"""Test-time augmentation and ensembles: the views, the averaging, the commands, and the ONNX file that carries
them with a single network's contract; averaging in weight space (`fit --ema_decay`); and `distill`, which teaches
an ensemble's probabilities to one network."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import lightning.pytorch as pl
import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from lightning.pytorch.callbacks import Callback
from PIL import Image

from lightning_digits.checkpoints import find_checkpoints, load_checkpoint
from lightning_digits.data.augment import as_model_input
from lightning_digits.errors import UserError
from lightning_digits.models.averaging import VIEW_SETS, Averaged, View
from lightning_digits.models.cnn import Architecture, DigitsCNN
from lightning_digits.models.teacher import Teacher

from .conftest import TINY_MODEL, synthetic_digits, write_dataset


@pytest.mark.unit
def test_a_one_pixel_shift_view_moves_the_image_by_exactly_one_pixel():
    image = torch.zeros(1, 1, 28, 28)
    image[0, 0, 10, 12] = 1.0
    averaged = Averaged([torch.nn.Identity()], [View(shift_x=1), View(shift_y=-1), View(rotation=90)])
    right, up, turned = averaged._views(image)
    assert right[0, 10, 13] == 1 and right.sum() == 1
    assert up[0, 9, 12] == 1 and up.sum() == 1
    assert turned.sum() == pytest.approx(1) and turned[0, 10, 12] == 0


@pytest.mark.unit
def test_the_output_is_the_log_of_the_mean_probability():
    torch.manual_seed(0)
    a, b = DigitsCNN(Architecture(channels=(4,), hidden=0)).eval(), DigitsCNN(Architecture(channels=(8,), hidden=8))
    images = torch.rand(5, 1, 28, 28)
    expected = (a(images).softmax(1) + b.eval()(images).softmax(1)) / 2
    torch.testing.assert_close(Averaged([a, b])(images).exp(), expected)
    torch.testing.assert_close(Averaged([a])(images).softmax(1), Averaged([a])(images).exp())
    views = Averaged([a], VIEW_SETS["shifts"])
    by_hand = torch.stack([Averaged([a], [view])(images).exp() for view in VIEW_SETS["shifts"]]).mean(0)
    torch.testing.assert_close(views(images).exp(), by_hand)


@pytest.fixture(scope="module")
def members(tmp_path_factory, _cli_main):
    """Two tiny networks of different widths fitted on generated data, with their data folder."""
    root = tmp_path_factory.mktemp("members")
    data = write_dataset(root / "data", n_train=200, n_test=60)
    for name, channels in (("a", "[8,16]"), ("b", "[4,8,16]")):
        _cli_main(
            [
                "fit",
                f"--data.data_dir={data}",
                "--data.val_size=40",
                "--data.batch_size=32",
                f"--artifacts_dir={root / 'runs' / name}",
                "--trainer.max_epochs=1",
                "--progress_bar.refresh_rate=0",
                *TINY_MODEL,
                f"--model.channels={channels}",
            ]
        )
    return root, data


@pytest.fixture(scope="module")
def ensembled(members, tmp_path_factory, _cli_main) -> Path:
    """`ensemble` of the folder of both runs, with test-time augmentation: its output folder."""
    root, data = members
    out = tmp_path_factory.mktemp("ensemble") / "ens"
    _cli_main(["ensemble", str(root / "runs"), f"--output_dir={out}", f"--data_dir={data}", "--tta=shifts"])
    return out


@pytest.mark.unit
def test_members_are_the_files_given_and_every_best_checkpoint_below_a_folder(tmp_path):
    for run in ("runs/b", "runs/a", "runs/a/nested"):
        (tmp_path / run).mkdir(parents=True, exist_ok=True)
        (tmp_path / run / "digits_cnn.ckpt").write_bytes(b"")
    (tmp_path / "runs/a/digits_cnn_final.ckpt").write_bytes(b"")  # not a best checkpoint: left out of a folder
    single = tmp_path / "runs/b/digits_cnn.ckpt"
    assert find_checkpoints([str(tmp_path / "runs/a"), str(single)]) == [
        tmp_path / "runs/a/digits_cnn.ckpt",
        tmp_path / "runs/a/nested/digits_cnn.ckpt",
        single,
    ]
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="no digits_cnn.ckpt below"):
        find_checkpoints([str(tmp_path / "empty")])
    with pytest.raises(UserError, match="does not exist"):
        find_checkpoints([str(tmp_path / "missing.ckpt")])


def test_ensemble_writes_the_reports_and_an_onnx_model_of_the_same_contract(members, ensembled):
    root, _ = members
    out = ensembled
    summary = json.loads((out / "summary.json").read_text())
    assert [m["checkpoint"] for m in summary["members"]] == [str(root / f"runs/{n}/digits_cnn.ckpt") for n in "ab"]
    assert summary["test_images"] == 60 and summary["test_time_augmentation"] == "shifts"
    for name in ("confusion_matrix.png", "classification_report.txt", "misclassifications.png", "summary.txt"):
        assert (out / name).is_file(), name
    # The ONNX file takes images and gives [N, 10] whose softmax is the ensemble's probability, at any batch.
    model = onnx.load(str(out / "digits_cnn.onnx"))
    assert [i.name for i in model.graph.input] == ["image"] and [o.name for o in model.graph.output] == ["logits"]
    metadata = {p.key: p.value for p in model.metadata_props}
    assert metadata["test_time_augmentation"] == "shifts" and len(json.loads(metadata["members"])) == 2
    images = as_model_input(torch.from_numpy(synthetic_digits(60, seed=1)[0])).numpy()
    session = ort.InferenceSession(str(out / "digits_cnn.onnx"))
    logits = session.run(["logits"], {"image": images})[0]
    probabilities = np.exp(logits)
    np.testing.assert_allclose(probabilities.sum(1), 1, atol=1e-5)
    assert float((logits.argmax(1) == np.arange(60) % 10).mean()) == pytest.approx(summary["test_accuracy"])
    np.testing.assert_allclose(session.run(["logits"], {"image": images[:1]})[0], logits[:1], atol=1e-5)


def test_the_onnx_predictor_uses_an_ensemble_file_unchanged(ensembled, tmp_path):
    out = ensembled
    drawn = tmp_path / "drawn"
    drawn.mkdir()
    for i, digit in enumerate(synthetic_digits(3, seed=5)[0]):
        Image.fromarray(255 - digit).save(drawn / f"{i}.png")
    result = subprocess.run(
        [sys.executable, "-m", "lightning_digits.onnx_predictor", str(out / "digits_cnn.onnx"), str(drawn)],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    rows = list(csv.DictReader(result.stdout.splitlines()))
    assert len(rows) == 3 and all(0 < float(r["confidence"]) <= 1 for r in rows)


def test_test_and_export_take_tta_for_any_checkpoint(cli, members, tmp_path):
    root, data = members
    checkpoint = root / "runs/a/digits_cnn.ckpt"
    plain = cli("test", f"--ckpt_path={checkpoint}", f"--data.data_dir={data}", f"--artifacts_dir={tmp_path / 'p'}")
    tta = cli(
        "test",
        f"--ckpt_path={checkpoint}",
        f"--data.data_dir={data}",
        f"--artifacts_dir={tmp_path / 't'}",
        "--model.tta=shifts_rotations",
    )
    assert plain.code == tta.code == 0, plain.err[-2000:] + tta.err[-2000:]
    assert plain.out != tta.out, "the test figures must come from the averaged views"
    exported = cli(
        "export",
        f"--checkpoint={checkpoint}",
        f"--data_dir={data}",
        f"--output={tmp_path / 'm.onnx'}",
        "--tta=rotations",
    )
    assert exported.code == 0 and "onnxruntime matches PyTorch" in exported.err, exported.err[-2000:]
    metadata = {p.key: p.value for p in onnx.load(str(tmp_path / "m.onnx")).metadata_props}
    assert metadata["test_time_augmentation"] == "rotations"


def test_bad_ensembles_are_one_line(cli, members, tmp_path):
    root, _ = members
    one = cli("ensemble", str(root / "runs/a/digits_cnn.ckpt"), f"--output_dir={tmp_path}")
    assert one.code == 2 and "at least two checkpoints" in one.err
    unknown = cli("ensemble", str(root / "runs"), "--tta=sideways", f"--output_dir={tmp_path}")
    assert unknown.code == 2 and "tta 'sideways' is not a view set; choose one of none, shifts" in unknown.err
    missing = cli("ensemble", str(tmp_path / "nope.ckpt"), str(root / "runs"), f"--output_dir={tmp_path}")
    assert missing.code == 2 and "nope.ckpt does not exist" in missing.err


class WeightsPerStep(Callback):
    """Saves the weights being trained at the start of fit and after every step, as FOLDER/start_S.pt and
    FOLDER/step_S.pt (S: the global step), for a test to compute their average by hand."""

    def __init__(self, folder: str) -> None:
        self.folder = Path(folder)

    def _save(self, pl_module: pl.LightningModule, name: str) -> None:
        self.folder.mkdir(exist_ok=True)
        torch.save({k: v.clone() for k, v in pl_module.state_dict().items()}, self.folder / name)

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._save(pl_module, f"start_{trainer.global_step}.pt")

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, *args: object) -> None:
        self._save(pl_module, f"step_{trainer.global_step}.pt")


def _floats(state: dict) -> dict:
    """The averaged entries: weights and batch-norm statistics (not the integer batch counters)."""
    return {k: v for k, v in state.items() if torch.is_floating_point(v)}


@pytest.mark.slow
def test_ema_weights_are_what_is_checkpointed_exported_and_resumed(cli, tiny_data, tmp_path):
    art, steps, decay = tmp_path / "art", tmp_path / "steps", 0.5
    fit = [
        "fit",
        f"--data.data_dir={tiny_data}",
        "--data.val_size=100",
        "--data.batch_size=50",
        f"--artifacts_dir={art}",
        *TINY_MODEL,
        "--progress_bar.refresh_rate=0",
        "--trainer.limit_train_batches=2",
        f"--ema_decay={decay}",
        "--trainer.callbacks+=tests.test_averaging.WeightsPerStep",
        f"--trainer.callbacks.folder={steps}",
    ]
    first = cli(*fit, "--trainer.max_epochs=1")
    assert first.code == 0, first.err[-3000:]
    trained = {step: _floats(torch.load(steps / f"step_{step}.pt")) for step in (1, 2)}
    # torch's EMA: the first update copies the weights, each later one is decay * average + (1 - decay) * weights.
    average = {k: decay * trained[1][k] + (1 - decay) * trained[2][k] for k in trained[1]}
    assert any(not torch.equal(average[k], trained[2][k]) for k in average), "a decay that averages nothing"
    final = torch.load(art / "digits_cnn_final.ckpt", weights_only=True)
    torch.testing.assert_close(_floats(final["state_dict"]), average)
    torch.testing.assert_close(_floats(final["current_model_state"]), trained[2])
    best = load_checkpoint(art / "digits_cnn.ckpt")  # as evaluate, export and ensemble read it
    torch.testing.assert_close(_floats(best.net.state_dict()), {k.removeprefix("net."): v for k, v in average.items()})

    exported = cli(
        "export",
        f"--checkpoint={art / 'digits_cnn.ckpt'}",
        f"--data_dir={tiny_data}",
        f"--output={tmp_path / 'm.onnx'}",
    )
    assert exported.code == 0, exported.err[-2000:]
    by_hand = DigitsCNN(Architecture.from_hparams(best.model_hparams)).eval()
    by_hand.load_state_dict({k.removeprefix("net."): v for k, v in torch.load(steps / "step_2.pt").items()})
    by_hand.load_state_dict({k.removeprefix("net."): v for k, v in average.items()}, strict=False)
    images = as_model_input(torch.from_numpy(synthetic_digits(20, seed=1)[0]))
    onnx_logits = ort.InferenceSession(str(tmp_path / "m.onnx")).run(["logits"], {"image": images.numpy()})[0]
    np.testing.assert_allclose(onnx_logits, by_hand(images).detach().numpy(), atol=1e-4)

    # `--ckpt_path last` (what a kill -9 leaves: the last final checkpoint) goes on training the weights it had
    # reached, not the average, and goes on averaging from the saved average.
    forgotten = cli(
        *[arg for arg in fit if not arg.startswith("--ema_decay")], "--trainer.max_epochs=2", "--ckpt_path=last"
    )
    assert forgotten.code == 2 and "was saved by a fit with --ema_decay" in forgotten.err, forgotten.err[-2000:]
    resumed = cli(*fit, "--trainer.max_epochs=2", "--ckpt_path=last")
    assert resumed.code == 0, resumed.err[-3000:]
    torch.testing.assert_close(_floats(torch.load(steps / "start_2.pt")), trained[2])
    for step in (3, 4):
        weights = _floats(torch.load(steps / f"step_{step}.pt"))
        average = {k: decay * average[k] + (1 - decay) * weights[k] for k in average}
    resumed_final = torch.load(art / "digits_cnn_final.ckpt", weights_only=True)
    torch.testing.assert_close(_floats(resumed_final["state_dict"]), average)


@pytest.mark.unit
def test_the_students_loss_mixes_the_labels_with_the_teachers_tempered_mean_probability():
    torch.manual_seed(0)
    a, b = DigitsCNN(Architecture(channels=(4,), hidden=0)).eval(), DigitsCNN(Architecture(channels=(8,), hidden=8))
    images, logits, label_loss = torch.rand(6, 1, 28, 28), torch.randn(6, 10), torch.tensor(0.7)
    teacher = Teacher(Averaged([a, b]), temperature=2.0, weight=0.25)
    mean = (a(images).softmax(1) + b.eval()(images).softmax(1)) / 2
    target = mean**0.5 / (mean**0.5).sum(1, keepdim=True)  # the mean probability at temperature 2
    torch.testing.assert_close(teacher.targets(images), target)
    student = (logits / 2).log_softmax(1)
    kl = (target * (target.log() - student)).sum(1).mean()
    torch.testing.assert_close(teacher.loss(logits, images, label_loss), 0.75 * label_loss + 0.25 * 4 * kl)
    assert not any(p.requires_grad for p in teacher.net.parameters())


def _onnx_shape(path: Path) -> tuple:
    """What a consumer of the file sees of it (inputs, outputs) and what it weighs (every initializer's shape)."""
    graph = onnx.load(str(path)).graph
    return (
        [i.name for i in graph.input],
        [o.name for o in graph.output],
        sorted((tuple(t.dims), t.data_type) for t in graph.initializer),
    )


@pytest.mark.slow
def test_distill_trains_an_ordinary_student_on_augmented_images(cli, members, tmp_path, monkeypatch):
    root, data = members
    seen = []
    teacher_loss = Teacher.loss
    monkeypatch.setattr(
        Teacher, "loss", lambda self, lo, images, la: seen.append(images) or teacher_loss(self, lo, images, la)
    )
    common = [
        f"--data.data_dir={data}",
        "--data.val_size=40",
        "--data.batch_size=32",
        "--trainer.max_epochs=1",
        "--trainer.limit_train_batches=2",
        "--trainer.precision=32-true",
        "--trainer.deterministic=true",
        "--progress_bar.refresh_rate=0",
    ]
    student = cli("distill", str(root / "runs"), *common, f"--artifacts_dir={tmp_path / 'student'}", "--temperature=2")
    assert student.code == 0, student.err[-3000:]
    assert "teacher: 2 networks" in student.err and len(seen) == 2
    # The teacher saw the augmented batch: a rotation or shift resamples the uint8 pixels between their levels.
    assert all(((images * 255) - (images * 255).round()).abs().max() > 0.01 for images in seen)
    plain = cli("fit", "-c", "fast", *common, f"--artifacts_dir={tmp_path / 'plain'}")
    unweighted = cli("distill", str(root / "runs"), *common, f"--artifacts_dir={tmp_path / 'w0'}", "--teacher_weight=0")
    assert plain.code == unweighted.code == 0, plain.err[-3000:] + unweighted.err[-3000:]
    checkpoints = {run: tmp_path / run / "digits_cnn.ckpt" for run in ("student", "plain")}
    student_net, plain_net, w0_net = (
        load_checkpoint(tmp_path / run / "digits_cnn.ckpt") for run in ("student", "plain", "w0")
    )
    assert student_net.model_hparams == plain_net.model_hparams, "a plain fast network's checkpoint"
    # The same seed and data: without the teacher's share the student is the plain fit; with it, it is not.
    assert all(torch.equal(p, q) for p, q in zip(w0_net.net.parameters(), plain_net.net.parameters(), strict=True))
    assert not all(
        torch.equal(p, q) for p, q in zip(student_net.net.parameters(), plain_net.net.parameters(), strict=True)
    )
    for run, path in checkpoints.items():
        exported = cli("export", f"--checkpoint={path}", f"--data_dir={data}", f"--output={tmp_path / run}.onnx")
        assert exported.code == 0, exported.err[-2000:]
    assert _onnx_shape(tmp_path / "student.onnx") == _onnx_shape(tmp_path / "plain.onnx")
    sizes = [(tmp_path / f"{run}.onnx").stat().st_size for run in checkpoints]
    assert abs(sizes[0] - sizes[1]) < 200, sizes  # the metadata's accuracy and paths differ, nothing else
