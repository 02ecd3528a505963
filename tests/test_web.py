"""The draw-a-digit page in a real headless Chromium (Debian's chromium + chromedriver, driven by Selenium):
strokes that trace real MNIST test digits are drawn with pointer events; the page must recognise them, and
its preprocessing and probabilities must match the Python ones for the same drawing. A drawing the user labels
is saved by the page's server (`demo --collect_dir`); that one is drawn, never taken from the test set."""

from __future__ import annotations

import base64
import io
import os
import shutil
import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
import torch
from PIL import Image

from lightning_digits.data.idx import read_idx
from lightning_digits.data.images import _to_gray, to_mnist
from lightning_digits.demo import WEB_DIR, serve_in_background
from lightning_digits.export import export_onnx
from lightning_digits.models.averaging import VIEW_SETS, Averaged
from lightning_digits.models.cnn import Architecture, DigitsCNN

from .conftest import COMMITTED_MODEL

CHROMIUM, CHROMEDRIVER = shutil.which("chromium"), shutil.which("chromedriver")
MODEL = COMMITTED_MODEL
DIGITS = 10  # the first test image of each class
SCALE = 10  # canvas pixels per MNIST pixel (280 / 28)

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not (CHROMIUM and CHROMEDRIVER), reason="no chromium/chromedriver: `make setup` installs them"),
    pytest.mark.skipif(not (WEB_DIR / "node_modules").is_dir(), reason="web/node_modules missing: `make setup`"),
]


