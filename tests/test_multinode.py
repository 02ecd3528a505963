"""Two nodes for one training run, as the README's torchrun command starts them: two `torchrun --nnodes 2
--nproc_per_node 1` launchers on this machine (node ranks 0 and 1, static rendezvous on 127.0.0.1, gloo on the
CPU), each in a folder of its own as if on its own disk. One fit, then one test of its best checkpoint, each
across the two nodes; and a node that never comes is a short timeout with one clear line, not a hang."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from harness import free_port

from .conftest import REPO, TINY_MODEL, write_dataset

TORCHRUN = Path(sys.executable).with_name("torchrun")
ACROSS_TWO_NODES = [
    "--trainer.num_nodes=2",
    "--trainer.accelerator=cpu",
    "--trainer.devices=1",
    "--trainer.strategy=ddp",
    "--progress_bar.refresh_rate=0",
    "--trainer.enable_model_summary=false",
]


def _launcher(node_rank: int, port: int, args: list[str], cwd: Path, timeout: int = 60) -> subprocess.Popen:
    command = [
        str(TORCHRUN),
        "--nnodes=2",
        "--nproc_per_node=1",
        f"--node_rank={node_rank}",
        "--master_addr=127.0.0.1",
        f"--master_port={port}",
        f"--rdzv_conf=timeout={timeout}",
        "-m",
        "lightning_digits",
        *args,
    ]
    cwd.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    return subprocess.Popen(command, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _on_two_nodes(nodes: list[Path], args: list[str]) -> None:
    port = free_port()
    launchers = [_launcher(rank, port, args, folder) for rank, folder in enumerate(nodes)]
    outputs = [launcher.communicate(timeout=240)[0] for launcher in launchers]
    for launcher, output in zip(launchers, outputs, strict=True):
        assert launcher.returncode == 0, output[-3000:]


def _logged(folder: Path, version: int, key: str) -> float:
    [value] = [
        row[key] for row in csv.DictReader(open(folder / "logs" / f"version_{version}" / "metrics.csv")) if row.get(key)
    ]
    return float(value)


@pytest.mark.slow
def test_a_fit_and_a_test_across_two_nodes(tmp_path, cli):
    if not TORCHRUN.is_file():
        pytest.skip(f"torchrun not found beside {sys.executable}")
    data = write_dataset(tmp_path / "data")
    # A node that never comes: started first, it waits beside the real run and gives up after 3 s.
    alone = _launcher(0, free_port(), ["fit", f"--data.data_dir={data}", *ACROSS_TWO_NODES], tmp_path / "alone", 3)
    started = time.monotonic()

    nodes = [tmp_path / "node0", tmp_path / "node1"]
    tiny = [f"--data.data_dir={data}", "--data.val_size=50", *TINY_MODEL]
    common = [*tiny, "--artifacts_dir=art"]  # relative: each node's own folder
    _on_two_nodes(
        nodes,
        [
            "fit",
            *common,
            *ACROSS_TWO_NODES,
            "--data.batch_size=16",
            "--trainer.max_epochs=1",
            "--trainer.limit_train_batches=3",
            "--trainer.num_sanity_val_steps=0",
        ],
    )
    art = nodes[0] / "art"
    assert sorted(p.name for p in art.glob("*.ckpt")) == ["digits_cnn.ckpt", "digits_cnn_final.ckpt"]
    assert [p.name for p in (art / "logs").iterdir()] == ["version_0"], "one log, by global rank 0"
    assert not list((nodes[1] / "art").rglob("*.*")), "node 1 writes no checkpoint, log or config"

    # The checkpoint is on node 0's disk; node 1 reads the same file (a shared path, as on a cluster).
    checkpoint = f"--ckpt_path={art / 'digits_cnn.ckpt'}"
    _on_two_nodes(nodes, ["test", *common, *ACROSS_TWO_NODES, checkpoint])
    two_nodes = _logged(art, 1, "test_acc"), _logged(art, 1, "test_loss")
    one = cli("test", *tiny, f"--artifacts_dir={tmp_path / 'one'}", checkpoint, "--trainer.accelerator=cpu")
    assert one.code == 0, one.err[-3000:]
    one_process = _logged(tmp_path / "one", 0, "test_acc"), _logged(tmp_path / "one", 0, "test_loss")
    assert two_nodes[0] == one_process[0], "each test image counted once across the nodes"
    assert two_nodes[1] == pytest.approx(one_process[1], rel=1e-5)

    output = alone.communicate(timeout=60)[0]
    assert alone.returncode != 0 and time.monotonic() - started < 120
    assert "DistStoreError: Timed out after" in output and "waiting for clients. 1/2 clients joined" in output
