"""`lightning-digits serve`: a real server in a subprocess on a free 127.0.0.1 port, a real HTTP client.

One server for the module (torch blocked, so it also proves the serving side never imports it; collecting
digits on); every request and every stop is bounded in time. The faults (SIGTERM and Ctrl-C under load, a killed
worker, huge images) and the reload each get a server of their own.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
import zlib
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

import httpx
import numpy as np
import pytest
from harness import ProcessGroup, free_port
from PIL import Image

from lightning_digits.data.idx import read_idx
from lightning_digits.onnx_predictor import OnnxDigits
from lightning_digits.serving.limits import MAX_BODY_BYTES, MAX_IMAGES, MAX_REQUEST_PIXELS
from tests.conftest import COMMITTED_MODEL, REPO, committed_model_accuracy, synthetic_digits

MODEL = COMMITTED_MODEL
BODY_TIMEOUT = 1.0  # the slow-client case waits this long
COLLECT_LIMIT = 30  # files per class folder on the module's server
WORKERS = 2
TIMEOUT = httpx.Timeout(30.0)
SERVE = [sys.executable, "-m", "lightning_digits.serving", f"--model={MODEL}"]


class Server(ProcessGroup):
    def __init__(self, command: list[str], cwd: Path, env: dict[str, str] | None = None) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.cwd = cwd
        cwd.mkdir(parents=True, exist_ok=True)
        super().__init__([*command, f"--port={self.port}"], cwd.parent / f"server_{self.port}.log", cwd, env)
        self.wait_healthy(f"{self.url}/health")
        self.first_line = self.output().splitlines()[0]

    def workers(self) -> set[int]:
        return {pid for pid, line in self.members().items() if "serving.worker" in line}


def torch_blocked_env(folder: Path) -> dict[str, str]:
    folder.mkdir(exist_ok=True)
    (folder / "torch.py").write_text("raise ImportError('torch is not available here')\n")
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(folder), str(REPO)])}


@pytest.fixture(scope="module")
def model() -> Path:
    """The committed model, looked for when a test needs it (so a clone without it still collects this file, and
    skips those tests saying why)."""
    if not MODEL.is_file():
        pytest.skip(f"no model at {MODEL.relative_to(REPO)}: `make train && make evaluate` makes it")
    return MODEL


@pytest.fixture(scope="module")
def model_accuracy(model) -> float:
    return committed_model_accuracy()


@pytest.fixture(scope="module")
def collected(tmp_path_factory) -> Path:
    """The module's server stores POST /samples here (created by the server)."""
    return tmp_path_factory.mktemp("collected") / "digits"


@pytest.fixture(scope="module")
def server(tmp_path_factory, collected, model):
    cwd = tmp_path_factory.mktemp("serve_cwd")  # the server must leave it empty (no client.py)
    env = torch_blocked_env(tmp_path_factory.mktemp("blocker"))
    options = [f"--collect_dir={collected}", f"--collect_limit={COLLECT_LIMIT}"]
    running = Server([*SERVE, f"--body_timeout={BODY_TIMEOUT}", f"--workers={WORKERS}", *options], cwd, env)
    yield running
    running.stop()


@pytest.fixture(scope="module")
def client(server):
    with httpx.Client(base_url=server.url, timeout=TIMEOUT) as session:
        yield session


@pytest.fixture(scope="module")
def digits(tmp_path_factory) -> list[Path]:
    """The first 100 MNIST test digits as PNG files (the real set when present, else skipped)."""
    from tests.conftest import REAL_MNIST

    if not (REAL_MNIST / "t10k-images-idx3-ubyte.gz").is_file():
        pytest.skip(f"real MNIST not found at {REAL_MNIST}; set LIGHTNING_DIGITS_DATA")
    folder = tmp_path_factory.mktemp("digits")
    paths = []
    for i, image in enumerate(read_idx(REAL_MNIST / "t10k-images-idx3-ubyte.gz", 3)[:100]):
        paths.append(folder / f"{i:03d}.png")
        Image.fromarray(image).save(paths[-1])
    return paths


@pytest.fixture(scope="module")
def expected(digits, model) -> np.ndarray:
    return OnnxDigits(model).predict_files(digits)


def upload(client: httpx.Client, *paths: Path) -> httpx.Response:
    return client.post("/predict", files=[("file", (p.name, p.read_bytes(), "image/png")) for p in paths])


def assert_matches(answer: dict, names: list[str], probabilities: np.ndarray) -> None:
    assert [p["name"] for p in answer["predictions"]] == names
    classes = [str(d) for d in range(10)]
    for prediction, row in zip(answer["predictions"], probabilities, strict=True):
        assert prediction["predicted"] == classes[int(row.argmax())]
        assert prediction["confidence"] == pytest.approx(float(row.max()), abs=1e-5)
        assert list(prediction["probabilities"]) == classes
        np.testing.assert_allclose(list(prediction["probabilities"].values()), row, atol=1e-5)


def assert_still_serving(client: httpx.Client, digit: Path) -> None:
    answer = upload(client, digit)
    assert answer.status_code == 200, answer.text
    assert answer.json()["predictions"][0]["name"] == digit.name


def assert_no_torch_loaded(server: Server) -> None:
    for pid in server.members():  # every process of the server: the supervisor and its workers
        assert "libtorch" not in Path(f"/proc/{pid}/maps").read_text(), server.members()[pid]


