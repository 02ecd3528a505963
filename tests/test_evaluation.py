"""evaluate / export / grid / baselines, the ONNX model, and the onnxruntime-only predictor."""

import csv
import json
import logging
import subprocess
import sys

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from PIL import Image

from lightning_digits import export as export_module
from lightning_digits.checkpoints import load_checkpoint
from lightning_digits.data.augment import as_model_input
from lightning_digits.data.idx import read_idx
from lightning_digits.evaluation import report, training_logs
from lightning_digits.export import ExportCheckFailed, export_onnx
from lightning_digits.models.cnn import Architecture, DigitsCNN
from lightning_digits.run_lock import LOCK_FILE

from .conftest import TINY_MODEL, synthetic_digits, write_dataset

EXPECTED_FILES = [
    "acc_curve.png",
    "loss_curve.png",
    "confusion_matrix.png",
    "misclassifications.png",
    "inference_grid.png",
    "baselines.png",
    "classification_report.txt",
    "label_map.txt",
    "summary.txt",
    "summary.json",
    "baselines.csv",
    "digits_cnn.onnx",
]


@pytest.fixture(scope="module")
def trained(tmp_path_factory, _cli_main):
    """A small model fitted for two epochs on tiny generated data, with its artifacts folder."""
    root = tmp_path_factory.mktemp("evaluate")
    data = write_dataset(root / "data")
    art = root / "art"
    _cli_main(
        [
            "fit",
            f"--data.data_dir={data}",
            "--data.val_size=50",
            f"--artifacts_dir={art}",
            "--trainer.max_epochs=2",
            "--progress_bar.refresh_rate=0",
            *TINY_MODEL,
        ]
    )
    return data, art


def test_evaluate_writes_every_artifact(trained, cli):
    data, art = trained
    result = cli(
        "evaluate",
        f"--checkpoint={art / 'digits_cnn.ckpt'}",
        f"--data_dir={data}",
        "--baseline_subset=200",
        "--samples=4",
    )
    assert result.code == 0, result.err
    for name in EXPECTED_FILES:
        path = art / name
        assert path.is_file() and path.stat().st_size > 0, name
        if name.endswith(".png"):
            with Image.open(path) as image:
                image.verify()
    summary = json.loads((art / "summary.json").read_text())
    assert summary["test_images"] == 100 and summary["epochs_run"] == 2 and summary["training_wall_seconds"] > 0
    # The figures must be those of the checkpoint on the test file, computed here without the report code.
    net = load_checkpoint(art / "digits_cnn.ckpt").net
    images = torch.from_numpy(read_idx(data / "t10k-images-idx3-ubyte.gz", 3).astype(np.float32) / 255)
    labels = torch.from_numpy(read_idx(data / "t10k-labels-idx1-ubyte.gz", 1).astype(np.int64))
    with torch.no_grad():
        logits = net(images.unsqueeze(1))
    right = int((logits.argmax(1) == labels).sum())
    assert summary["test_accuracy"] == right / 100 and summary["misclassified"] == 100 - right
    assert summary["test_loss"] == pytest.approx(float(torch.nn.functional.cross_entropy(logits, labels)), rel=1e-5)
    text = (art / "summary.txt").read_text().splitlines()
    assert len(text) <= 8 and text[0].startswith(f"test accuracy {right / 100:.4f}"), text
    assert summary["config"]["trainer"]["max_epochs"] == 2 and summary["onnx"]["max_logit_difference"] <= 1e-4
    assert set(summary["baselines"]) == {"Logistic Regression", "Linear SVM", "Random Forest"}
    rows = (art / "baselines.csv").read_text().splitlines()
    assert rows[0].startswith("model,accuracy,fit_seconds") and len(rows) == 5  # header, CNN, three baselines
    cnn_row = next(csv.DictReader(rows))
    assert cnn_row["model"] == "CNN (this project)" and cnn_row["train_images"] == "250"  # 300 less 50 validation
    assert (art / "label_map.txt").read_text().splitlines()[3] == "3\t3"
    assert [p.name for p in art.glob(".*")] == [LOCK_FILE], "temporary files left behind"


