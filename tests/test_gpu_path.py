"""What the GPU path relies on, tested here by its logic on the CPU (no GPU on the machines that run the tests):
the bf16 advice for GPUs before compute capability 8.0, and dropout masks that differ between DDP ranks."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from lightning_digits.data.augment import rank_seed
from lightning_digits.training.callbacks import SeedPerRank, bf16_advice

pytestmark = pytest.mark.unit  # pure functions: `make test-unit` runs them


@pytest.mark.parametrize(
    ("precision", "capability", "advised"),
    [
        ("bf16-mixed", (7, 0), True),  # V100
        ("bf16-mixed", (7, 5), True),  # T4
        ("bf16-true", (6, 1), True),
        ("bf16-mixed", (8, 0), False),  # A100
        ("bf16-mixed", (9, 0), False),  # H100
        ("16-mixed", (7, 0), False),
        ("32-true", (7, 5), False),
    ],
)
def test_bf16_is_advised_against_only_where_it_is_emulated(precision, capability, advised):
    advice = bf16_advice(precision, capability)
    assert (advice is not None) == advised
    if advised:
        assert "\n" not in advice and f"{capability[0]}.{capability[1]}" in advice and "16-mixed" in advice


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
