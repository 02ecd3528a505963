"""ONNX export of a network (DigitsCNN, or several averaged over views: models/averaging.py), with its
self-check: onnxruntime must agree with PyTorch on real test images.

The file is self-contained (no external-data side file), has a dynamic batch axis, takes `image` float32
[N, 1, 28, 28] in [0, 1] and gives `logits` [N, num_classes]; the label map and input contract ride in its
metadata. Knows nothing of training.
"""

from __future__ import annotations

import copy
import json
import logging
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import torch
from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
from torch import nn

from lightning_digits import __version__
from lightning_digits.atomic import atomic_path
from lightning_digits.errors import UserError

OPSET = 18
MAX_LOGIT_DIFFERENCE = 1e-4
MAX_INT8_ACCURACY_LOSS = 0.0005  # 0.05 percentage points of test accuracy
INPUT_CONTRACT = (
    "image: float32 [N, 1, 28, 28] in [0, 1], white digit on black, MNIST-style (fitted in 20x20, centred by "
    "centre of mass in 28x28); normalisation is inside the model"
)


class ExportCheckFailed(UserError):
    """onnxruntime and PyTorch disagree: the exported file is not kept."""


@dataclass(frozen=True)
class ParityReport:
    max_logit_difference: float
    images_checked: int
    batch_sizes: tuple[int, ...]

    def as_dict(self) -> dict:
        return {
            "max_logit_difference": self.max_logit_difference,
            "images_checked": self.images_checked,
            "batch_sizes": list(self.batch_sizes),
        }


def export_onnx(
    net: nn.Module,
    output: Path | str,
    class_names: tuple[str, ...] | list[str],
    check_images: np.ndarray,
    extra_metadata: dict[str, str] | None = None,
) -> ParityReport:
    """Write `output` atomically, or raise ExportCheckFailed and leave any previous file in place.

    `check_images`: float32 [N, 1, 28, 28] in [0, 1], real test images (N >= 7 checks batch sizes 1, 7 and N).
    """
    net = copy.deepcopy(net).float().eval().to(memory_format=torch.contiguous_format)
    metadata = {
        "class_names": json.dumps(list(class_names)),
        "input_contract": INPUT_CONTRACT,
        "output": "logits: float32 [N, num_classes]; softmax gives the probabilities",
        "producer": f"lightning-digits {__version__}",
        **(extra_metadata or {}),
    }
    with atomic_path(output) as tmp:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the exporter's progress chatter, not problems
            torch.onnx.export(
                net,
                (torch.rand(2, 1, 28, 28),),
                str(tmp),
                input_names=["image"],
                output_names=["logits"],
                dynamic_shapes=({0: "batch"},),  # by position: any network's forward(x) exports
                opset_version=OPSET,
                external_data=False,
                dynamo=True,
                verbose=False,
            )
        model = onnx.load(str(tmp))
        onnx.helper.set_model_props(model, metadata)
        onnx.save(model, str(tmp))
        report = check_parity(net, tmp, check_images)
    return report


def check_parity(net: nn.Module, onnx_path: Path, images: np.ndarray) -> ParityReport:
    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    with torch.no_grad():
        expected = net(torch.from_numpy(images)).numpy()
    batch_sizes = tuple(sorted({1, min(7, len(images)), len(images)}))
    worst = 0.0
    for size in batch_sizes:
        got = session.run(["logits"], {"image": images[:size]})[0]
        if got.shape != expected[:size].shape:
            raise ExportCheckFailed(
                f"ONNX model gave shape {got.shape} for batch {size}, expected {expected[:size].shape}"
            )
        worst = max(worst, float(np.abs(got - expected[:size]).max()))
        mismatched = int((got.argmax(1) != expected[:size].argmax(1)).sum())
        if worst > MAX_LOGIT_DIFFERENCE or mismatched:
            raise ExportCheckFailed(
                f"ONNX export check failed at batch {size}: max |logit difference| {worst:.2e} "
                f"(limit {MAX_LOGIT_DIFFERENCE:.0e}), {mismatched} different predictions"
            )
    return ParityReport(worst, len(images), batch_sizes)


class _Calibration(CalibrationDataReader):
    def __init__(self, images: np.ndarray, batch: int = 100) -> None:
        self.batches = iter([{"image": images[i : i + batch]} for i in range(0, len(images), batch)])

    def get_next(self) -> dict | None:
        return next(self.batches, None)


@contextmanager
def _quiet_quantizer() -> Iterator[None]:
    """onnxruntime's quantizer logs advice ("consider pre-processing") through the root logger: drop its records
    below ERROR while it runs, and nothing else's (the caller's logging is left as it was)."""

    def not_advice(record: logging.LogRecord) -> bool:
        return record.levelno >= logging.ERROR or "onnxruntime" not in record.pathname

    root = logging.getLogger()
    root.addFilter(not_advice)
    try:
        yield
    finally:
        root.removeFilter(not_advice)


def quantize_int8(fp32_model: Path | str, output: Path | str, calibration_images: np.ndarray) -> None:
    """Static int8 quantization with onnxruntime's tools: per-channel int8 weights, uint8 activations whose
    ranges come from `calibration_images` (float32 [N, 1, 28, 28], training images, not test images).
    QOperator format: onnxruntime runs QLinearConv/QLinearMatMul kernels directly."""
    # The model itself, not its path: given a path, onnxruntime writes a scratch copy beside it (into the
    # artifacts folder, left there when that write fails); given a model, into a temporary folder it removes.
    model = onnx.load(str(fp32_model))
    with atomic_path(output) as tmp, warnings.catch_warnings(), _quiet_quantizer():
        warnings.simplefilter("ignore")
        quantize_static(
            model,
            str(tmp),
            _Calibration(calibration_images),
            quant_format=QuantFormat.QOperator,
            per_channel=True,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
        )


def onnx_accuracy(model: Path | str, images: np.ndarray, labels: np.ndarray, batch: int = 500) -> float:
    session = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])
    logits = [session.run(["logits"], {"image": images[i : i + batch]})[0] for i in range(0, len(images), batch)]
    return float((np.concatenate(logits).argmax(axis=1) == labels).mean())


def check_int8_accuracy(fp32_model: Path, int8_model: Path, images: np.ndarray, labels: np.ndarray) -> dict:
    """Both models on the whole test set; raise (the caller removes the int8 file) if int8 loses too much."""
    fp32, int8 = onnx_accuracy(fp32_model, images, labels), onnx_accuracy(int8_model, images, labels)
    if fp32 - int8 > MAX_INT8_ACCURACY_LOSS:
        raise ExportCheckFailed(
            f"int8 model loses {100 * (fp32 - int8):.2f} points of test accuracy ({fp32:.4f} -> {int8:.4f}; "
            f"limit {100 * MAX_INT8_ACCURACY_LOSS:.2f}); keep the fp32 model"
        )
    return {"fp32_test_accuracy": fp32, "int8_test_accuracy": int8, "test_images": len(labels)}
