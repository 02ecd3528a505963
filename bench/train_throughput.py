"""Training throughput: the model step alone vs the project's input pipeline vs a naive per-sample
torchvision DataLoader, on the real MNIST training images, in one process (same threads, same model).

    LIGHTNING_DIGITS_DATA=../shared/data/mnist .venv/bin/python bench/train_throughput.py [--fp32 | --bf16]
        [--profile] [--model-config configs/fast.yaml] [--device cuda] [--ink]

- step alone: forward + backward + Adam on a batch that is already a float tensor (the reference);
- pipeline: DataLoader over the uint8 tensor + on_after_batch_transfer (scale + batched per-sample affine) + step;
- naive: torchvision MNIST-style per-sample PIL RandomAffine + ToTensor in a DataLoader + step;
- stock torch step: step alone with torch's nn.Dropout and per-tensor Adam instead of the project's
  Dropout and fused Adam;
- with `--ink`, one row per ink augmentation (data/ink.py) added to the pipeline, one at a time, and one for
  the network with deskewing (models/deskew.py) on the pipeline's batches: what each costs per batch.
Prints a table and one JSON line: per row, the median img/s over timed windows and its overhead against the
step alone (noisy on a shared machine), the ms per batch spent getting the batch vs in the step, timed
within the same steps ("input/step": the input pipeline's share, the steadier figure), and the seconds that
an epoch of the training split's batches would take at that rate (validation not included). `--device` runs every row
on one device (batches copied there as Lightning does); each clock reading waits for it. The precision is the one
`fit` would use here (bf16 autocast with channels_last, or fp32 on a CPU without AVX-512) unless a flag says.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import torch
import torch.nn.functional as F
import yaml
from devices import add_device_flag, synchronize
from torch import nn
from torch.utils.data import DataLoader, Dataset
from torchvision.transforms import v2

from lightning_digits.data.datamodule import DigitsDataModule
from lightning_digits.models.cnn import Dropout
from lightning_digits.models.lit import LitDigits
from lightning_digits.training.callbacks import cpu_precision

# One change at a time (docs/results.md, "Real handwriting"): the values tried there.
INK_ROWS = (("stroke", 0.5), ("slant", 15.0), ("elastic", 34.0))


class _PerSampleMnist(Dataset):
    """What a typical tutorial does: a PIL image per item, augmented one at a time."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor) -> None:
        self.images, self.labels = images, labels
        self.transform = v2.Compose(
            [
                v2.ToImage(),
                v2.RandomAffine(degrees=10, translate=(0.1, 0.1), scale=(0.9, 1.1)),
                v2.ToDtype(torch.float32, scale=True),
            ]
        )

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.transform(self.images[index].numpy()[:, :, None]), self.labels[index]


def _step(model: LitDigits, optimizer: torch.optim.Optimizer, images: torch.Tensor, labels: torch.Tensor, bf16: bool):
    with torch.autocast(images.device.type, dtype=torch.bfloat16, enabled=bf16):
        loss = F.cross_entropy(model(images), labels)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()


def _stock_torch_step(model_args: dict, bf16: bool, device: torch.device) -> Callable:
    """The same network and step with torch's nn.Dropout and the default per-tensor Adam, as this project had
    them before: the row shows what its own Dropout and the fused Adam buy."""
    model = LitDigits(**model_args).to(device)
    for parent in list(model.modules()):
        for name, child in parent.named_children():
            if isinstance(child, Dropout):
                setattr(parent, name, nn.Dropout(child.p))
    optimizer = torch.optim.Adam(model.parameters(), lr=model.hparams.lr)
    return lambda images, labels: _step(model, optimizer, images, labels, bf16)