def test_grid_alone(trained, cli):
    data, art = trained
    (art / "inference_grid.png").unlink(missing_ok=True)
    result = cli("grid", f"--checkpoint={art / 'digits_cnn.ckpt'}", f"--data_dir={data}", "--samples=9")
    assert result.code == 0, result.err
    assert (art / "inference_grid.png").is_file()


@pytest.mark.unit
def test_confusion_and_report_agree_with_hand_counts():
    labels = np.array([0, 0, 0, 1, 1, 2])
    predicted = np.array([0, 0, 1, 1, 2, 2])
    results = report.TestResults(labels, np.eye(3, dtype=np.float32)[predicted], loss=0.0)
    np.testing.assert_array_equal(report.confusion(results, 3), [[2, 1, 0], [0, 1, 1], [0, 0, 1]])
    lines = {
        line.split()[0]: line.split()[1:]
        for line in report.report_text(results, ["0", "1", "2"]).splitlines()
        if line.strip()
    }
    # class 0: precision 2/2, recall 2/3; class 1: 1/2 and 1/2; class 2: 1/2 and 1/1
    assert [float(v) for v in lines["0"]] == [1.0, round(2 / 3, 4), 0.8, 3]
    assert [float(v) for v in lines["1"]] == [0.5, 0.5, 0.5, 2]
    assert [float(v) for v in lines["2"][:2]] == [0.5, 1.0]
    assert float(lines["accuracy"][0]) == round(4 / 6, 4)
    assert report.most_confident_mistakes(results, 5).tolist() == [2, 4]


def _images(n: int) -> np.ndarray:
    images, _ = synthetic_digits(n, seed=4)
    return as_model_input(torch.from_numpy(images)).numpy()


def test_onnx_is_self_contained_dynamic_and_matches_torch(tmp_path):
    torch.manual_seed(0)
    net = DigitsCNN(Architecture(channels=(8, 16), hidden=32)).eval()
    parity = export_onnx(net, tmp_path / "m.onnx", [str(d) for d in range(10)], _images(50))
    assert parity.max_logit_difference <= 1e-4 and parity.batch_sizes == (1, 7, 50)
    assert [p.name for p in tmp_path.iterdir()] == ["m.onnx"], "no external-data side file"
    model = onnx.load(str(tmp_path / "m.onnx"))
    assert model.opset_import[0].version >= 18
    metadata = {p.key: p.value for p in model.metadata_props}
    assert json.loads(metadata["class_names"])[7] == "7" and "[0, 1]" in metadata["input_contract"]
    session = ort.InferenceSession(str(tmp_path / "m.onnx"))
    for batch in (1, 7, 1000):
        x = np.random.default_rng(batch).random((batch, 1, 28, 28), dtype=np.float32)
        out = session.run(["logits"], {"image": x})[0]
        assert out.shape == (batch, 10)
        np.testing.assert_allclose(out, net(torch.from_numpy(x)).detach().numpy(), atol=1e-4)


def test_failed_parity_check_keeps_the_previous_file(tmp_path, monkeypatch):
    target = tmp_path / "m.onnx"
    target.write_bytes(b"previous")
    monkeypatch.setattr(export_module, "MAX_LOGIT_DIFFERENCE", -1.0)
    with pytest.raises(ExportCheckFailed, match="max \\|logit difference\\|"):
        export_onnx(DigitsCNN(Architecture(channels=(8,), hidden=0)), target, [str(d) for d in range(10)], _images(8))
    assert target.read_bytes() == b"previous" and [p.name for p in tmp_path.iterdir()] == ["m.onnx"]


