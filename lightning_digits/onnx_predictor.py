"""Classify image files with the exported ONNX model using only onnxruntime, numpy and Pillow (no torch).

    python -m lightning_digits.onnx_predictor artifacts_digits/digits_cnn.onnx 'my_digits/*.png'

Images go through the same MNIST-style preprocessing as `lightning-digits predict`; the class names come
from the model's metadata. Prints the predictions table as CSV.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import onnxruntime as ort

from lightning_digits.data.images import find_images, load_digit
from lightning_digits.errors import UserError, exit_on_user_error, require_onnx_file, show_notices_on_stderr
from lightning_digits.predictions import predictions_csv


class OnnxDigits:
    def __init__(self, model: Path | str | bytes, threads: int = 0, name: str | None = None) -> None:
        """`model`: an ONNX file, or its bytes (`serve` loads the bytes it checked, whatever the file holds by
        then); `name`: what errors call it (default: the path); `threads`: onnxruntime's intra-op threads (0:
        its default, one per core)."""
        name = name or str(model)
        if not isinstance(model, bytes):
            require_onnx_file(model)
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        source = model if isinstance(model, bytes) else str(model)
        try:
            self.session = ort.InferenceSession(source, options, providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own Fail/InvalidProtobuf/NoSuchFile types
            raise UserError(f"{name}: not a loadable ONNX model ({_first_line(exc)}); export it again") from exc
        self.metadata: dict[str, str] = self.session.get_modelmeta().custom_metadata_map
        self.class_names: list[str] = json.loads(
            self.metadata.get("class_names", json.dumps([str(d) for d in range(10)]))
        )
        self._check_contract(name)

    def _check_contract(self, name: str) -> None:
        """One run on a blank batch proves the project's contract (image float32 [N, 1, 28, 28] -> logits
        [N, classes]) before anything is served, and warms onnxruntime up for the first real batch."""
        contract = f"image float32 [N, 1, 28, 28] -> logits [N, {len(self.class_names)}]"
        try:
            logits = self.session.run(["logits"], {"image": np.zeros((2, 1, 28, 28), np.float32)})[0]
        except Exception as exc:  # a wrong input or output name, type or shape
            raise UserError(
                f"{name}: not a model of this project's contract ({contract}): {_first_line(exc)}; export it with "
                "`lightning-digits export`"
            ) from exc
        if logits.shape != (2, len(self.class_names)):
            raise UserError(
                f"{name}: not a model of this project's contract ({contract}): it gives {list(logits.shape)} for 2 "
                "images; export it with `lightning-digits export`"
            )

    def probabilities(self, images: np.ndarray) -> np.ndarray:
        """float32 [N, 28, 28] or [N, 1, 28, 28] in [0, 1] -> probabilities [N, classes]."""
        batch = images.reshape(len(images), 1, 28, 28).astype(np.float32)
        logits = self.session.run(["logits"], {"image": batch})[0]
        exp = np.exp(logits - logits.max(axis=1, keepdims=True))
        return exp / exp.sum(axis=1, keepdims=True)

    def predict_files(self, paths: list[Path]) -> np.ndarray:
        return self.probabilities(np.stack([load_digit(p) for p in paths]))


def _first_line(exc: Exception) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m lightning_digits.onnx_predictor", description=__doc__.split("\n")[0]
    )
    parser.add_argument("model", help="the .onnx file written by `lightning-digits export`")
    parser.add_argument("images", nargs="+", help="image files, folders or globs")
    args = parser.parse_args(argv)
    show_notices_on_stderr()
    with exit_on_user_error("onnx_predictor"):
        model = OnnxDigits(args.model)
        paths = [path for spec in args.images for path in find_images(spec)]
        sys.stdout.write(predictions_csv([str(p) for p in paths], model.predict_files(paths), model.class_names))


if __name__ == "__main__":
    main()
