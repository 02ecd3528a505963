"""The package as users install it: a wheel built from this checkout, installed without `-e` into a fresh venv,
used from a folder outside the checkout. The venv gets its dependencies from the running environment (a .pth
line to its site-packages) instead of reinstalling the 6 GB stack; the checkout itself is not importable."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
import sysconfig
import urllib.request
from pathlib import Path

import pytest
import yaml
from PIL import Image

from lightning_digits.data.idx import read_idx

from .conftest import COMMITTED_MODEL, REAL_MNIST, REPO, committed_model_accuracy

pytestmark = pytest.mark.slow
TINY = ["--model.channels=[8,16]", "--model.hidden=32", "--trainer.precision=32-true"]


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> tuple[Path, Path]:
    """(the venv's bin folder, a working folder outside the checkout)."""
    root = tmp_path_factory.mktemp("wheel")
    build = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", root / "dist", REPO]
    subprocess.run(build, check=True, capture_output=True)
    [wheel] = (root / "dist").glob("lightning_digits-*.whl")
    subprocess.run([sys.executable, "-m", "venv", root / "venv"], check=True)
    bin_dir = root / "venv" / "bin"
    subprocess.run(
        [bin_dir / "pip", "install", "-q", "--no-deps", "--no-index", wheel], check=True, capture_output=True
    )
    [site] = (root / "venv" / "lib").glob("python3*/site-packages")
    # A path in a .pth is added to sys.path, but the .pth files there (this checkout's editable install) are not
    # run: the dependencies are visible, the checkout is not.
    (site / "dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    work = root / "work"
    work.mkdir()
    return bin_dir, work


def _run(installed: tuple[Path, Path], program: str, *args: str, timeout: float = 180) -> subprocess.CompletedProcess:
    bin_dir, work = installed
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env["PATH"] = f"{bin_dir}{os.pathsep}{env.get('PATH', '')}"
    result = subprocess.run(
        [bin_dir / program, *args], cwd=work, env=env, capture_output=True, text=True, timeout=timeout
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result


def test_the_wheel_carries_every_preset_the_style_digits_and_the_web_page(installed):
    where = _run(installed, "python", "-c", "import lightning_digits as p; print(p.__file__)").stdout.strip()
    package = Path(where).parent
    assert installed[0].parent in package.parents, f"imported from {package}, not from the installed wheel"
    assert not (package / "configs").is_symlink()
    for config in (REPO / "configs").glob("*.yaml"):
        assert (package / "configs" / config.name).read_text() == config.read_text(), config.name
    style_digits = REPO / "lightning_digits/data/style_digits.npz"
    assert (package / "data/style_digits.npz").read_bytes() == style_digits.read_bytes()
    for name in ("index.html", "app.js", "preprocess.js", "style.css"):
        assert (package / "web" / name).read_bytes() == (REPO / "web" / name).read_bytes(), name
    assert (package / "web/node_modules/onnxruntime-web/dist/ort-wasm-simd-threaded.wasm").stat().st_size > 1e6


def test_shipped_defaults_apply_outside_the_checkout(installed):
    """One run shows both shipped files: bf16 and one device come from the default config (mnist.yaml), the
    network and the epochs from the preset layered on it."""
    fast = yaml.safe_load(_run(installed, "lightning-digits", "fit", "-c", "fast", "--print_config").stdout)
    assert fast["trainer"]["precision"] == "bf16-mixed" and fast["trainer"]["devices"] == 1
    assert fast["model"]["channels"] == [16, 32, 64] and fast["trainer"]["max_epochs"] == 2


@pytest.fixture(scope="module")
def digit_files(installed) -> tuple[Path, list[int]]:
    if not (REAL_MNIST / "t10k-images-idx3-ubyte.gz").is_file():
        pytest.skip(f"real MNIST not found at {REAL_MNIST}; set LIGHTNING_DIGITS_DATA")
    folder = installed[1] / "my_digits"
    folder.mkdir()
    digits = read_idx(REAL_MNIST / "t10k-images-idx3-ubyte.gz", 3)[:4]
    for i, digit in enumerate(digits):  # dark ink on white paper, larger: not MNIST's own format
        Image.fromarray(255 - digit).resize((84, 84)).save(folder / f"digit_{i}.png")
    return folder, read_idx(REAL_MNIST / "t10k-labels-idx1-ubyte.gz", 1)[:4].tolist()


def test_user_path_from_the_wheel(installed, digit_files):
    """fit one batch on the real MNIST, evaluate (which exports), predict on image files, the onnxruntime-only
    predictor on the exported file."""
    work = installed[1]
    data = f"--data.data_dir={REAL_MNIST}"
    _run(
        installed,
        "lightning-digits",
        "fit",
        data,
        "--artifacts_dir=art",
        "--data.train_subset=128",
        "--trainer.max_epochs=1",
        "--trainer.limit_train_batches=1",
        "--trainer.limit_val_batches=1",
        "--progress_bar.refresh_rate=0",
        *TINY,
    )
    assert (work / "art/digits_cnn.ckpt").is_file() and (work / "art/digits_cnn_final.ckpt").is_file()

    _run(installed, "lightning-digits", "evaluate", "--checkpoint=art/digits_cnn.ckpt", "--baselines=false")
    for name in ("summary.txt", "summary.json", "confusion_matrix.png", "digits_cnn.onnx"):
        assert (work / "art" / name).is_file(), name
    assert json.loads((work / "art/summary.json").read_text())["onnx"]["max_logit_difference"] < 1e-4

    folder, _ = digit_files
    _run(
        installed,
        "lightning-digits",
        "predict",
        "--ckpt_path=art/digits_cnn.ckpt",
        f"--data.predict_path={folder}",
        "--artifacts_dir=art",
    )
    with open(work / "art/predictions.csv") as f:
        torch_rows = list(csv.DictReader(f))
    assert [Path(r["file"]).name for r in torch_rows] == [f"digit_{i}.png" for i in range(4)]

    onnx_rows = _run(installed, "python", "-m", "lightning_digits.onnx_predictor", "art/digits_cnn.onnx", str(folder))
    onnx_rows = onnx_rows.stdout
    onnx_rows = list(csv.DictReader(onnx_rows.splitlines()))
    assert [r["predicted"] for r in onnx_rows] == [r["predicted"] for r in torch_rows]


def test_demo_serves_the_page_and_the_runtime_from_the_wheel(installed):
    bin_dir, work = installed
    art = work / "demo_art"
    art.mkdir()
    (art / "digits_cnn.onnx").write_bytes(COMMITTED_MODEL.read_bytes())
    server = subprocess.Popen(
        [bin_dir / "lightning-digits", "demo", f"--artifacts_dir={art}", "--port=0"],
        cwd=work,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        line = server.stdout.readline()  # the address, printed once listening; "" if it died
        assert "open http://" in line, server.stderr.read()
        address = line.split("open ", 1)[1].split()[0]
        for path in ("", "app.js", "node_modules/onnxruntime-web/dist/ort.wasm.min.js", "model/digits_cnn.onnx"):
            with urllib.request.urlopen(address + path, timeout=10) as response:
                assert response.status == 200 and response.read(), path
    finally:
        server.terminate()
        server.wait(timeout=10)


def test_serve_from_the_wheel_answers_the_readme_curl_examples(installed, digit_files):
    from .test_serve import Server

    bin_dir, work = installed
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env["PATH"] = f"{bin_dir}{os.pathsep}{env.get('PATH', '')}"
    server = Server([str(bin_dir / "lightning-digits"), "serve", f"--model={COMMITTED_MODEL}"], work / "serve_cwd", env)
    try:
        folder, labels = digit_files
        digit = folder / "digit_0.png"
        multipart = ["-F", f"file=@{digit}"]
        raw = ["--data-binary", f"@{digit}", "-H", "Content-Type: image/png"]
        for body in (multipart, raw):
            curl = ["curl", "-s", *body, f"{server.url}/predict"]
            answer = json.loads(subprocess.run(curl, capture_output=True, text=True, timeout=30, check=True).stdout)
            assert answer["predictions"][0]["predicted"] == str(labels[0])
            assert answer["model"]["file"] == "digits_cnn.onnx"
            assert answer["model"]["test_accuracy"] == committed_model_accuracy()  # the figure its metadata records
    finally:
        assert server.stop() == 0
