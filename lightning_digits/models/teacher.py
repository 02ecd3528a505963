"""The teacher of a distillation: a network (usually models/averaging.Averaged over an ensemble) whose tempered
probabilities the student learns beside the labels (Hinton et al., 2015). LitDigits holds it while `distill`
trains; knows nothing of files or Lightning.

Not an nn.Module on purpose: held as a plain attribute, the teacher's weights stay out of the student's
state_dict (so its checkpoints and ONNX file are a single network's), its optimiser, its EMA copy and its
train()/eval() switches."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class Teacher:
    def __init__(self, net: nn.Module, temperature: float, weight: float) -> None:
        """`net`'s output is taken as log-probabilities up to a constant (Averaged gives the log of the members'
        mean probability); the target is their softmax at `temperature` (1: the averaged probabilities themselves,
        above 1: softer). `weight`: the share of the soft loss in the student's loss, the labels' being 1 - weight."""
        self.net = net.eval().requires_grad_(False).to(memory_format=torch.channels_last)
        self.temperature = temperature
        self.weight = weight

    def targets(self, images: torch.Tensor) -> torch.Tensor:
        """The teacher's tempered probabilities for the very images the student sees (augmented, on its device)."""
        if next(self.net.parameters()).device != images.device:
            self.net.to(images.device)
        with torch.no_grad():
            log_probabilities = self.net(images.contiguous(memory_format=torch.channels_last)).float()
        return F.softmax(log_probabilities / self.temperature, dim=1)

    def loss(self, logits: torch.Tensor, images: torch.Tensor, label_loss: torch.Tensor) -> torch.Tensor:
        """(1 - weight) x the labels' loss + weight x T^2 x KL(teacher || student) at temperature T; the T^2 keeps the
        soft term's gradients at the labels' scale whatever T is."""
        t = self.temperature
        student = F.log_softmax(logits.float() / t, dim=1)
        soft = F.kl_div(student, self.targets(images), reduction="batchmean") * t * t
        return (1 - self.weight) * label_loss + self.weight * soft
