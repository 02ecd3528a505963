"""bf16 where the hardware has it: on a CPU without AVX-512 torch emulates bf16 autocast about ten times slower than
fp32 (docs/benchmarks.md), so the default config's bf16-mixed becomes 32-true there with a line that says so; on a
GPU before compute capability 8.0 it is emulated too, and a line advises 16-mixed (the GPU's logic, tested on the
CPU: no GPU on the machines that run the tests)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from lightning_digits.training.callbacks import PrecisionAdvice, bf16_advice, cpu_precision

from .conftest import TINY_MODEL


@pytest.mark.unit
@pytest.mark.parametrize(
    ("precision", "capability", "runs_as"),
    [
        ("bf16-mixed", "AVX2", "32-true"),  # AMD EPYC (Zen 3), most laptops
        ("bf16-true", "DEFAULT", "32-true"),
        ("bf16-mixed", "AVX512", "bf16-mixed"),  # Intel Xeon with AVX-512 bf16: 2.4x fp32's training step
        ("32-true", "AVX2", "32-true"),
        ("16-mixed", "AVX2", "16-mixed"),
        (None, "AVX2", None),  # Lightning's own default
    ],
)
def test_bf16_runs_as_fp32_on_a_cpu_without_avx512_and_says_so(precision, capability, runs_as):
    chosen, notice = cpu_precision(precision, capability)
    assert chosen == runs_as
    assert (notice is not None) == (chosen != precision)
    if notice:
        assert "\n" not in notice and capability in notice and precision in notice and "32-true" in notice


@pytest.mark.unit
def test_the_cpu_line_is_said_once_by_rank_0_alone(notices):
    """Under DDP every rank resolves the precision and builds the callback; only global rank 0 may speak."""
    advice = PrecisionAdvice("the CPU line")
    for rank in (1, 0):
        trainer = SimpleNamespace(
            is_global_zero=rank == 0, strategy=SimpleNamespace(root_device=torch.device("cpu")), precision="32-true"
        )
        advice.setup(trainer, None, "fit")
    assert notices().count("the CPU line") == 1


@pytest.mark.unit
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
def test_bf16_is_advised_against_on_a_gpu_only_where_it_is_emulated(precision, capability, advised):
    advice = bf16_advice(precision, capability)
    assert (advice is not None) == advised
    if advised:
        assert "\n" not in advice and f"{capability[0]}.{capability[1]}" in advice and "16-mixed" in advice


@pytest.mark.parametrize(("capability", "trained_in"), [("AVX2", "32-true"), ("AVX512", "bf16-mixed")])
def test_fit_on_the_cpu_trains_in_what_its_capability_allows(
    capability, trained_in, tmp_path, tiny_data, monkeypatch, notices, lightning_run
):
    monkeypatch.setattr(torch.backends.cpu, "get_cpu_capability", lambda: capability)
    run = lightning_run(
        "fit",
        f"--data.data_dir={tiny_data}",
        "--data.val_size=50",
        "--data.batch_size=16",
        f"--artifacts_dir={tmp_path / 'art'}",
        *TINY_MODEL,
        "--trainer.precision=bf16-mixed",
        "--trainer.max_epochs=1",
        "--trainer.limit_train_batches=1",
        "--trainer.limit_val_batches=1",
        "--progress_bar.refresh_rate=0",
    )
    assert run.trainer.precision == trained_in
    assert ("this CPU has no AVX-512" in notices()) == (trained_in == "32-true")
