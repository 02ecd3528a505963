"""HTTP serving, side by side in one run: `lightning-digits serve` as it ships (its default workers, one per
core) and a minimal plain FastAPI endpoint in one uvicorn process around the same onnxruntime session and
preprocessing. (LitServe, which served earlier versions, was measured beside them on 2026-11-30; its figures are
in docs/benchmarks.md.)

    .venv/bin/python bench/serve.py [--model artifacts_digits/digits_cnn.onnx] [--seconds 4] [--only NAME ...]
        [--concurrency 1 8 32 128] [--stage-repeats 2000]

Each server runs in its own process group on 127.0.0.1. The load is single-image uploads of real MNIST test
digits, as multipart and as a raw image/png body, from closed-loop keep-alive clients at concurrency 1, 8, 32
and 128, for a fixed time each. Prints requests/s, p50 and p99 latency, errors, the CPU milliseconds each
process spent per request (the profile: who uses the cores), the time from launch to a healthy /health, and
the time a SIGTERM to the main process under load (16 clients) takes to end every process; then one JSON
line. The load generator is a bare asyncio HTTP/1.1 client in this process, and it shares the machine's
cores with the server: on a small machine its share is part of the result.
"""

import argparse
import asyncio
import io
import json
import os
import signal
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from fastapi import FastAPI, UploadFile
from harness import ProcessGroup, free_port  # bench/harness.py: how this project starts and stops a server
from PIL import Image

from lightning_digits.artifacts import DEFAULT_DIR, ONNX_MODEL
from lightning_digits.data.images import read_digit
from lightning_digits.data.sources import load_split
from lightning_digits.onnx_predictor import OnnxDigits

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


def group_cpu_seconds(server: ProcessGroup) -> dict[str, float]:
    """utime + stime of every live process of the server's group, by role."""
    tick = os.sysconf("SC_CLK_TCK")
    seconds: dict[str, float] = {}
    for pid, cmdline in server.members().items():
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):  # it ended since
            continue
        if "resource_tracker" in cmdline:
            continue
        role = "main" if pid == server.pgid else f"worker {pid}"
        seconds[role] = seconds.get(role, 0.0) + (int(fields[11]) + int(fields[12])) / tick
    return seconds


def multipart(png: bytes) -> bytes:
    body = (
        (
            f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="file"; filename="digit.png"\r\n'
            f"Content-Type: image/png\r\n\r\n"
        ).encode()
        + png
        + f"\r\n--{BOUNDARY}--\r\n".encode()
    )
    return request(f"multipart/form-data; boundary={BOUNDARY}", body)