def test_start_line_names_address_model_and_accuracy_and_no_process_loads_torch(server, model_accuracy):
    assert server.first_line.startswith(f"lightning-digits serve: POST {server.url}/predict <- ")
    assert "digits_cnn.onnx" in server.first_line and f"test accuracy {model_accuracy:.4f}" in server.first_line
    assert f"{WORKERS} worker(s)" in server.first_line
    assert httpx.get(f"{server.url}/health", timeout=5).text == "ok"
    assert_no_torch_loaded(server)


def test_the_processes_are_the_supervisor_and_its_workers(server):
    assert len(server.members()) == WORKERS + 1 and len(server.workers()) == WORKERS, server.members()


def test_uploads_give_the_onnx_predictor_answers(client, digits, expected, model_accuracy):
    with ThreadPoolExecutor(8) as pool:  # concurrent single-image requests, so batches mix them
        answers = list(pool.map(lambda p: upload(client, p), digits))
    for path, answer, row in zip(digits, answers, expected, strict=True):
        assert answer.status_code == 200, answer.text
        assert_matches(answer.json(), [path.name], row[None])
    several = upload(client, *digits[:10])
    assert several.status_code == 200, several.text
    assert_matches(several.json(), [p.name for p in digits[:10]], expected[:10])
    model = several.json()["model"]
    assert model == {
        "file": "digits_cnn.onnx",
        "sha256": hashlib.sha256(MODEL.read_bytes()).hexdigest(),
        "test_accuracy": model_accuracy,
    }


def test_base64_json_gives_the_same_answer_as_the_upload(client, digits, expected):
    encoded = [base64.b64encode(p.read_bytes()).decode() for p in digits[:5]]
    one = client.post("/predict", json={"image": encoded[0]})
    assert one.status_code == 200, one.text
    assert_matches(one.json(), ["image"], expected[:1])
    assert one.json()["predictions"][0]["predicted"] == upload(client, digits[0]).json()["predictions"][0]["predicted"]
    several = client.post("/predict", json={"images": encoded})
    assert several.status_code == 200, several.text
    assert_matches(several.json(), [f"images[{i}]" for i in range(5)], expected[:5])
    data_url = client.post("/predict", json={"image": "data:image/png;base64," + encoded[1]})
    assert_matches(data_url.json(), ["image"], expected[1:2])


@pytest.mark.parametrize("suffix, media_type", [("png", "image/png"), ("jpeg", "image/jpeg"), ("bmp", "image/bmp")])
def test_a_raw_image_body_gives_the_multipart_answer(client, digits, tmp_path, suffix, media_type):
    path = tmp_path / f"digit.{suffix}"
    Image.open(digits[4]).convert("L").save(path)
    raw_answer = client.post("/predict", content=path.read_bytes(), headers={"content-type": media_type})
    assert raw_answer.status_code == 200, raw_answer.text
    multipart_answer = upload(client, path)
    assert raw_answer.json()["predictions"][0]["name"] == "image"
    assert {**raw_answer.json()["predictions"][0], "name": path.name} == multipart_answer.json()["predictions"][0]


