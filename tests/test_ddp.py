"""Two CPU processes (gloo) under Lightning's DDP, through the real CLI in subprocesses: Lightning's ddp
launcher re-executes sys.argv, so it must never run inside the pytest process. The one-process run that the
DDP test is compared with needs no launcher, so it runs here through main(argv)."""

import csv

import pytest

from .conftest import TINY_MODEL, run_cli

DDP = ["--trainer.accelerator=cpu", "--trainer.devices=2", "--trainer.strategy=ddp"]


def _logged(art, key: str) -> float:
    """The value of `key` in the newest CSV log (each run writes a new version folder)."""
    latest = max(art.glob("logs/version_*"), key=lambda p: int(p.name.removeprefix("version_")))
    [value] = [row[key] for row in csv.DictReader(open(latest / "metrics.csv")) if row.get(key)]
    return float(value)


@pytest.mark.slow
def test_ddp_fit_test_predict_match_one_process(tmp_path, real_mnist, cli):
    art = tmp_path / "art"
    common = [f"--data.data_dir={real_mnist}", f"--artifacts_dir={art}", *TINY_MODEL]
    fit = run_cli("fit", *common, *DDP, "--data.train_subset=2000", "--trainer.max_epochs=1", timeout=240)
    assert fit.returncode == 0, fit.stderr[-3000:]
    assert sorted(p.name for p in art.glob("*.ckpt")) == ["digits_cnn.ckpt", "digits_cnn_final.ckpt"]
    assert len(list(art.glob("logs/version_*"))) == 1, "only rank 0 writes logs"
    checkpoint = f"--ckpt_path={art / 'digits_cnn.ckpt'}"

    two = run_cli("test", *common, *DDP, checkpoint, timeout=180)
    assert two.returncode == 0, two.stderr[-3000:]
    two_processes = _logged(art, "test_acc"), _logged(art, "test_loss")
    one = cli("test", *common, "--trainer.accelerator=cpu", "--trainer.devices=1", checkpoint)
    assert one.code == 0, one.err[-3000:]
    one_process = _logged(art, "test_acc"), _logged(art, "test_loss")
    assert two_processes[0] == one_process[0], "test accuracy must be that of the whole test set"
    assert two_processes[1] == pytest.approx(one_process[1], rel=1e-5)

    predict = run_cli("predict", *common, *DDP, checkpoint, timeout=180)
    assert predict.returncode == 0, predict.stderr[-3000:]
    rows = list(csv.DictReader(open(art / "predictions.csv")))
    assert [r["file"] for r in rows] == [f"test[{i}]" for i in range(10_000)]
    assert not list(art.glob(".predictions*")), "no temporary file left behind"


@pytest.mark.slow
def test_one_cycle_scales_its_rate_with_the_process_count(tmp_path, tiny_data):
    """`--model.lr_scaling linear` under two processes doubles one-cycle's rates (OneCycleLR used to be given the
    unscaled --model.lr, so every process count trained at the one-process rate)."""
    art = tmp_path / "art"
    one_cycle = ["--model.scheduler=one_cycle", "--model.lr_scaling=linear", "--model.lr=0.01"]
    fit = run_cli("fit", f"--data.data_dir={tiny_data}", "--data.val_size=50", "--data.batch_size=32",
                  f"--artifacts_dir={art}", *TINY_MODEL, *DDP, *one_cycle, "--trainer.max_epochs=1",
                  "--progress_bar.refresh_rate=0", timeout=240)  # fmt: skip
    assert fit.returncode == 0, fit.stderr[-3000:]
    # The rate logged at the epoch's start is one-cycle's first: its peak (2 x 0.01) over div_factor 25.
    assert _logged(art, "lr-Adam") == pytest.approx(2 * 0.01 / 25)
