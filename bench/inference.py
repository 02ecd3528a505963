"""Inference: PyTorch eager vs ONNX Runtime fp32 vs ONNX Runtime int8 (static quantization, made here from
the fp32 model by `lightning_digits.export.quantize_int8`, as `lightning-digits export --int8` does), at
batch 1, 64 and 256, on real MNIST test images, in one process.

    LIGHTNING_DIGITS_DATA=../shared/data/mnist .venv/bin/python bench/inference.py [--checkpoint C] [--onnx M]

Prints p50/p99 latency and img/s per engine and batch, speed-ups against eager and against ONNX fp32, the
test accuracy of each engine on all 10,000 test images, peak RSS, and one JSON line.
"""

from __future__ import annotations

import argparse
import json
import resource
import tempfile
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch

from lightning_digits import artifacts
from lightning_digits.checkpoints import load_checkpoint
from lightning_digits.data.augment import as_model_input
from lightning_digits.data.sources import load_split
from lightning_digits.export import quantize_int8


def timings(run, images: np.ndarray, batch: int, seconds: float = 2.0) -> dict:
    x = images[:batch]
    for _ in range(3):
        run(x)
    latencies = []
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline or len(latencies) < 10:
        start = time.perf_counter()
        run(x)
        latencies.append(time.perf_counter() - start)
    p50, p99 = np.percentile(latencies, [50, 99])
    return {"p50_ms": 1000 * p50, "p99_ms": 1000 * p99, "images_per_second": batch / p50}


def accuracy(run, images: np.ndarray, labels: np.ndarray) -> float:
    logits = np.concatenate([run(images[i : i + 500]) for i in range(0, len(images), 500)])
    return float((logits.argmax(1) == labels).mean())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--checkpoint", default=f"{artifacts.DEFAULT_DIR}/{artifacts.BEST_CHECKPOINT}")
    parser.add_argument("--onnx", default=f"{artifacts.DEFAULT_DIR}/{artifacts.ONNX_MODEL}")
    args = parser.parse_args()
    net = load_checkpoint(args.checkpoint).net.eval()
    images_u8, labels = load_split("mnist", None, "test")
    images = as_model_input(torch.from_numpy(images_u8)).numpy()
    train_u8, _ = load_split("mnist", None, "train")
    calibration = as_model_input(torch.from_numpy(train_u8[:1000])).numpy()

    def eager(x: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            return net(torch.from_numpy(x)).numpy()

    options = ort.SessionOptions()
    fp32 = ort.InferenceSession(args.onnx, options, providers=["CPUExecutionProvider"])
    with tempfile.TemporaryDirectory() as tmp:
        int8_path = Path(tmp) / "int8.onnx"
        quantize_int8(args.onnx, int8_path, calibration)
        int8 = ort.InferenceSession(str(int8_path), options, providers=["CPUExecutionProvider"])
    engines = {
        "eager": eager,
        "onnx fp32": lambda x: fp32.run(["logits"], {"image": x})[0],
        "onnx int8": lambda x: int8.run(["logits"], {"image": x})[0],
    }
    results: dict = {name: {"accuracy": accuracy(run, images, labels)} for name, run in engines.items()}
    print(f"{'engine':10} {'batch':>5} {'p50 ms':>8} {'p99 ms':>8} {'img/s':>9} {'vs eager':>9} {'vs fp32':>8}")
    for batch in (1, 64, 256):
        for name, run in engines.items():
            results[name][batch] = t = timings(run, images, batch)
        for name in engines:
            t = results[name][batch]
            vs_eager = t["images_per_second"] / results["eager"][batch]["images_per_second"]
            vs_fp32 = t["images_per_second"] / results["onnx fp32"][batch]["images_per_second"]
            print(f"{name:10} {batch:5} {t['p50_ms']:8.3f} {t['p99_ms']:8.3f} {t['images_per_second']:9.0f} "
                  f"{vs_eager:8.2f}x {vs_fp32:7.2f}x")  # fmt: skip
    for name in engines:
        print(f"{name:10} test accuracy {results[name]['accuracy']:.4f}")
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak RSS {peak_mb:.0f} MB, torch threads {torch.get_num_threads()}")
    print(json.dumps({"results": results, "peak_rss_mb": peak_mb}))


if __name__ == "__main__":
    main()