def _measure(
    rows: dict[str, tuple[Iterator, Callable]], steps: int, batch_size: int, windows: int, device: torch.device
) -> dict:
    """Per row (batches and a step), the medians over `windows` rounds of: images/s end to end, and ms per batch
    spent getting the batch vs in the step. The rows take turns within each round, so that a noisy neighbour or a
    warming cache hits them alike; the input/step split is timed within the same steps, so it does not depend on
    that luck."""
    for iterator, step in rows.values():
        for _ in range(5):
            step(*next(iterator))
    samples: dict[str, dict[str, list[float]]] = {name: {"rate": [], "input_ms": [], "step_ms": []} for name in rows}
    for _ in range(windows):
        for name, (iterator, step) in rows.items():
            input_seconds = step_seconds = 0.0
            for _ in range(steps):
                start = time.perf_counter()
                batch = next(iterator)
                synchronize(device)
                ready = time.perf_counter()
                step(*batch)
                synchronize(device)
                input_seconds += ready - start
                step_seconds += time.perf_counter() - ready
            samples[name]["rate"].append(steps * batch_size / (input_seconds + step_seconds))
            samples[name]["input_ms"].append(1000 * input_seconds / steps)
            samples[name]["step_ms"].append(1000 * step_seconds / steps)
    return {name: {key: statistics.median(values) for key, values in row.items()} for name, row in samples.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=20, help="steps per timed window")
    parser.add_argument("--windows", type=int, default=9, help="timed windows per row (medians are reported)")
    parser.add_argument("--batch-size", type=int, default=128)
    precision = parser.add_mutually_exclusive_group()
    precision.add_argument("--fp32", action="store_true", help="no bf16 autocast / channels_last")
    precision.add_argument(
        "--bf16", action="store_true", help="bf16 even on a CPU without AVX-512, where fit would run in fp32"
    )
    parser.add_argument("--profile", action="store_true", help="also print torch's profile of 10 steps of each step")
    parser.add_argument(
        "--model-config", type=Path, help="the network of this config's model section (e.g. configs/fast.yaml)"
    )
    parser.add_argument("--ink", action="store_true", help="also time each ink augmentation and deskewing")
    add_device_flag(parser)
    args = parser.parse_args()
    device = args.device
    torch.manual_seed(0)
    # Without a flag, what `fit` would run with here: bf16, unless this is a CPU that only emulates it.
    emulated = device.type == "cpu" and cpu_precision("bf16-mixed", torch.backends.cpu.get_cpu_capability())[1]
    bf16 = args.bf16 or not (args.fp32 or emulated)
    data = DigitsDataModule(batch_size=args.batch_size, download=False)
    data.setup("fit")
    written = yaml.safe_load(args.model_config.read_text()).get("model", {}) if args.model_config else {}
    model_args = {**written, "channels_last": bf16, "scheduler": "none"}
    model = LitDigits(**model_args).to(device)
    optimizer = model.configure_optimizers()  # the optimizer that training uses
    step = lambda images, labels: _step(model, optimizer, images, labels, bf16)  # noqa: E731

    def forever(loader: DataLoader, transfer: Callable | None = None) -> Iterator:
        while True:
            for batch in loader:
                batch = [tensor.to(device) for tensor in batch]  # as Lightning's transfer does
                yield transfer(batch) if transfer else batch

    images, labels = data.train_set.tensors
    fixed = (images[: args.batch_size].float().div(255).unsqueeze(1).to(device), labels[: args.batch_size].to(device))

    class _Training:  # the batch hook augments only while the trainer is training
        training = True
        global_rank = 0

    data.trainer = _Training()  # type: ignore[assignment]
    naive = DataLoader(_PerSampleMnist(images, labels), batch_size=args.batch_size, shuffle=True)
    rows = {
        "step alone": (iter(lambda: fixed, None), step),
        "pipeline": (forever(data.train_dataloader(), lambda b: data.on_after_batch_transfer(b, 0)), step),
        "naive per-sample": (forever(naive), step),
        "stock torch step": (iter(lambda: fixed, None), _stock_torch_step(model_args, bf16, device)),
    }
    if args.ink:
        for flag, value in INK_ROWS:
            inked = DigitsDataModule(batch_size=args.batch_size, download=False, **{flag: value})
            inked.train_set, inked.trainer = data.train_set, data.trainer
            rows[f"+ {flag} {value:g}"] = (
                forever(inked.train_dataloader(), lambda b, d=inked: d.on_after_batch_transfer(b, 0)),
                step,
            )
        deskewed = LitDigits(**model_args, deskew=True).to(device)
        deskewed_optimizer = deskewed.configure_optimizers()
        rows["+ deskew (model)"] = (
            forever(data.train_dataloader(), lambda b: data.on_after_batch_transfer(b, 0)),
            lambda images, labels: _step(deskewed, deskewed_optimizer, images, labels, bf16),
        )
    results = _measure(rows, args.steps, args.batch_size, args.windows, device)
    reference = results["step alone"]["rate"]
    batches = len(data.train_set) // args.batch_size
    print(
        f"{'row':18} {'img/s':>8} {'vs step alone':>14} {'input ms':>9} {'step ms':>8} {'input/step':>11} "
        f"{f'epoch s ({batches})':>15}"
    )
    for name, r in results.items():
        r["epoch_seconds"] = batches * args.batch_size / r["rate"]
        print(
            f"{name:18} {r['rate']:8.0f} {100 * (reference / r['rate'] - 1):13.1f}% {r['input_ms']:9.2f} "
            f"{r['step_ms']:8.1f} {100 * r['input_ms'] / r['step_ms']:10.1f}% {r['epoch_seconds']:15.1f}"
        )
    if args.profile:
        for name in ("step alone", "stock torch step"):
            batches, profiled_step = rows[name]
            with torch.profiler.profile(record_shapes=True) as profile:
                for _ in range(10):
                    profiled_step(*next(batches))
            for by_shape in (False, True):
                table = profile.key_averages(group_by_input_shape=by_shape).table(
                    sort_by="self_cpu_time_total", row_limit=15, max_name_column_width=36, max_shapes_column_width=48
                )
                print(f"\n{name}, 10 steps, by operator{' and input shapes' if by_shape else ''}:\n{table}")
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak RSS {peak_mb:.0f} MB, threads {torch.get_num_threads()}, bf16 {bf16}, batch {args.batch_size}")
    print(json.dumps({"rows": results, "peak_rss_mb": peak_mb, "bf16": bf16, "device": str(device)}))


if __name__ == "__main__":
    main()
