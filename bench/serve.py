"""HTTP serving: `lightning-digits serve` (LitServe) with batching on and off, beside a minimal plain FastAPI +
uvicorn endpoint around the same onnxruntime session and the same preprocessing, in one run.

    .venv/bin/python bench/serve.py [--model artifacts_digits/digits_cnn.onnx] [--seconds 4]

Each server runs in its own process group on 127.0.0.1; the load is single-image PNG uploads (real MNIST test
digits) from closed-loop clients at concurrency 1, 8 and 32, for a fixed time each. Prints requests/s, p50 and
p99 latency, errors, and the CPU seconds each process spent (the profile: who uses the cores), then one JSON
line. The load generator is a bare asyncio HTTP/1.1 keep-alive client (a few lines, to take as little CPU as
possible), and it shares the machine's cores with the server: on a small machine its share is part of the
result.
"""

import argparse
import asyncio
import io
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
from fastapi import FastAPI, UploadFile
from PIL import Image

from lightning_digits.artifacts import DEFAULT_DIR, ONNX_MODEL
from lightning_digits.data.idx import read_idx
from lightning_digits.data.images import read_digit
from lightning_digits.onnx_predictor import OnnxDigits

REPO = Path(__file__).resolve().parent.parent
DATA = Path(os.environ.get("LIGHTNING_DIGITS_DATA", REPO.parent / "shared" / "data" / "mnist"))
CONCURRENCY = (1, 8, 32)
BOUNDARY = "benchboundary7f3a"


def plain_app(model: str) -> FastAPI:
    """The baseline: one uvicorn process, one onnxruntime session, preprocessing and the model inline."""
    session = OnnxDigits(model, threads=1)
    app = FastAPI()

    @app.post("/predict")
    async def predict(file: UploadFile) -> dict:
        row = session.probabilities(read_digit(await file.read(), file.filename or "file")[None])[0]
        classes = session.class_names
        return {
            "predictions": [
                {
                    "name": file.filename,
                    "predicted": classes[int(row.argmax())],
                    "confidence": float(row.max()),
                    "probabilities": dict(zip(classes, row.tolist(), strict=True)),
                }
            ]
        }

    @app.get("/health")
    async def health() -> str:
        return "ok"

    return app


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start(command: list[str], port: int, log: Path) -> subprocess.Popen:
    process = subprocess.Popen(command, stdout=log.open("w"), stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1) as answer:
                if answer.status == 200:
                    return process
        except OSError:
            time.sleep(0.2)
    stop(process)
    raise SystemExit(f"server did not become healthy within 60 s: {log.read_text()[-2000:]}")


def stop(process: subprocess.Popen) -> None:
    os.killpg(process.pid, signal.SIGINT)
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def group_cpu_seconds(pgid: int) -> dict[str, float]:
    """utime + stime of every live process in the group, by a short role name."""
    tick = os.sysconf("SC_CLK_TCK")
    seconds: dict[str, float] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        if int(fields[2]) != pgid:  # field 5 of /proc/PID/stat: the process group
            continue
        role = (
            "worker (spawned)"
            if "spawn_main" in cmdline
            else ("main" if entry.name == str(pgid) else f"forked {entry.name}")
        )
        if "resource_tracker" in cmdline:
            continue
        seconds[role] = seconds.get(role, 0.0) + (int(fields[11]) + int(fields[12])) / tick
    return seconds


