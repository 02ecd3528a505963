"""DigitsCNN: the classifier as a plain nn.Module, readable on one screen, exportable to ONNX as it is.

Its input contract is float [N, 1, 28, 28] in [0, 1], white digit on black; the normalisation is a fixed
buffer inside the model, so checkpoints, the ONNX file and `predict` all take the same input.
`Architecture` holds the network's shape and its defaults, in this one place. Knows nothing of Lightning.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields

import torch
from torch import nn

from lightning_digits.errors import check_ranges
from lightning_digits.models.deskew import Deskew


@dataclass(frozen=True)
class Architecture:
    """The network's shape. The defaults reproduce the original Keras network: two blocks of 32 and 64
    channels and a dense layer of 256 (871,530 parameters). `mean`/`std` are the training set's pixel
    statistics, used by the normalisation inside the model."""

    channels: tuple[int, ...] = (32, 64)
    hidden: int = 256  # 0: no hidden dense layer
    global_pool: bool = False  # global max-pool before the head instead of flattening (a tiny head)
    conv_dropout: float = 0.25
    dense_dropout: float = 0.5
    mean: float = 0.1307
    std: float = 0.3081
    deskew: bool = False  # shear each input upright first (models/deskew.py)

    def __post_init__(self) -> None:
        object.__setattr__(self, "channels", tuple(self.channels))  # YAML gives lists
        check_ranges(
            "model.",
            {
                # each block halves the side: four blocks take 28 down to 1
                "channels": (
                    self.channels,
                    0 < len(self.channels) <= 4 and all(c > 0 for c in self.channels),
                    "1 to 4 positive widths",
                ),
                "hidden": (self.hidden, self.hidden >= 0, "at least 0"),
                "conv_dropout": (self.conv_dropout, 0 <= self.conv_dropout < 1, "in [0, 1)"),
                "dense_dropout": (self.dense_dropout, 0 <= self.dense_dropout < 1, "in [0, 1)"),
                "std": (self.std, self.std > 0, "above 0"),
            },
        )

    @classmethod
    def from_hparams(cls, hparams: Mapping) -> Architecture:
        """The architecture recorded in a LitDigits' hyperparameters (a checkpoint's, say); defaults for the rest."""
        return cls(**{field.name: hparams[field.name] for field in fields(cls) if field.name in hparams})


class Dropout(nn.Dropout):
    """nn.Dropout with a cheaper mask on CPU, where nn.Dropout draws one serial random number per activation
    (docs/benchmarks.md, "Training throughput", has the profile). Here each 64-bit draw of the same seeded
    generator gives four 16-bit uniforms (keep probabilities are exact in steps of 1/65536), and the mask is made
    scaled, in the activation's dtype and memory layout, so the backward pass is one multiply."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or not 0 < self.p < 1 or x.device.type != "cpu":
            return super().forward(x)
        words = torch.empty((x.numel() + 3) // 4, dtype=torch.int64).random_(-(2**63), None)  # full 64 bits
        uniforms = words.view(torch.int16)[: x.numel()]  # in [-32768, 32767]
        mask = torch.empty_like(x)  # x's layout (e.g. channels_last), and always dense
        flat = mask.as_strided((x.numel(),), (1,))
        flat.copy_(uniforms >= round(self.p * 65536) - 32768).mul_(1 / (1 - self.p))
        return x * mask


def conv_block(in_channels: int, out_channels: int, dropout: float) -> nn.Sequential:
    """Two 3x3 conv-BN-ReLU layers, a 2x2 max-pool and dropout, as in the original's blocks."""
    layers: list[nn.Module] = []
    for c_in in (in_channels, out_channels):
        layers += [nn.Conv2d(c_in, out_channels, 3, padding=1, bias=True), nn.BatchNorm2d(out_channels), nn.ReLU()]
    return nn.Sequential(*layers, nn.MaxPool2d(2), Dropout(dropout))


class DigitsCNN(nn.Module):
    def __init__(self, arch: Architecture = Architecture(), num_classes: int = 10) -> None:
        super().__init__()
        self.register_buffer("mean", torch.tensor(arch.mean))
        self.register_buffer("std", torch.tensor(arch.std))
        self.deskew = Deskew() if arch.deskew else nn.Identity()
        widths = [1, *arch.channels]
        self.features = nn.Sequential(
            *(conv_block(a, b, arch.conv_dropout) for a, b in zip(widths, widths[1:], strict=False))
        )
        side = 28 >> len(arch.channels)
        self.pool = nn.AdaptiveMaxPool2d(1) if arch.global_pool else nn.Identity()
        features = arch.channels[-1] * (1 if arch.global_pool else side * side)
        head: list[nn.Module] = [nn.Flatten()]
        if arch.hidden > 0:
            width = arch.hidden
            head += [nn.Linear(features, width), nn.BatchNorm1d(width), nn.ReLU(), Dropout(arch.dense_dropout)]
            features = width
        self.classifier = nn.Sequential(*head, nn.Linear(features, num_classes))

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        """float [N, 1, 28, 28] in [0, 1] -> logits [N, num_classes]."""
        x = (self.deskew(image) - self.mean) / self.std
        return self.classifier(self.pool(self.features(x)))
