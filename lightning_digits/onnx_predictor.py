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
from lightning_digits.errors import UserError, exit_on_user_error, show_notices_on_stderr
from lightning_digits.predictions import predictions_csv


class OnnxDigits:
    def __init__(self, model_path: Path | str, threads: int = 0) -> None:
        """`threads`: onnxruntime's intra-op threads (0: its default, one per core)."""
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        try:
            self.session = ort.InferenceSession(str(model_path), options, providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own Fail/InvalidProtobuf/NoSuchFile types
            first_line = str(exc).strip().splitlines()[0]
            raise UserError(f"{model_path}: not a loadable ONNX model ({first_line}); export it again") from exc
        self.metadata: dict[str, str] = self.session.get_modelmeta().custom_metadata_map
        self.class_names: list[str] = json.loads(
            self.metadata.get("class_names", json.dumps([str(d) for d in range(10)]))
        )

    def probabilities(self, images: np.ndarray) -> np.ndarray:
        """float32 [N, 28, 28] or [N, 1, 28, 28] in [0, 1] -> probabilities [N, classes]."""
        batch = images.reshape(len(images), 1, 28, 28).astype(np.float32)
        logits = self.session.run(["logits"], {"image": batch})[0]
        exp = np.exp(logits - logits.max(axis=1, keepdims=True))
        return exp / exp.sum(axis=1, keepdims=True)

    def predict_files(self, paths: list[Path]) -> np.ndarray:
        return self.probabilities(np.stack([load_digit(p) for p in paths]))


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