def upload(png: bytes) -> bytes:
    body = (
        (
            f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="file"; filename="digit.png"\r\n'
            f"Content-Type: image/png\r\n\r\n"
        ).encode()
        + png
        + f"\r\n--{BOUNDARY}--\r\n".encode()
    )
    head = (
        f"POST /predict HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: multipart/form-data; boundary={BOUNDARY}\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode()
    return head + body


async def client(port: int, requests: list[bytes], deadline: float, latencies: list[float], errors: list[str]) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    i = 0
    try:
        while time.perf_counter() < deadline:
            started = time.perf_counter()
            writer.write(requests[i % len(requests)])
            i += 1
            head = await reader.readuntil(b"\r\n\r\n")
            length = next(
                int(line.split(b":", 1)[1])
                for line in head.split(b"\r\n")
                if line.lower().startswith(b"content-length")
            )
            body = await reader.readexactly(length)
            latencies.append(time.perf_counter() - started)
            if not head.startswith(b"HTTP/1.1 200") or b'"predicted"' not in body:
                errors.append(head.split(b"\r\n", 1)[0].decode() + " " + body[:200].decode(errors="replace"))
    finally:
        writer.close()


async def load(port: int, requests: list[bytes], concurrency: int, seconds: float) -> dict:
    latencies: list[float] = []
    errors: list[str] = []
    await asyncio.gather(*(client(port, requests, time.perf_counter() + 0.5, [], []) for _ in range(concurrency)))
    started = time.perf_counter()
    deadline = started + seconds
    await asyncio.gather(*(client(port, requests, deadline, latencies, errors) for _ in range(concurrency)))
    elapsed = time.perf_counter() - started
    ms = np.array(latencies) * 1000
    return {
        "concurrency": concurrency,
        "requests": len(latencies),
        "req_per_s": round(len(latencies) / elapsed, 1),
        "p50_ms": round(float(np.percentile(ms, 50)), 2),
        "p99_ms": round(float(np.percentile(ms, 99)), 2),
        "errors": len(errors),
        "first_error": errors[0] if errors else None,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default=f"{DEFAULT_DIR}/{ONNX_MODEL}")
    parser.add_argument("--seconds", type=float, default=4.0, help="measured time per server and concurrency")
    parser.add_argument("--only", nargs="*", help="names of the servers to run (default: all)")
    parser.add_argument("--plain-app", action="store_true", help=argparse.SUPPRESS)  # the baseline's own process
    parser.add_argument("--port", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.plain_app:
        import uvicorn

        uvicorn.run(plain_app(args.model), host="127.0.0.1", port=args.port, log_level="warning")
        return

    digits = read_idx(DATA / "t10k-images-idx3-ubyte.gz", 3)[:100]
    pngs = []
    for digit in digits:
        buffer = io.BytesIO()
        Image.fromarray(digit).save(buffer, format="PNG")
        pngs.append(upload(buffer.getvalue()))

    serve = [sys.executable, "-m", "lightning_digits.serving", f"--model={args.model}"]
    servers = {
        "litserve batch 64 / 5 ms": serve + ["--max_batch_size=64", "--batch_timeout=0.005"],
        "litserve no batching": serve + ["--max_batch_size=1"],
        "litserve batch 64 / 5 ms, 2 workers": serve + ["--max_batch_size=64", "--batch_timeout=0.005", "--workers=2"],
        "plain fastapi+uvicorn": [sys.executable, __file__, "--plain-app", f"--model={args.model}"],
    }
    rows, profiles = [], {}
    logs = Path(os.environ.get("TMPDIR", "/tmp"))
    for name, command in servers.items():
        if args.only and name not in args.only:
            continue
        port = free_port()
        process = start([*command, f"--port={port}"], port, logs / f"bench_serve_{port}.log")
        try:
            before = group_cpu_seconds(process.pid)
            client_before = time.process_time()
            for concurrency in CONCURRENCY:
                row = {"server": name, **asyncio.run(load(port, pngs, concurrency, args.seconds))}
                rows.append(row)
                print(json.dumps(row), flush=True)
            after = group_cpu_seconds(process.pid)
            profiles[name] = {
                "load generator": round(time.process_time() - client_before, 1),
                **{role: round(after[role] - before.get(role, 0.0), 1) for role in after},
            }
            print(f"  CPU seconds over the three runs: {profiles[name]}", flush=True)
        finally:
            stop(process)

    print(f"\n{os.cpu_count()} cores; {args.seconds:g} s per cell; single-image PNG uploads\n")
    print("| server | concurrency | req/s | p50 ms | p99 ms | errors |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    for r in rows:
        cells = (r["server"], r["concurrency"], f"{r['req_per_s']:,.0f}", r["p50_ms"], r["p99_ms"], r["errors"])
        print("| " + " | ".join(str(cell) for cell in cells) + " |")
    print(json.dumps({"rows": rows, "cpu_seconds": profiles}))


if __name__ == "__main__":
    main()