def request(content_type: str, body: bytes) -> bytes:
    head = (
        f"POST /predict HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: {content_type}\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


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
    except (OSError, asyncio.IncompleteReadError) as exc:
        errors.append(f"connection: {exc!r}")
    finally:
        writer.close()


async def load(port: int, requests: list[bytes], concurrency: int, seconds: float) -> dict:
    latencies: list[float] = []
    errors: list[str] = []
    await asyncio.gather(*(client(port, requests, time.perf_counter() + 0.5, [], []) for _ in range(concurrency)))
    started = time.perf_counter()
    await asyncio.gather(*(client(port, requests, started + seconds, latencies, errors) for _ in range(concurrency)))
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


async def stop_under_load(server: ProcessGroup, port: int, requests: list[bytes]) -> float:
    """Seconds from SIGTERM to the main process, with 16 clients sending, until no process of the group is left."""
    clients = asyncio.gather(
        *(client(port, requests, time.perf_counter() + 30, [], []) for _ in range(16)), return_exceptions=True
    )
    await asyncio.sleep(1.0)
    stopped = time.perf_counter()
    server.send(signal.SIGTERM)
    while server.process.poll() is None or server.members():
        if time.perf_counter() - stopped > 40:
            break
        await asyncio.sleep(0.02)
    took = time.perf_counter() - stopped
    clients.cancel()
    return took


def cpu_ms(work, repeats: int) -> float:
    """CPU milliseconds of one call of `work(i)`, this process only (the profile of one request's stages)."""
    work(0)
    started = time.process_time()
    for i in range(repeats):
        work(i)
    return round((time.process_time() - started) / repeats * 1000, 3)


def stage_costs(model: str, pngs: list[bytes], bodies: dict[str, list[bytes]], repeats: int) -> dict[str, float]:
    """Where a worker's CPU goes for one single-image request, stage by stage, in this process: the app as a
    whole (no HTTP), parsing the multipart body, decoding and preprocessing the PNG, the model at batch 1 and
    per image at batch 32 (what batching could save), and writing the answer."""
    from starlette.datastructures import Headers

    from lightning_digits.serving.app import Settings, build_app
    from lightning_digits.serving.decode import named_images
    from lightning_digits.serving.guard import BodyRules

    settings = Settings(model, {}, {}, BodyRules(1 << 24, 64, 10.0), 40_000_000, 50_000_000, 3.0)
    app = build_app(settings, Path(model).read_bytes())
    predict = app.routes[0].endpoint.__self__
    images = np.stack([read_digit(png, "digit") for png in pngs])

    def whole(kind: str):
        split = [request.split(b"\r\n\r\n", 1) for request in bodies[kind]]
        parsed = [
            ([tuple(part.strip().lower() for part in line.split(b":", 1)) for line in head.split(b"\r\n")[1:]], body)
            for head, body in split
        ]

        async def one(i: int) -> None:
            headers, body = parsed[i % len(parsed)]
            scope = {
                "type": "http",
                "method": "POST",
                "path": "/predict",
                "headers": headers,
                "query_string": b"",
                "root_path": "",
                "scheme": "http",
                "server": ("127.0.0.1", 80),
                "http_version": "1.1",
            }
            sent = []

            async def receive() -> dict:
                return {"type": "http.request", "body": body, "more_body": False}

            async def send(message: dict) -> None:
                sent.append(message)

            await app(scope, receive, send)
            assert sent[0]["status"] == 200, sent

        loop = asyncio.new_event_loop()
        return lambda i: loop.run_until_complete(one(i))

    headers = Headers({"content-type": f"multipart/form-data; boundary={BOUNDARY}"})
    uploads = [request.split(b"\r\n\r\n", 1)[1] for request in bodies["multipart"]]
    loop = asyncio.new_event_loop()

    def parse(i: int) -> None:
        loop.run_until_complete(named_images("multipart/form-data", headers, uploads[i % 100]))

    probabilities = predict.model.probabilities(images[:1])
    return {
        "app, multipart body": cpu_ms(whole("multipart"), repeats),
        "app, raw image/png body": cpu_ms(whole("raw"), repeats),
        "multipart parsing": cpu_ms(parse, repeats),
        "PNG decode + MNIST preprocessing": cpu_ms(lambda i: read_digit(pngs[i % 100], "digit"), repeats),
        "model, batch 1": cpu_ms(lambda i: predict.model.probabilities(images[i % 100 : i % 100 + 1]), repeats),
        "model, per image at batch 32": round(
            cpu_ms(lambda i: predict.model.probabilities(images[:32]), max(1, repeats // 10)) / 32, 3
        ),
        "answer JSON": cpu_ms(lambda i: predict.answer(["digit.png"], probabilities), repeats),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default=f"{DEFAULT_DIR}/{ONNX_MODEL}")
    parser.add_argument("--seconds", type=float, default=4.0, help="measured time per server, body and concurrency")
    parser.add_argument("--only", nargs="*", help="names of the servers to run (default: all)")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 8, 32, 128], help="clients per cell")
    parser.add_argument("--stage-repeats", type=int, default=2000, help="calls that time each in-process stage")
    parser.add_argument("--plain-app", action="store_true", help=argparse.SUPPRESS)  # the baseline's own process
    parser.add_argument("--port", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.plain_app:
        import uvicorn

        uvicorn.run(plain_app(args.model), host="127.0.0.1", port=args.port, log_level="warning")
        return

    model = str(Path(args.model).resolve())
    pngs = []
    for digit in load_split("mnist", None, "test")[0][:100]:
        buffer = io.BytesIO()
        Image.fromarray(digit).save(buffer, format="PNG")
        pngs.append(buffer.getvalue())
    bodies = {"multipart": [multipart(png) for png in pngs], "raw": [request("image/png", png) for png in pngs]}

    stages = stage_costs(model, pngs, bodies, args.stage_repeats)
    print(f"CPU ms per request, in-process stages: {json.dumps(stages)}", flush=True)
    scratch = Path(tempfile.mkdtemp(prefix="bench_serve_"))
    servers = {  # name: (command, the bodies it takes)
        "serve (default)": (
            [sys.executable, "-m", "lightning_digits.serving", f"--model={model}"],
            ("multipart", "raw"),
        ),
        "plain fastapi+uvicorn, 1 process": (
            [sys.executable, __file__, "--plain-app", f"--model={model}"],
            ("multipart",),
        ),
    }
    rows, profiles, lifecycle = [], {}, {}
    for name, (command, kinds) in servers.items():
        if args.only and name not in args.only:
            continue
        port = free_port()
        server = ProcessGroup([*command, f"--port={port}"], scratch / f"{port}.log", cwd=scratch)
        try:
            started = server.wait_healthy(f"http://127.0.0.1:{port}/health")
            before = group_cpu_seconds(server)
            served = 0
            for kind in kinds:
                for concurrency in args.concurrency:
                    row = {
                        "server": name,
                        "body": kind,
                        **asyncio.run(load(port, bodies[kind], concurrency, args.seconds)),
                    }
                    rows.append(row)
                    served += row["requests"]
                    print(json.dumps(row), flush=True)
            after = group_cpu_seconds(server)
            profiles[name] = {role: round(1000 * (after[role] - before.get(role, 0.0)) / served, 3) for role in after}
            print(f"  CPU ms per request, by process: {profiles[name]}", flush=True)
            stop = asyncio.run(stop_under_load(server, port, bodies["multipart"]))
            lifecycle[name] = {
                "healthy_after_s": round(started, 2),
                "sigterm_to_all_gone_s": round(stop, 2),
                "left_running": len(server.members()),
            }
            print(f"  {lifecycle[name]}", flush=True)
        finally:
            server.kill()

    print(f"\n{os.cpu_count()} cores; {args.seconds:g} s per cell; single-image PNG uploads\n")
    print("| server | body | concurrency | req/s | p50 ms | p99 ms | errors |")
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: |")
    for r in rows:
        cells = (
            r["server"],
            r["body"],
            r["concurrency"],
            f"{r['req_per_s']:,.0f}",
            r["p50_ms"],
            r["p99_ms"],
            r["errors"],
        )
        print("| " + " | ".join(str(cell) for cell in cells) + " |")
    print(
        json.dumps({"rows": rows, "cpu_ms_per_request": profiles, "stages_cpu_ms": stages, "start_and_stop": lifecycle})
    )


if __name__ == "__main__":
    main()