@contextmanager
def _page_with(model_dir: Path, collect_dir: Path | None = None):
    """Headless Chromium on the demo page, serving the digits_cnn.onnx of `model_dir` (and collecting the
    drawings the user labels in `collect_dir`, if given)."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--window-size=900,700",
    ):
        options.add_argument(flag)
    server, address = serve_in_background(str(model_dir), str(collect_dir) if collect_dir else None)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    try:
        driver.get(address)
        _wait(driver, "return window.digits && (window.digits.ready || window.digits.error)")
        assert driver.execute_script("return window.digits.error || null") is None
        yield driver
    finally:
        driver.quit()
        server.shutdown()


@pytest.fixture(scope="module")
def collected(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("collected") / "digits"


@pytest.fixture(scope="module")
def page(collected):
    with _page_with(MODEL.parent, collected) as driver:
        yield driver


def _wait(driver, script: str, timeout: float = 30) -> object:
    deadline = time.monotonic() + timeout
    while not (value := driver.execute_script(script)):
        assert time.monotonic() < deadline, f"timed out waiting for: {script}"
        time.sleep(0.05)
    return value


def strokes(digit: np.ndarray) -> list[tuple[int, int, int, int]]:
    """Horizontal strokes over each run of ink in each row: (x0, y0, x1, y1) in canvas pixels."""
    lines = []
    for row in range(28):
        ink = np.flatnonzero(digit[row] > 127)
        if len(ink) == 0:
            continue
        runs = np.split(ink, np.flatnonzero(np.diff(ink) > 1) + 1)
        y = row * SCALE + SCALE // 2
        lines += [(int(r[0]) * SCALE + SCALE // 2, y, int(r[-1]) * SCALE + SCALE // 2, y) for r in runs]
    return lines


def draw(driver, lines: list[tuple[int, int, int, int]]) -> dict:
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By

    pad = driver.find_element(By.ID, "pad")
    driver.find_element(By.ID, "clear").click()
    runs_before = driver.execute_script("return window.digits.runs")
    actions = ActionChains(driver, duration=0)
    half = 140  # Selenium's offsets are from the element's centre
    for x0, y0, x1, y1 in lines:
        actions.move_to_element_with_offset(pad, x0 - half, y0 - half).click_and_hold()
        actions.move_to_element_with_offset(pad, x1 - half, y1 - half).release()
    actions.perform()
    _wait(driver, f"return window.digits.runs > {runs_before} && !window.digits.pending && !window.digits.dirty")
    return driver.execute_script("return window.digits.last")


def canvas_png(driver) -> Image.Image:
    data_url = driver.execute_script("return document.getElementById('pad').toDataURL('image/png')")
    return Image.open(io.BytesIO(base64.b64decode(data_url.split(",", 1)[1])))


def test_drawn_mnist_digits_are_recognised_and_match_python(page, real_mnist):
    labels = read_idx(real_mnist / "t10k-labels-idx1-ubyte.gz", 1)
    firsts = [int(np.flatnonzero(labels == digit)[0]) for digit in range(DIGITS)]  # every class drawn once
    images, labels = read_idx(real_mnist / "t10k-images-idx3-ubyte.gz", 3)[firsts], labels[firsts]
    session = ort.InferenceSession(str(MODEL))
    correct = 0
    worst_input, worst_probability = 0.0, 0.0
    for digit, label in zip(images, labels, strict=True):
        result = draw(page, strokes(digit))
        correct += result["predicted"] == label
        browser_input = np.asarray(result["input"], dtype=np.float32).reshape(28, 28)
        python_input = to_mnist(_to_gray(canvas_png(page)))
        worst_input = max(worst_input, float(np.abs(browser_input - python_input).max()))
        logits = session.run(["logits"], {"image": browser_input.reshape(1, 1, 28, 28)})[0][0]
        python_probabilities = np.exp(logits - logits.max()) / np.exp(logits - logits.max()).sum()
        worst_probability = max(worst_probability, float(np.abs(python_probabilities - result["probabilities"]).max()))
    print(
        f"\nbrowser: {correct}/{DIGITS} recognised, max input difference {worst_input:.2e}, "
        f"max probability difference {worst_probability:.2e}"
    )
    assert correct >= DIGITS - 1, f"only {correct} of {DIGITS} drawn digits recognised"
    assert worst_input <= 1 / 255, f"browser and Python inputs differ by up to {worst_input}"
    assert worst_probability <= 1e-4, f"browser and Python probabilities differ by up to {worst_probability}"
    if screenshot := os.environ.get("LIGHTNING_DIGITS_SCREENSHOT"):
        draw(page, strokes(images[0]))
        Path(screenshot).write_bytes(page.get_screenshot_as_png())


def test_the_page_finds_ink_lighter_or_darker_than_its_paper_as_python_does(page, real_mnist):
    """The drawings above are all dark ink on white; the ink's side of the paper is decided on photos too: a
    white digit on grey paper (MNIST-C's brightness), dark ink on dim paper, and real digits under fog-like light."""
    digits = read_idx(real_mnist / "t10k-images-idx3-ubyte.gz", 3)[:3].astype(np.float64) / 255
    light = np.linspace(0.2, 0.7, 28)[:, None] + np.zeros((1, 28))
    photos = [0.5 + digits[0] / 2, 0.4 * (1 - digits[1]), np.clip(light + digits[2] / 2, 0, 1)]
    page.set_script_timeout(30)
    for photo in photos:
        browser_input = page.execute_async_script(
            "const [gray, done] = arguments;"
            "import('./preprocess.js').then((m) => done(Array.from(m.toMnist(Float64Array.from(gray), 28, 28))));",
            photo.ravel().tolist(),
        )
        assert np.abs(np.asarray(browser_input).reshape(28, 28) - to_mnist(photo)).max() <= 1e-6


def test_the_page_runs_an_ensemble_file_unchanged(real_mnist, tmp_path):
    """Two networks averaged over the shifted views, exported as one file: the browser's probabilities are
    onnxruntime's in Python for the same input (the views' GridSample and the averaging run in the page too)."""
    torch.manual_seed(0)
    members = [DigitsCNN(Architecture(channels=(8, 16), hidden=32)), DigitsCNN(Architecture(channels=(8,), hidden=0))]
    digits = read_idx(real_mnist / "t10k-images-idx3-ubyte.gz", 3)[:3]
    check = digits[:, None].astype(np.float32) / 255
    ensemble = Averaged(members, VIEW_SETS["shifts"])
    export_onnx(ensemble, tmp_path / "digits_cnn.onnx", [str(d) for d in range(10)], check)
    session = ort.InferenceSession(str(tmp_path / "digits_cnn.onnx"))
    with _page_with(tmp_path) as driver:
        assert driver.execute_script("return document.getElementById('collect').hidden")  # its server collects nothing
        for digit in digits:
            result = draw(driver, strokes(digit))
            browser_input = np.asarray(result["input"], dtype=np.float32).reshape(1, 1, 28, 28)
            probabilities = np.exp(session.run(["logits"], {"image": browser_input})[0][0])
            np.testing.assert_allclose(result["probabilities"], probabilities, atol=1e-4)


def test_a_drawing_the_user_corrects_is_saved_as_drawn_in_its_label_folder(page, collected):
    from selenium.webdriver.common.by import By

    assert page.find_element(By.ID, "count-7").text == "7: 0"
    result = draw(page, [(140, 50, 140, 230)])  # a drawn stroke; the model calls it what it will
    drawn = canvas_png(page)
    assert page.find_element(By.ID, "confirm-digit").text == str(result["predicted"])
    page.find_element(By.ID, "label-7").click()  # the user says it is a 7
    saved = _wait(page, "return window.digits.saved")
    _wait(page, "return document.getElementById('count-7').textContent === '7: 1'")
    status = page.find_element(By.ID, "saved").text
    assert saved["label"] == "7" and status == f"saved as 7 ({saved['file']})"
    assert sorted(collected.rglob("*")) == [collected / "7", collected / saved["file"]]
    with Image.open(collected / saved["file"]) as stored:
        assert stored.format == "PNG" and stored.size == (280, 280)
        assert np.array_equal(np.asarray(stored), np.asarray(drawn))  # the pad's image, as drawn