def test_onnx_predictor_runs_without_torch(tmp_path):
    export_onnx(
        DigitsCNN(Architecture(channels=(8, 16), hidden=32)),
        tmp_path / "m.onnx",
        [str(d) for d in range(10)],
        _images(8),
    )
    blocker = tmp_path / "blocker"
    blocker.mkdir()
    (blocker / "torch.py").write_text("raise ImportError('torch is not available here')\n")
    drawn = tmp_path / "drawn"
    drawn.mkdir()
    for i in range(3):
        image = Image.new("L", (60, 90), 255)
        image.paste(0, (20 + i, 10, 32, 80))
        image.save(drawn / f"{i}.png")
    check = subprocess.run(
        [sys.executable, "-c", "import torch"], env={"PYTHONPATH": str(blocker)}, capture_output=True, text=True
    )
    assert check.returncode != 0 and "torch is not available" in check.stderr
    import os

    env = {**os.environ, "PYTHONPATH": str(blocker)}
    result = subprocess.run(
        [sys.executable, "-m", "lightning_digits.onnx_predictor", str(tmp_path / "m.onnx"), str(drawn)],
        capture_output=True,
        text=True,
        env=env,
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "file,predicted,confidence,top3" and len(lines) == 4


def test_int8_export_is_checked_on_the_whole_test_set(trained, cli):
    data, art = trained
    result = cli("export", f"--checkpoint={art / 'digits_cnn.ckpt'}", f"--data_dir={data}", "--int8=true")
    assert result.code == 0, result.err[-3000:]
    assert "digits_cnn_int8.onnx: test accuracy" in result.err
    session = ort.InferenceSession(str(art / "digits_cnn_int8.onnx"))
    ops = {node.op_type for node in onnx.load(str(art / "digits_cnn_int8.onnx")).graph.node}
    assert "QLinearConv" in ops
    assert session.run(["logits"], {"image": _images(3)})[0].shape == (3, 10)


def test_int8_model_that_loses_accuracy_is_refused(tmp_path, monkeypatch):
    from lightning_digits import export as export_module

    net = DigitsCNN(Architecture(channels=(8, 16), hidden=32)).eval()
    images = _images(50)
    export_onnx(net, tmp_path / "m.onnx", [str(d) for d in range(10)], images)
    root = logging.getLogger()
    level, filters = root.level, list(root.filters)
    export_module.quantize_int8(tmp_path / "m.onnx", tmp_path / "q.onnx", images)
    assert (root.level, root.filters) == (level, filters), "the caller's logging is left as it was"
    monkeypatch.setattr(export_module, "MAX_INT8_ACCURACY_LOSS", -1.0)
    labels = np.arange(50) % 10
    with pytest.raises(ExportCheckFailed, match="int8 model loses"):
        export_module.check_int8_accuracy(tmp_path / "m.onnx", tmp_path / "q.onnx", images, labels)


def _fit_log(folder, ckpt_path, epochs, header="epoch,step,train_loss,train_acc,val_loss,val_acc"):
    folder.mkdir(parents=True)
    (folder / "config.yaml").write_text(f"ckpt_path: {ckpt_path}\n")
    rows = [f"{e},{e},{1 / (e + 1)},0.{e},{1 / (e + 2)},0.{e}" for e in epochs] if "train_loss" in header else []
    (folder / "metrics.csv").write_text("\n".join([header, *rows]) + "\n")


def test_curves_of_a_resumed_run_include_the_epochs_before_the_resume(tmp_path):
    logs = tmp_path / "logs"
    _fit_log(logs / "version_0", "null", [0, 1, 2])  # an older run, started fresh
    _fit_log(logs / "version_1", "null", [0, 1])  # the run evaluated: fresh, then resumed twice
    _fit_log(logs / "version_2", "last", [2])
    _fit_log(logs / "version_3", "null", [], header="epoch,step,test_loss,test_acc")  # a test run, not a fit
    _fit_log(logs / "version_4", "/somewhere/digits_cnn_final.ckpt", [3, 4])
    chain = training_logs.find_training_logs(tmp_path)
    assert [p.name for p in chain] == ["version_1", "version_2", "version_4"]
    [accuracy, loss] = training_logs.training_curves(chain)
    assert accuracy.metric == "accuracy" and accuracy.epochs == loss.epochs == [1, 2, 3, 4, 5]
    assert loss.val == [1 / 2, 1 / 3, 1 / 4, 1 / 5, 1 / 6]  # epoch 3 (index 2) from version_2, none repeated
    assert training_logs.find_training_logs(tmp_path / "nothing") == []
