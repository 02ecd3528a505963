"""DigitsCNN: the classifier as a plain nn.Module, readable on one screen, exportable to ONNX as it is.

Its input contract is float [N, 1, 28, 28] in [0, 1], white digit on black; the normalisation is a fixed
buffer inside the model, so checkpoints, the ONNX file and `predict` all take the same input.
The default widths reproduce the original Keras network (871,530 parameters). Knows nothing of Lightning.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn


def conv_block(in_channels: int, out_channels: int, dropout: float) -> nn.Sequential:
    """Two 3x3 conv-BN-ReLU layers, a 2x2 max-pool and dropout, as in the original's blocks."""
    layers: list[nn.Module] = []
    for c_in in (in_channels, out_channels):
        layers += [nn.Conv2d(c_in, out_channels, 3, padding=1, bias=True), nn.BatchNorm2d(out_channels), nn.ReLU()]
    return nn.Sequential(*layers, nn.MaxPool2d(2), nn.Dropout(dropout))


class DigitsCNN(nn.Module):
    def __init__(
        self,
        channels: Sequence[int] = (32, 64),
        hidden: int = 256,
        global_pool: bool = False,
        conv_dropout: float = 0.25,
        dense_dropout: float = 0.5,
        mean: float = 0.1307,
        std: float = 0.3081,
        num_classes: int = 10,
    ) -> None:
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean))
        self.register_buffer("std", torch.tensor(std))
        widths = [1, *channels]
        self.features = nn.Sequential(
            *(conv_block(a, b, conv_dropout) for a, b in zip(widths, widths[1:], strict=False))
        )
        side = 28 >> len(channels)
        # Global max-pool keeps the head tiny (the fast preset); flattening keeps the original's dense layer.
        self.pool = nn.AdaptiveMaxPool2d(1) if global_pool else nn.Identity()
        features = channels[-1] * (1 if global_pool else side * side)
        head: list[nn.Module] = [nn.Flatten()]
        if hidden > 0:
            head += [nn.Linear(features, hidden), nn.BatchNorm1d(hidden), nn.ReLU(), nn.Dropout(dense_dropout)]
            features = hidden
        self.classifier = nn.Sequential(*head, nn.Linear(features, num_classes))

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        """float [N, 1, 28, 28] in [0, 1] -> logits [N, num_classes]."""
        x = (image - self.mean) / self.std
        return self.classifier(self.pool(self.features(x)))
