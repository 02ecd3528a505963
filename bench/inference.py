"""Inference: PyTorch eager vs ONNX Runtime fp32 vs ONNX Runtime int8 (static quantization, made here from
the fp32 model by `lightning_digits.export.quantize_int8`, as `lightning-digits export --int8` does), at
batch 1, 64 and 256, on real MNIST test images, in one process.

    LIGHTNING_DIGITS_DATA=../shared/data/mnist .venv/bin/python bench/inference.py [--checkpoint C] [--onnx M]
        [--device cuda] [--seconds 2]

The ONNX rows run the checkpoint's own export (made here, in a temporary folder) unless `--onnx` names a file,
which must then match the checkpoint (the export parity check); a fresh clone has the committed ONNX file but
no checkpoint: `make train` makes one. `--device cuda` runs the eager row on the GPU (synchronised before each
clock reading); onnxruntime stays on the CPU (this project installs its CPU build).

Prints p50/p99 latency and img/s per engine and batch, speed-ups against eager and against ONNX fp32, the
test accuracy of each engine on all 10,000 test images, peak RSS, and one JSON line.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch

from lightning_digits import artifacts
from lightning_digits.checkpoints import load_checkpoint
from lightning_digits.data.augment import as_model_input
from lightning_digits.data.sources import DATASETS, load_split
from lightning_digits.errors import UserError
from lightning_digits.export import check_parity, export_onnx, quantize_int8


def timings(run, images: np.ndarray, batch: int, seconds: float) -> dict:
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
    parser.add_argument("--onnx", help="an ONNX file of the same checkpoint (default: export it here)")
    parser.add_argument("--device", default="cpu", help="where the eager row runs: cpu, cuda, cuda:1, ...")
    parser.add_argument(
        "--seconds", type=float, default=2.0, help="timed seconds per engine and batch (10 calls at least)"
    )
    args = parser.parse_args()
    try:
        checkpoint = load_checkpoint(args.checkpoint)
    except UserError as exc:
        sys.exit(f"bench/inference.py: {exc}")
    net = checkpoint.net.eval()
    images_u8, labels = load_split("mnist", None, "test")
    images = as_model_input(torch.from_numpy(images_u8)).numpy()
    train_u8, _ = load_split("mnist", None, "train")
    calibration = as_model_input(torch.from_numpy(train_u8[:1000])).numpy()

    options = ort.SessionOptions()
    with tempfile.TemporaryDirectory() as tmp:
        onnx_path = Path(args.onnx or Path(tmp) / "fp32.onnx")
        if args.onnx:
            try:
                check_parity(net, onnx_path, images[:256])
            except UserError as exc:
                sys.exit(f"bench/inference.py: --onnx {args.onnx} is not --checkpoint {args.checkpoint} ({exc})")
        else:
            export_onnx(net, onnx_path, DATASETS[checkpoint.dataset].class_names, images[:256])
        fp32 = ort.InferenceSession(str(onnx_path), options, providers=["CPUExecutionProvider"])
        int8_path = Path(tmp) / "int8.onnx"
        quantize_int8(onnx_path, int8_path, calibration)
        int8 = ort.InferenceSession(str(int8_path), options, providers=["CPUExecutionProvider"])

    device = torch.device(args.device)
    net.to(device)

    def eager(x: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            return net(torch.from_numpy(x).to(device)).cpu().numpy()  # .cpu() waits for the device

    engines = {
        f"eager {device.type}": eager,
        "onnx fp32": lambda x: fp32.run(["logits"], {"image": x})[0],
        "onnx int8": lambda x: int8.run(["logits"], {"image": x})[0],
    }
    results: dict = {name: {"accuracy": accuracy(run, images, labels)} for name, run in engines.items()}
    print(f"{'engine':10} {'batch':>5} {'p50 ms':>8} {'p99 ms':>8} {'img/s':>9} {'vs eager':>9} {'vs fp32':>8}")
    for batch in (1, 64, 256):
        for name, run in engines.items():
            results[name][batch] = t = timings(run, images, batch, args.seconds)
        for name in engines:
            t = results[name][batch]
            vs_eager = t["images_per_second"] / results[f"eager {device.type}"][batch]["images_per_second"]
            vs_fp32 = t["images_per_second"] / results["onnx fp32"][batch]["images_per_second"]
            print(
                f"{name:10} {batch:5} {t['p50_ms']:8.3f} {t['p99_ms']:8.3f} {t['images_per_second']:9.0f} "
                f"{vs_eager:8.2f}x {vs_fp32:7.2f}x"
            )
    for name in engines:
        print(f"{name:10} test accuracy {results[name]['accuracy']:.4f}")
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak RSS {peak_mb:.0f} MB, torch threads {torch.get_num_threads()}")
    print(json.dumps({"results": results, "peak_rss_mb": peak_mb, "device": str(device)}))


if __name__ == "__main__":
    main()
