"""`lightning-digits demo`: serve the drawing page (web/) and the exported model on localhost.

The page runs the ONNX model in the browser with onnxruntime-web; this server only hands out files, plus
the model's metadata as JSON (onnxruntime-web cannot read ONNX metadata itself), and with --collect_dir it
stores the digits the user labels on the page: POST and GET /samples, answered by the very code of `serve`'s
(serving/collect.py), which runs here on the request's own thread.
"""

from __future__ import annotations

import asyncio
import functools
import json
import mimetypes
import sys
import threading
from collections.abc import Awaitable, Callable
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from starlette.requests import Request
from starlette.responses import Response

from lightning_digits import artifacts
from lightning_digits.atomic import ensure_writable_dir
from lightning_digits.data.images import MAX_PIXELS
from lightning_digits.errors import UserError, check_ranges, require_onnx_file
from lightning_digits.serving.collect import SAMPLES_PATH, Collect
from lightning_digits.serving.guard import BodyRules
from lightning_digits.serving.limits import BODY_TIMEOUT_S, MAX_BODY_BYTES, MAX_IMAGES, MAX_REQUEST_PIXELS
from lightning_digits.serving.samples import DEFAULT_LIMIT, Samples

# In the package (a link to the repo's web/ in a checkout), so that a wheel serves the same files.
WEB_DIR = Path(__file__).resolve().parent / "web"
ORT_WEB_DIR = WEB_DIR / "node_modules" / "onnxruntime-web" / "dist"
mimetypes.add_type("text/javascript", ".mjs")
mimetypes.add_type("application/wasm", ".wasm")


class _Handler(SimpleHTTPRequestHandler):
    def __init__(self, *args, model: Path, collect: Collect, **kwargs) -> None:
        self.model, self.collect = model, collect
        super().__init__(*args, directory=str(WEB_DIR), **kwargs)

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0]
        if path == "/model/metadata.json":
            # Read again for every page load, as the model is: a model that `adapt` or `export` rewrote in this
            # folder is the one a reloaded page runs and names.
            try:
                self._send(json.dumps(read_metadata(self.model)).encode(), "application/json")
            except UserError as exc:
                self.send_error(500, str(exc))
        elif path == f"/model/{artifacts.ONNX_MODEL}":
            self._send(self.model.read_bytes(), "application/octet-stream")
        elif path == SAMPLES_PATH:
            self._answer_with(self.collect.counts)
        else:
            super().do_GET()

    def do_POST(self) -> None:
        if self.path.split("?", 1)[0] == SAMPLES_PATH:
            self._answer_with(self.collect.store)
        else:
            self.send_error(404)

    def _answer_with(self, endpoint: Callable[[Request], Awaitable[Response]]) -> None:
        """Answer this request with one of `serve`'s Starlette endpoints: the request as ASGI sees it, whose
        body is read only when the endpoint asks (after its checks of the headers), and the answer written back."""
        length = int(self.headers.get("content-length") or 0)

        async def receive() -> dict:
            return {"type": "http.request", "body": self.rfile.read(length), "more_body": False}

        headers = [(name.lower().encode("latin-1"), value.encode("latin-1")) for name, value in self.headers.items()]
        scope = {"type": "http", "method": self.command, "path": self.path, "headers": headers}
        response = asyncio.run(endpoint(Request(scope, receive)))
        self.send_response(response.status_code)
        for name, value in response.raw_headers:
            self.send_header(name.decode("latin-1"), value.decode("latin-1"))  # "connection: close" is honoured
        self.end_headers()
        self.wfile.write(response.body)

    def _send(self, body: bytes, content_type: str) -> None:
        self.send_response(200)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass  # a request log per file would drown the one line that matters: the address


def read_metadata(model: Path) -> dict[str, str]:
    """The ONNX file's metadata (class names, accuracy, ...), which onnxruntime-web cannot read itself."""
    import onnx  # here, not above: `demo --help` needs none of it

    try:
        return {p.key: p.value for p in onnx.load(str(model), load_external_data=False).metadata_props}
    except Exception as exc:  # onnx raises DecodeError and others for a corrupt file
        raise UserError(f"{model}: not a loadable ONNX model ({exc}); export it again") from exc


def make_server(
    artifacts_dir: str,
    host: str = "127.0.0.1",
    port: int = 8000,
    collect_dir: str | None = None,
    collect_limit: int = DEFAULT_LIMIT,
) -> ThreadingHTTPServer:
    model = Path(artifacts_dir) / artifacts.ONNX_MODEL
    require_onnx_file(model)
    if not (ORT_WEB_DIR / "ort.wasm.min.js").is_file():
        raise UserError(
            f"the page's onnxruntime-web files are missing from {ORT_WEB_DIR}; in a checkout run `npm ci --prefix "
            "web` (or `make setup`); a wheel carries them only when it was built after that"
        )
    read_metadata(model)  # a corrupt file ends here, as one line
    check_ranges("--", {"collect_limit": (collect_limit, collect_limit >= 1, "at least 1")})
    if collect_dir is not None:
        ensure_writable_dir(collect_dir, "--collect_dir")
    samples = Samples(collect_dir, collect_limit) if collect_dir else None
    # The limits of `serve`'s defaults: the page's drawing is a few kilobytes.
    collect = Collect(samples, BodyRules(MAX_BODY_BYTES, MAX_IMAGES, BODY_TIMEOUT_S), MAX_PIXELS, MAX_REQUEST_PIXELS)
    handler = functools.partial(_Handler, model=model, collect=collect)
    try:
        return ThreadingHTTPServer((host, port), handler)
    except OSError as exc:
        raise UserError(f"cannot listen on {host}:{port} ({exc.strerror}); choose another --port") from exc


def demo(
    artifacts_dir: str = artifacts.DEFAULT_DIR,
    host: str = "127.0.0.1",
    port: int = 8000,
    collect_dir: str | None = None,
    collect_limit: int = DEFAULT_LIMIT,
) -> None:
    """Serve the draw-a-digit page and the exported ONNX model; open the printed address in a browser.

    Args:
        artifacts_dir: the folder holding digits_cnn.onnx.
        host: the address to listen on.
        port: the port to listen on (0 picks a free one).
        collect_dir: a folder where the page saves each drawing the user confirms or corrects, as a PNG file in
            DIR/<label>/, for `adapt DIR`; without it the page saves nothing.
        collect_limit: the most files a class folder of --collect_dir may hold.
    """
    server = make_server(artifacts_dir, host, port, collect_dir, collect_limit)
    address = f"http://{server.server_address[0]}:{server.server_address[1]}/"
    collecting = f"; drawings you label are saved in {collect_dir}/<label>/" if collect_dir else ""
    print(f"lightning-digits demo: open {address}{collecting} (Ctrl-C stops)", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        print("stopped", file=sys.stderr)
    finally:
        server.server_close()


def serve_in_background(artifacts_dir: str, collect_dir: str | None = None) -> tuple[ThreadingHTTPServer, str]:
    """A server on a free port in a daemon thread, for tests and screenshots."""
    server = make_server(artifacts_dir, port=0, collect_dir=collect_dir)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}/"
