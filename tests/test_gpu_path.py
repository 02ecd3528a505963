"""What the GPU path relies on, tested here by its logic on the CPU (no GPU on the machines that run the tests):
dropout masks that differ between DDP ranks. (The bf16 advice for GPUs before compute capability 8.0 is in
test_precision.)"""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from lightning_digits.data.augment import rank_seed
from lightning_digits.training.callbacks import SeedPerRank

pytestmark = pytest.mark.unit  # pure functions: `make test-unit` runs them


def _dropout_mask_after_fit_start(rank: int, seed: int = 42) -> torch.Tensor:
    torch.manual_seed(seed)  # what seed_everything does on every rank
    SeedPerRank().on_fit_start(SimpleNamespace(global_rank=rank), None)
    return torch.nn.Dropout(0.5)(torch.ones(1000)) > 0  # nn.Dropout: the layer used on CUDA


def test_each_rank_draws_its_own_dropout_masks_and_rank_0_is_unchanged():
    saved = torch.random.get_rng_state()
    try:
        masks = [_dropout_mask_after_fit_start(rank) for rank in (0, 1, 2)]
        torch.manual_seed(42)
        one_process = torch.nn.Dropout(0.5)(torch.ones(1000)) > 0
        again = _dropout_mask_after_fit_start(1)
    finally:
        torch.random.set_rng_state(saved)
    assert torch.equal(masks[0], one_process), "one process (rank 0) draws as before"
    assert not torch.equal(masks[0], masks[1]) and not torch.equal(masks[1], masks[2])
    assert torch.equal(masks[1], again), "each rank's draws are still seeded"
    assert len({rank_seed(42, rank) for rank in range(64)}) == 64