def png_bytes(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def bomb_png(side: int = 20_000) -> bytes:
    """A PNG header for a side x side grayscale image and a few rows of data: a few hundred bytes that
    would decode to side^2 pixels."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    rows = zlib.compress(b"\0" * (side + 1) * 16)
    header = struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", rows) + chunk(b"IEND", b"")


def multipart(parts: int) -> dict:
    return {"files": [("file", (f"{i}.png", b"x", "image/png")) for i in range(parts)]}


def raw(content_type: str | None, content: bytes) -> dict:
    return {"content": content, "headers": {"content-type": content_type} if content_type else {}}


def upload_of(name: str, data: bytes) -> dict:
    return {"files": {"file": (name, data)}}


NO_FILE = b'--b\r\nContent-Disposition: form-data; name="note"\r\n\r\ntext\r\n--b--\r\n'
TOO_MANY = MAX_IMAGES + 1
BAD_INPUTS = {  # case: (status, words the detail must hold, the request)
    "not an image": (422, "notes.png: cannot read it as an image", upload_of("notes.png", b"hello")),
    "empty body": (400, "empty body", raw("application/json", b"")),
    "truncated png": (
        422,
        "cut.png: cannot read it as an image",
        upload_of("cut.png", png_bytes(Image.new("L", (200, 200), 128))[:60]),
    ),
    "decompression bomb": (422, "bomb.png: above the limit of 40,000,000 pixels", upload_of("bomb.png", bomb_png())),
    "blank image": (422, "blank.png: no ink", upload_of("blank.png", png_bytes(Image.new("L", (28, 28), 255)))),
    "wrong json shape": (400, "wrong JSON shape", {"json": {"picture": "abc"}}),
    "json list": (400, "wrong JSON shape", {"json": ["abc"]}),
    "empty images list": (400, '"images" must be a non-empty list', {"json": {"images": []}}),
    "not a string": (400, "image: expected a base64 string, got int", {"json": {"image": 5}}),
    "malformed json": (400, "not valid JSON", raw("application/json", b'{"image": ')),
    "wrong base64": (400, "image: not valid base64", {"json": {"image": "not base64 at all!"}}),
    "wrong content type": (415, "content type 'text/plain' is not accepted", raw("text/plain", b"7")),
    "raw body not an image": (422, "image: cannot read it as an image", raw("image/png", b"not a png")),
    "no content type": (415, "content type '(none)' is not accepted", raw(None, b"7")),
    "too many base64 images": (
        400,
        f"{TOO_MANY} images in one request; the limit is {MAX_IMAGES}",
        {"json": {"images": ["AAAA"] * TOO_MANY}},
    ),
    "too many uploads": (400, f"{TOO_MANY} images in one request", multipart(TOO_MANY)),
    "no file in the form": (400, "no file in the upload", raw("multipart/form-data; boundary=b", NO_FILE)),
    "malformed multipart": (400, "malformed multipart body", raw("multipart/form-data; boundary=xyz", b"garbage")),
    "multipart without boundary": (400, "without a boundary", raw("multipart/form-data", b"garbage")),
}


@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_bad_input_answers_a_4xx_naming_it_and_the_server_keeps_serving(client, digits, case):
    status, words, request = BAD_INPUTS[case]
    answer = client.post("/predict", **request)
    assert answer.status_code == status, answer.text
    assert answer.headers["content-type"] == "application/json"
    assert words in answer.json()["detail"]
    assert "Traceback" not in answer.text
    assert_still_serving(client, digits[0])


def raw_request(port: int, head: bytes, body: bytes, wait: float = 10.0) -> bytes:
    """Send exactly these bytes and read what comes back until the server closes or `wait` runs out."""
    with socket.create_connection(("127.0.0.1", port), timeout=wait) as connection:
        connection.sendall(head + body)
        received = b""
        try:
            while chunk := connection.recv(65536):
                received += chunk
                if b"\r\n\r\n" in received and b'"detail"' in received:
                    break
        except TimeoutError:
            pass
    return received


def test_body_over_the_limit_answers_413_before_reading_it(server, client, digits):
    head = (
        f"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        f"Content-Length: {MAX_BODY_BYTES + 1}\r\n\r\n"
    ).encode()
    answer = raw_request(server.port, head, b'{"image": "')
    assert answer.startswith(b"HTTP/1.1 413"), answer[:300]
    assert f"the limit is {MAX_BODY_BYTES:,}".encode() in answer
    streamed = client.post(  # no Content-Length (chunked): counted as it arrives
        "/predict", content=iter([b"x" * (1 << 20)] * 17), headers={"content-type": "application/json"}
    )
    assert streamed.status_code == 413, streamed.text
    assert_still_serving(client, digits[0])


def test_slow_client_gets_408_and_holds_nothing(server, client, digits):
    head = b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n"
    started = time.monotonic()
    with ThreadPoolExecutor(1) as pool:
        slow = pool.submit(raw_request, server.port, head, b'{"image": "', 10.0)
        assert_still_serving(client, digits[1])  # answered while the slow client holds its connection
        answer = slow.result()
    assert answer.startswith(b"HTTP/1.1 408"), answer[:300]
    assert b"did not arrive within 1 s" in answer
    assert BODY_TIMEOUT <= time.monotonic() - started < BODY_TIMEOUT + 5


def test_client_that_disconnects_mid_upload_leaves_the_server_serving(server, client, digits):
    for _ in range(3):
        with socket.create_connection(("127.0.0.1", server.port), timeout=5) as connection:
            connection.sendall(
                b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary=b\r\n"
                b'Content-Length: 100000\r\n\r\n--b\r\nContent-Disposition: form-data; name="file"; filename="a.png"'
            )
    assert_still_serving(client, digits[2])


def test_concurrent_clients_all_get_correct_answers(server, digits, expected):
    classes = [str(d) for d in range(10)]

    def one_client(offset: int) -> list[tuple[int, int, str]]:
        results = []
        with httpx.Client(base_url=server.url, timeout=TIMEOUT) as session:
            for i in range(50):
                k = (offset * 50 + i) % len(digits)
                answer = upload(session, digits[k])
                results.append((k, answer.status_code, answer.json()["predictions"][0]["predicted"]))
        return results

    with ThreadPoolExecutor(16) as pool:
        results = [r for batch in pool.map(one_client, range(16)) for r in batch]
    assert len(results) == 800
    assert all(status == 200 for _, status, _ in results)
    assert all(predicted == classes[int(expected[k].argmax())] for k, _, predicted in results)


def test_a_bad_image_fails_only_its_own_request(server, digits, expected):
    blank = png_bytes(Image.new("L", (28, 28), 255))

    def one_client(k: int) -> list[tuple[bool, int, str]]:
        results = []
        with httpx.Client(base_url=server.url, timeout=TIMEOUT) as session:
            for i in range(10):
                good = (k + i) % 2 == 0
                files = {"file": ("d.png", digits[k].read_bytes() if good else blank)}
                answer = session.post("/predict", files=files)
                results.append((good, answer.status_code, answer.text))
        return results

    with ThreadPoolExecutor(8) as pool:
        results = [r for batch in pool.map(one_client, range(8)) for r in batch]
    assert all(status == 200 for good, status, _ in results if good), results
    assert all(status == 422 and "no ink" in text for good, status, text in results if not good), results


def test_info_and_openapi_describe_the_model_and_the_shapes(client, model_accuracy):
    info = client.get("/info").json()["model"]
    assert info["file"] == "digits_cnn.onnx" and info["test_accuracy"] == model_accuracy
    assert info["sha256"] == hashlib.sha256(MODEL.read_bytes()).hexdigest()
    assert info["class_names"] == [str(d) for d in range(10)] and "[N, 1, 28, 28]" in info["input_contract"]
    assert info["version"] and info["limits"]["max_images_per_request"] == MAX_IMAGES
    assert info["limits"]["max_body_bytes"] == MAX_BODY_BYTES and info["limits"]["body_timeout_s"] == BODY_TIMEOUT
    assert info["limits"]["max_request_pixels"] == MAX_REQUEST_PIXELS
    assert info["engine"]["workers"] == WORKERS
    schema = client.get("/openapi.json").json()
    post = schema["paths"]["/predict"]["post"]
    assert set(post["requestBody"]["content"]) == {"multipart/form-data", "image/*", "application/json"}
    assert {"200", "400", "408", "413", "415", "422", "504"} <= set(post["responses"])
    assert {"Answer", "Prediction", "ModelInfo", "Base64Images", "Problem"} <= set(schema["components"]["schemas"])
    samples = schema["paths"]["/samples"]
    assert set(samples["post"]["requestBody"]["content"]) == {"multipart/form-data"}
    assert {"200", "400", "404", "409", "413", "415", "422"} <= set(samples["post"]["responses"])
    assert "Stored" in schema["components"]["schemas"] and "200" in samples["get"]["responses"]
    assert info["collect"] == {"limit_per_class": COLLECT_LIMIT}
    docs = client.get("/docs")
    assert docs.status_code == 200 and "swagger" in docs.text.lower()


def generated_digit(seed: int) -> bytes:
    """A PNG of a generated digit (never one of MNIST's test set), different for each seed."""
    images, _ = synthetic_digits(10, seed)
    return png_bytes(Image.fromarray(images[seed % 10]))


def stored_files(folder: Path) -> dict[str, bytes]:
    return {str(path.relative_to(folder)): path.read_bytes() for path in sorted(folder.rglob("*")) if path.is_file()}


def post_sample(client: httpx.Client, data: bytes, label: str | None, name: str = "digit.png") -> httpx.Response:
    fields = {"label": label} if label is not None else {}
    return client.post("/samples", files={"file": (name, data)}, data=fields)


def test_a_sample_is_stored_as_a_png_in_its_label_folder_and_counted(client, collected, tmp_path):
    before = client.get("/samples").json()
    png = generated_digit(3)
    answer = post_sample(client, png, "3")
    assert answer.status_code == 200, answer.text
    stored = collected / answer.json()["file"]
    assert answer.json()["label"] == "3" and stored.parent == collected / "3"
    assert stored.read_bytes() == png  # a PNG is kept byte for byte
    jpeg = tmp_path / "digit.jpg"
    Image.open(io.BytesIO(png)).save(jpeg)
    answer = post_sample(client, jpeg.read_bytes(), "3", "digit.jpg")
    assert answer.status_code == 200, answer.text
    with Image.open(collected / answer.json()["file"]) as as_png, Image.open(jpeg) as original:
        assert as_png.format == "PNG" and np.array_equal(np.asarray(as_png), np.asarray(original))
    after = client.get("/samples").json()
    assert after["counts"] == {**before["counts"], "3": before["counts"]["3"] + 2}
    assert after["limit_per_class"] == COLLECT_LIMIT
    assert not [path for path in collected.rglob(".*")]  # no temporary file left behind


def sample_form(label: str | None, *files: tuple[str, bytes]) -> dict:
    return {"files": [("file", file) for file in files], "data": {"label": label} if label is not None else {}}


GOOD = ("digit.png", generated_digit(1))
LABEL_ONLY = b'--b\r\nContent-Disposition: form-data; name="label"\r\n\r\n4\r\n--b--\r\n'
BAD_SAMPLES = {  # case: (status, words the detail must hold, the request)
    "no label": (400, "no label field", sample_form(None, GOOD)),
    "label out of range": (400, "label must be one digit 0-9, got '10'", sample_form("10", GOOD)),
    "label not a digit": (400, "got 'seven'", sample_form("seven", GOOD)),
    "negative label": (400, "got '-1'", sample_form("-1", GOOD)),
    "no image": (400, "no file in the upload", raw("multipart/form-data; boundary=b", LABEL_ONLY)),
    "two images": (400, "2 files in one sample", sample_form("4", GOOD, GOOD)),
    "not an image": (422, "notes.png: cannot read it as an image", sample_form("4", ("notes.png", b"hello"))),
    "blank image": (422, "blank.png: no ink", sample_form("4", ("blank.png", png_bytes(Image.new("L", (9, 9), 255))))),
    "bomb": (422, "bomb.png: above the limit", sample_form("4", ("bomb.png", bomb_png()))),
    "json body": (415, "'application/json' is not accepted here", {"json": {"image": "AAAA", "label": "4"}}),
    "raw image body": (415, "'image/png' is not accepted here", raw("image/png", GOOD[1])),
}


@pytest.mark.parametrize("case", list(BAD_SAMPLES))
def test_a_bad_sample_answers_a_4xx_naming_it_and_writes_nothing(client, collected, case):
    status, words, request = BAD_SAMPLES[case]
    before = stored_files(collected)
    answer = client.post("/samples", **request)
    assert answer.status_code == status, answer.text
    assert answer.headers["content-type"] == "application/json" and words in answer.json()["detail"]
    assert len(answer.text.splitlines()) == 1 and "Traceback" not in answer.text
    assert stored_files(collected) == before


def test_a_class_folder_at_its_cap_refuses_with_409_and_writes_nothing(client, collected):
    full = collected / "9"
    full.mkdir(parents=True, exist_ok=True)
    for i in range(COLLECT_LIMIT - len(list(full.glob("*.png")))):
        (full / f"earlier-{i}.png").write_bytes(generated_digit(i))
    before = stored_files(collected)
    answer = post_sample(client, generated_digit(9), "9")
    assert answer.status_code == 409, answer.text
    assert f"holds {COLLECT_LIMIT} digits, the cap (--collect_limit {COLLECT_LIMIT})" in answer.json()["detail"]
    assert stored_files(collected) == before
    assert client.get("/samples").json()["counts"]["9"] == COLLECT_LIMIT
    assert post_sample(client, generated_digit(8), "8").status_code == 200  # the other classes go on


def test_two_clients_storing_at_once_lose_nothing(server, collected):
    uploads = [generated_digit(seed) for seed in range(2 * 12)]

    def one_client(half: int) -> list[httpx.Response]:
        with httpx.Client(base_url=server.url, timeout=TIMEOUT) as session:
            return [post_sample(session, data, "5") for data in uploads[half::2]]

    with ThreadPoolExecutor(2) as pool:
        answers = [answer for batch in pool.map(one_client, range(2)) for answer in batch]
    assert all(answer.status_code == 200 for answer in answers), [a.text for a in answers if a.status_code != 200]
    files = {answer.json()["file"] for answer in answers}
    assert len(files) == len(uploads)  # a new name for each
    kept = sorted((collected / file).read_bytes() for file in files)
    assert kept == sorted(uploads)  # every upload, whole


@pytest.mark.usefixtures("model")
def test_the_pages_server_answers_samples_with_the_same_code(tmp_path):
    """`demo --collect_dir`: serve's /samples endpoints behind the page's own server, refusals and limits alike."""
    from lightning_digits.demo import ORT_WEB_DIR, serve_in_background

    if not (ORT_WEB_DIR / "ort.wasm.min.js").is_file():
        pytest.skip("web/node_modules missing: `make setup`")
    collected = tmp_path / "collected"
    demo, address = serve_in_background(str(MODEL.parent), str(collected))
    try:
        with httpx.Client(base_url=address, timeout=TIMEOUT) as session:
            assert post_sample(session, generated_digit(2), "12").status_code == 400
            head = (
                f"POST /samples HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary=b\r\n"
                f"Content-Length: {MAX_BODY_BYTES + 1}\r\n\r\n"
            ).encode()
            refused = raw_request(demo.server_address[1], head, b"--b")
            assert refused.startswith(b"HTTP/1.0 413") and b"connection: close" in refused.lower(), refused[:300]
            assert list(collected.iterdir()) == []
            stored = post_sample(session, generated_digit(2), "2")
            assert stored.status_code == 200 and (collected / stored.json()["file"]).read_bytes() == generated_digit(2)
            assert session.get("/samples").json()["counts"]["2"] == 1
    finally:
        demo.shutdown()
        demo.server_close()


@pytest.mark.usefixtures("model")
def test_the_pages_server_hands_out_the_model_in_its_folder_now(tmp_path):
    """`adapt` or `export` rewriting the page's model: a reloaded page gets the new file and its metadata."""
    import onnx

    from lightning_digits.demo import ORT_WEB_DIR, serve_in_background

    if not (ORT_WEB_DIR / "ort.wasm.min.js").is_file():
        pytest.skip("web/node_modules missing: `make setup`")
    shutil.copy(MODEL, tmp_path / "digits_cnn.onnx")
    demo, address = serve_in_background(str(tmp_path))
    try:
        with httpx.Client(base_url=address, timeout=TIMEOUT) as session:
            assert session.get("/model/metadata.json").json()["class_names"] == json.dumps([str(d) for d in range(10)])
            adapted = onnx.load(str(MODEL))
            onnx.helper.set_model_props(
                adapted, {"class_names": json.dumps([str(d) for d in range(10)]), "adapted_from": "digits_cnn.ckpt"}
            )
            atomic_model = tmp_path / "next.onnx"
            onnx.save(adapted, str(atomic_model))
            atomic_model.replace(tmp_path / "digits_cnn.onnx")
            assert session.get("/model/metadata.json").json()["adapted_from"] == "digits_cnn.ckpt"
            assert session.get("/model/digits_cnn.onnx").content == (tmp_path / "digits_cnn.onnx").read_bytes()
    finally:
        demo.shutdown()
        demo.server_close()


def test_ctrl_c_stops_cleanly_and_nothing_was_written(server):
    # Last of the tests on the module's server: it stops it.
    assert server.stop(signal.SIGINT, group=True, within=5) == 0, server.output()[-3000:]
    assert "lightning-digits serve: stopped" in server.output()
    assert list(server.cwd.iterdir()) == []  # nothing written into the working folder


def port_is_free(port: int) -> bool:
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


class Load:
    """Clients sending single-image uploads in a loop until stopped, each outcome recorded with its time, and
    each answer's model (its sha256) with its time."""

    def __init__(self, server: Server, digit: Path, clients: int) -> None:
        self.server, self.body = server, digit.read_bytes()
        self.outcomes: list[tuple[float, str]] = []  # (monotonic time, "200" or the error)
        self.models: list[tuple[float, str]] = []  # (monotonic time, sha256) of each 200
        self.running = threading.Event()
        self.running.set()
        self.pool = ThreadPoolExecutor(clients)
        self.futures = [self.pool.submit(self.client) for _ in range(clients)]

    def client(self) -> None:
        with httpx.Client(base_url=self.server.url, timeout=10) as session:
            while self.running.is_set():
                try:
                    answer = session.post("/predict", files={"file": ("d.png", self.body)})
                    outcome = str(answer.status_code)
                    if answer.status_code == 200:
                        self.models.append((time.monotonic(), answer.json()["model"]["sha256"]))
                except httpx.HTTPError as exc:
                    outcome = type(exc).__name__
                self.outcomes.append((time.monotonic(), outcome))

    def wait_for(self, count: int, within: float = 30) -> None:
        deadline = time.monotonic() + within
        while len(self.outcomes) < count and time.monotonic() < deadline:
            time.sleep(0.02)
        assert len(self.outcomes) >= count, f"only {len(self.outcomes)} answers in {within} s"

    def stop(self) -> None:
        self.running.clear()
        for future in self.futures:
            future.result(timeout=20)  # each request is bounded by the client's 10 s timeout
        self.pool.shutdown()


@pytest.mark.parametrize("how", ["SIGTERM to the main process", "Ctrl-C to the group"])
@pytest.mark.usefixtures("model")
def test_a_stop_under_load_ends_every_process_within_5_s_and_frees_the_port(tmp_path, digits, how):
    server = Server([*SERVE, f"--workers={WORKERS}"], tmp_path / "cwd")
    load = Load(server, digits[0], clients=16)
    try:
        load.wait_for(100)
        stopped_at = time.monotonic()
        if how.startswith("SIGTERM"):
            server.send(signal.SIGTERM)
        else:
            server.send(signal.SIGINT, group=True)
        server.wait_gone(within=5)
        took = time.monotonic() - stopped_at
    finally:
        load.stop()
        server.kill()
    assert server.process.returncode == 0, server.output()[-3000:]
    assert port_is_free(server.port)
    after = [outcome for at, outcome in load.outcomes if at > stopped_at]
    assert all(outcome != "500" for outcome in after), after  # answered, or refused by a closed connection
    assert took < 5


@pytest.mark.usefixtures("model")
def test_a_killed_worker_fails_its_requests_at_once_and_is_replaced(tmp_path, digits):
    server = Server([*SERVE, f"--workers={WORKERS}"], tmp_path / "cwd")
    load = Load(server, digits[0], clients=8)
    try:
        load.wait_for(100)
        victim = min(server.workers())
        killed_at = time.monotonic()
        os.kill(victim, signal.SIGKILL)
        load.wait_for(len(load.outcomes) + 200)  # the clients go on, through the other worker and the new one
        deadline = time.monotonic() + 20
        while len(server.workers() - {victim}) < WORKERS and time.monotonic() < deadline:
            time.sleep(0.1)
        replaced = server.workers()
    finally:
        load.stop()
        code = server.stop(signal.SIGTERM, group=False, within=5)
    errors = [(at - killed_at, outcome) for at, outcome in load.outcomes if outcome != "200"]
    assert all(0 <= after < 1.0 for after, _ in errors), errors  # failed fast: no request waited on the dead one
    assert all(outcome != "500" for _, outcome in errors), errors
    assert load.outcomes[-1][1] == "200"
    assert victim not in replaced and len(replaced) == WORKERS
    assert code == 0


def huge_png(side: int = 6300) -> bytes:
    """A real scan-sized PNG: 75 KB of file, 40 million pixels once decoded."""
    image = Image.new("L", (side, side), 255)
    image.paste(0, (side // 2 - side // 40, side // 6, side // 2 + side // 40, 5 * side // 6))  # a one
    return png_bytes(image)


def test_huge_images_are_refused_or_answered_in_bounded_time_beside_small_requests(server_of_one, digits):
    big = huge_png()
    small = digits[5].read_bytes()
    with httpx.Client(base_url=server_of_one.url, timeout=30) as session:
        started = time.monotonic()
        many = session.post("/predict", files=[("file", (f"{i}.png", big)) for i in range(MAX_IMAGES)])
        assert many.status_code == 413, many.text
        assert f"the limit is {MAX_REQUEST_PIXELS:,} per request" in many.json()["detail"]
        assert time.monotonic() - started < 2  # refused from the headers, nothing decoded

        latencies, done = [], threading.Event()

        def small_requests() -> None:
            with httpx.Client(base_url=server_of_one.url, timeout=30) as other:
                while not done.is_set():
                    began = time.monotonic()
                    assert other.post("/predict", files={"file": ("s.png", small)}).status_code == 200
                    latencies.append(time.monotonic() - began)

        with ThreadPoolExecutor(1) as pool:
            beside = pool.submit(small_requests)
            one = session.post("/predict", files={"file": ("big.png", big)})
            done.set()
            beside.result(timeout=30)
    assert one.status_code == 200 and one.json()["predictions"][0]["predicted"] == "1", one.text
    assert latencies and max(latencies) < 1.0, max(latencies)


@pytest.fixture
def server_of_one(tmp_path, model):
    """One worker: a large request and the small ones beside it share it."""
    running = Server([*SERVE, "--workers=1"], tmp_path / "cwd")
    yield running
    running.stop()


@pytest.mark.usefixtures("model")
def test_a_supervisor_killed_with_minus_9_takes_its_workers_with_it(tmp_path, digits):
    server = Server([*SERVE, f"--workers={WORKERS}"], tmp_path / "cwd")
    try:
        assert len(server.workers()) == WORKERS
        server.send(signal.SIGKILL)
        server.wait_gone(within=5)
    finally:
        server.kill()
    assert port_is_free(server.port)


@pytest.mark.usefixtures("model")
def test_another_host_the_machine_has_is_served(tmp_path, digits):
    server = Server([*SERVE, "--workers=1", "--host=localhost"], tmp_path / "cwd")
    try:
        assert_still_serving(httpx.Client(base_url=server.url, timeout=TIMEOUT), digits[6])
    finally:
        server.stop()


def one_line_refusal(*args: str) -> str:
    result = subprocess.run([*SERVE, *args], capture_output=True, text=True, timeout=60)
    assert result.returncode == 2, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and result.stdout == "", result.stderr
    return result.stderr


def test_missing_or_corrupt_model_is_one_line_and_exit_2_before_serving(tmp_path):
    corrupt = tmp_path / "corrupt.onnx"
    corrupt.write_bytes(b"not a model")
    for model, words in ((tmp_path / "missing.onnx", "does not exist"), (corrupt, "not a loadable ONNX model")):
        stderr = one_line_refusal(f"--model={model}", f"--port={free_port()}")
        assert stderr.startswith(f"lightning-digits: error: {model}") and words in stderr


@pytest.mark.usefixtures("model")
def test_an_address_in_use_or_a_host_that_does_not_resolve_is_one_line(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert f"cannot listen on 127.0.0.1:{port} (Address already in use)" in one_line_refusal(f"--port={port}")
    assert "--host no-such-host.invalid: not an address" in one_line_refusal("--host=no-such-host.invalid")
    assert "--workers must be at least 1, got -1" in one_line_refusal("--workers=-1")


def test_lightning_digits_serve_runs_the_server_without_torch_in_it(tmp_path, model_accuracy):
    server = Server([sys.executable, "-m", "lightning_digits", "serve", f"--model={MODEL}"], tmp_path / "cwd")
    try:
        assert f"test accuracy {model_accuracy:.4f}" in server.first_line
        assert_no_torch_loaded(server)
        one = Image.new("L", (40, 80), 255)
        one.paste(0, (16, 8, 24, 72))  # a vertical bar: a 1
        answer = httpx.post(
            f"{server.url}/predict", json={"image": base64.b64encode(png_bytes(one)).decode()}, timeout=30
        )
        assert answer.status_code == 200 and answer.json()["predictions"][0]["predicted"] == "1", answer.text
        with httpx.Client(base_url=server.url, timeout=TIMEOUT) as session:
            for off in (session.get("/samples"), post_sample(session, png_bytes(one), "1")):
                assert off.status_code == 404 and "collecting digits is off" in off.json()["detail"], off.text
    finally:
        code = server.stop(signal.SIGINT, group=True, within=5)
    assert code == 0, server.output()[-3000:]


def test_a_worker_that_cannot_load_its_model_says_so_in_one_line_and_exits_3(tmp_path):
    # A worker loads the bytes the supervisor checked, so this takes onnxruntime refusing in the worker what it
    # accepted in the supervisor (memory, say): the supervisor then stops the others and ends with one line
    # instead of starting it again and again.
    from dataclasses import asdict

    from lightning_digits.serving.app import Settings
    from lightning_digits.serving.guard import BodyRules
    from lightning_digits.serving.worker import MODEL_VARIABLE, SETTINGS_VARIABLE, SOCKET_VARIABLE, STARTUP_FAILURE

    settings = Settings(str(tmp_path / "model.onnx"), {}, {}, BodyRules(1, 1, 1.0), 1, 1, 1.0)
    with socket.socket() as listening, (tmp_path / "bytes").open("w+b") as model:
        model.write(b"not a model")
        model.flush()
        fds = [listening.fileno(), model.fileno()]
        env = {
            **os.environ,
            SETTINGS_VARIABLE: json.dumps(asdict(settings)),
            SOCKET_VARIABLE: str(fds[0]),
            MODEL_VARIABLE: str(fds[1]),
        }
        result = subprocess.run(
            [sys.executable, "-m", "lightning_digits.serving.worker"],
            env=env,
            pass_fds=fds,
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert result.returncode == STARTUP_FAILURE
    assert result.stderr.startswith(f"lightning-digits: error: {tmp_path / 'model.onnx'}: not a loadable ONNX model")
    assert len(result.stderr.strip().splitlines()) == 1


def tiny_onnx(path: Path, side: int, classes: int) -> Path:
    """A loadable ONNX file of another contract: image [N, 1, side, side] -> logits [N, classes]."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    weights = numpy_helper.from_array(np.zeros((side * side, classes), np.float32), "weights")
    graph = helper.make_graph(
        [helper.make_node("Flatten", ["image"], ["flat"]), helper.make_node("MatMul", ["flat", "weights"], ["logits"])],
        "other",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["N", 1, side, side])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", classes])],
        [weights],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, path)
    return path


@pytest.mark.parametrize("side, classes, words", [(32, 10, "Got invalid dimensions"), (28, 7, "gives [2, 7]")])
def test_a_model_of_another_contract_is_refused_in_one_line(tmp_path, side, classes, words):
    from lightning_digits.errors import UserError

    path = tiny_onnx(tmp_path / "other.onnx", side, classes)
    with pytest.raises(UserError) as refused:
        OnnxDigits(path)
    message = str(refused.value)
    assert message.startswith(f"{path}: not a model of this project's contract (image float32 [N, 1, 28, 28] -> ")
    assert words in message and "\n" not in message


def model_variant(source: Path, target: Path, **metadata: str) -> Path:
    """The model of `source` with metadata entries set: the same network, another file (another sha256)."""
    import onnx

    model = onnx.load(str(source))
    props = {prop.key: prop.value for prop in model.metadata_props} | metadata
    del model.metadata_props[:]
    onnx.helper.set_model_props(model, props)
    onnx.save(model, str(target))
    return target


def wait_for_line(server: Server, words: str, nth: int = 1, within: float = 30) -> str:
    """The `nth` line of the server's output that holds `words`, once there is one."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if len(lines := [line for line in server.output().splitlines() if words in line]) >= nth:
            return lines[nth - 1]
        time.sleep(0.05)
    raise AssertionError(f"no line with {words!r} within {within} s:\n{server.output()[-3000:]}")


@pytest.mark.usefixtures("model")
def test_sighup_reloads_the_model_under_load_without_a_failed_request_and_refuses_a_bad_file(tmp_path, digits):
    served = tmp_path / "digits_cnn.onnx"
    served.write_bytes(MODEL.read_bytes())
    old_sha = hashlib.sha256(MODEL.read_bytes()).hexdigest()
    new = model_variant(MODEL, tmp_path / "new.onnx", note="adapted to a hand")
    new_sha = hashlib.sha256(new.read_bytes()).hexdigest()
    server = Server([*SERVE[:-1], f"--model={served}", f"--workers={WORKERS}"], tmp_path / "cwd")
    first_workers = server.workers()
    load = Load(server, digits[0], clients=16)
    try:
        load.wait_for(200)
        os.replace(new, served)  # as `adapt` and `export` write: atomically
        asked = time.monotonic()
        server.send(signal.SIGHUP)
        line = wait_for_line(server, "reloaded")
        done = time.monotonic()
        time.sleep(max(0.0, done + 1.5 - time.monotonic()))  # answers after the old workers' last ones
        load.wait_for(len(load.outcomes) + 100)
    finally:
        load.stop()
    failed = [outcome for _, outcome in load.outcomes if outcome != "200"]
    first_new = min(at for at, sha in load.models if sha == new_sha) - asked
    print(
        f"\nreload under 16 clients: {len(load.outcomes)} requests, {len(failed)} failed; the new model answered "
        f"{first_new:.2f} s after SIGHUP; the reload took {done - asked:.2f} s"
    )
    try:
        assert failed == [], failed[:10]
        assert 0 < first_new < done - asked + 1  # no later than the reload's end and its second for those in flight
        assert {sha for at, sha in load.models if at > done + 1} == {new_sha}  # a second for those in flight
        reloaded = f"lightning-digits serve: reloaded {served} (sha256 {new_sha[:12]}); {WORKERS} worker(s) replaced"
        assert line == reloaded
        assert {sha for at, sha in load.models if at < asked} == {old_sha}
        deadline = time.monotonic() + 10  # the old workers finish what they have in flight, then end
        while (server.workers() & first_workers or len(server.workers()) != WORKERS) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not server.workers() & first_workers and len(server.workers()) == WORKERS, server.members()
        with httpx.Client(base_url=server.url, timeout=TIMEOUT) as session:
            info = session.get("/info").json()["model"]
            assert info["sha256"] == new_sha and info["onnx_metadata"]["note"] == "adapted to a hand"
            modified = datetime.fromtimestamp(served.stat().st_mtime, UTC).isoformat(timespec="seconds")
            assert info["modified"] == modified

            # Not a model, then a model of other classes: refused in one line each; the new model goes on serving,
            # and a worker that dies is replaced with the model checked, not with what the file holds now.
            other = model_variant(MODEL, tmp_path / "other.onnx", class_names=json.dumps(list("abcdefghij")))
            refusals = ((b"not a model", "not a loadable ONNX model"), (other.read_bytes(), "its classes"))
            for nth, (content, words) in enumerate(refusals, 1):
                served.write_bytes(content)
                server.send(signal.SIGHUP)
                refused = wait_for_line(server, f"reload refused, still serving sha256 {new_sha[:12]}: {served}", nth)
                assert words in refused, refused
                assert (
                    session.post("/predict", files={"file": ("d.png", digits[0].read_bytes())}).json()["model"][
                        "sha256"
                    ]
                    == new_sha
                )
            os.kill(min(server.workers()), signal.SIGKILL)
            wait_for_line(server, "starting another")
            for _ in range(20):  # over both workers
                assert upload(session, digits[0]).json()["model"]["sha256"] == new_sha
        assert server.output().count("reload refused") == 2 and "Traceback" not in server.output()
    finally:
        assert server.stop(signal.SIGTERM, group=False, within=10) == 0, server.output()[-3000:]
