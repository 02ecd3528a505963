"""Training throughput: the model step alone vs the project's input pipeline vs a naive per-sample
torchvision DataLoader, on the real MNIST training images, in one process (same threads, same model).

    LIGHTNING_DIGITS_DATA=../shared/data/mnist .venv/bin/python bench/train_throughput.py [--steps 60]

- step alone: forward + backward + Adam on a batch that is already a float tensor (the reference);
- pipeline: DataLoader over the uint8 tensor + on_after_batch_transfer (scale + batched per-sample affine) + step;
- naive: torchvision MNIST-style per-sample PIL RandomAffine + ToTensor in a DataLoader + step.
Prints a table (median img/s over timed windows, overhead against the step alone) and one JSON line.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import time
from collections.abc import Callable, Iterator

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset
from torchvision.transforms import v2

from lightning_digits.data.datamodule import DigitsDataModule
from lightning_digits.models.lit import LitDigits


class _PerSampleMnist(Dataset):
    """What a typical tutorial does: a PIL image per item, augmented one at a time."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor) -> None:
        self.images, self.labels = images, labels
        self.transform = v2.Compose(
            [
                v2.ToImage(),
                v2.RandomAffine(degrees=10, translate=(0.1, 0.1), scale=(0.9, 1.1)),
                v2.ToDtype(torch.float32, scale=True),
            ]  # fmt: skip
        )

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.transform(self.images[index].numpy()[:, :, None]), self.labels[index]


def _step(model: LitDigits, optimizer: torch.optim.Optimizer, images: torch.Tensor, labels: torch.Tensor, bf16: bool):
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        loss = F.cross_entropy(model(images), labels)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()


def _measure(inputs: dict[str, Iterator], step: Callable, steps: int, batch_size: int, windows: int = 5) -> dict:
    """Median images/s per input over `windows` rounds; the inputs take turns within each round, so that
    a noisy neighbour or a warming cache hits them alike."""
    for iterator in inputs.values():
        for _ in range(5):
            step(*next(iterator))
    rates: dict[str, list[float]] = {name: [] for name in inputs}
    for _ in range(windows):
        for name, iterator in inputs.items():
            start = time.perf_counter()
            for _ in range(steps):
                step(*next(iterator))
            rates[name].append(steps * batch_size / (time.perf_counter() - start))
    return {name: statistics.median(values) for name, values in rates.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=20, help="steps per timed window")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--fp32", action="store_true", help="no bf16 autocast / channels_last")
    args = parser.parse_args()
    torch.manual_seed(0)
    bf16 = not args.fp32
    data = DigitsDataModule(batch_size=args.batch_size, download=False)
    data.setup("fit")
    model = LitDigits(channels_last=bf16)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    step = lambda images, labels: _step(model, optimizer, images, labels, bf16)  # noqa: E731

    def forever(loader: DataLoader, transfer: Callable | None = None) -> Iterator:
        while True:
            for batch in loader:
                yield transfer(batch) if transfer else batch

    images, labels = data.train_set.tensors
    fixed = (images[: args.batch_size].float().div(255).unsqueeze(1), labels[: args.batch_size])

    class _Training:  # the batch hook augments only while the trainer is training
        training = True
        global_rank = 0

    data.trainer = _Training()  # type: ignore[assignment]
    naive = DataLoader(_PerSampleMnist(images, labels), batch_size=args.batch_size, shuffle=True)
    inputs = {
        "step alone": iter(lambda: fixed, None),
        "pipeline": forever(data.train_dataloader(), lambda b: data.on_after_batch_transfer(b, 0)),
        "naive per-sample": forever(naive),
    }
    results = _measure(inputs, step, args.steps, args.batch_size)
    reference = results["step alone"]
    print(f"{'input':18} {'img/s':>8} {'overhead vs step alone':>24}")
    for name, rate in results.items():
        print(f"{name:18} {rate:8.0f} {100 * (reference / rate - 1):23.1f}%")
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak RSS {peak_mb:.0f} MB, threads {torch.get_num_threads()}, bf16 {bf16}, batch {args.batch_size}")
    print(json.dumps({"images_per_second": results, "peak_rss_mb": peak_mb, "bf16": bf16}))


if __name__ == "__main__":
    main()
