"""`lightning-digits demo`: serve the drawing page (web/) and the exported model on localhost.

The page runs the ONNX model in the browser with onnxruntime-web; this server only hands out files, plus
the model's metadata as JSON (onnxruntime-web cannot read ONNX metadata itself).
"""

from __future__ import annotations

import functools
import json
import mimetypes
import sys
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from lightning_digits import artifacts
from lightning_digits.errors import UserError

# In the package (a link to the repo's web/ in a checkout), so that a wheel serves the same files.
WEB_DIR = Path(__file__).resolve().parent / "web"
ORT_WEB_DIR = WEB_DIR / "node_modules" / "onnxruntime-web" / "dist"
mimetypes.add_type("text/javascript", ".mjs")
mimetypes.add_type("application/wasm", ".wasm")


class _Handler(SimpleHTTPRequestHandler):
    def __init__(self, *args, model: Path, metadata: bytes, **kwargs) -> None:
        self.model, self.metadata = model, metadata
        super().__init__(*args, directory=str(WEB_DIR), **kwargs)

    def do_GET(self) -> None:  # noqa: N802 - the http.server naming
        path = self.path.split("?", 1)[0]
        if path == "/model/metadata.json":
            self._send(self.metadata, "application/json")
        elif path == f"/model/{artifacts.ONNX_MODEL}":
            self._send(self.model.read_bytes(), "application/octet-stream")
        else:
            super().do_GET()

    def _send(self, body: bytes, content_type: str) -> None:
        self.send_response(200)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - the http.server signature
        pass  # a request log per file would drown the one line that matters: the address


def make_server(artifacts_dir: str, host: str = "127.0.0.1", port: int = 8000) -> ThreadingHTTPServer:
    model = Path(artifacts_dir) / artifacts.ONNX_MODEL
    if not model.is_file():
        raise UserError(f"{model} does not exist; run `lightning-digits export` (or `evaluate`) first")
    if not (ORT_WEB_DIR / "ort.wasm.min.js").is_file():
        raise UserError(
            f"the page's onnxruntime-web files are missing from {ORT_WEB_DIR}; in a checkout run `npm ci --prefix "
            "web` (or `make setup`); a wheel carries them only when it was built after that"
        )
    import onnx  # here, not above: `demo --help` needs none of it

    try:
        metadata = {p.key: p.value for p in onnx.load(str(model), load_external_data=False).metadata_props}
    except Exception as exc:  # onnx raises DecodeError and others for a corrupt file
        raise UserError(f"{model}: not a loadable ONNX model ({exc}); export it again") from exc
    handler = functools.partial(_Handler, model=model, metadata=json.dumps(metadata).encode())
    try:
        return ThreadingHTTPServer((host, port), handler)
    except OSError as exc:
        raise UserError(f"cannot listen on {host}:{port} ({exc.strerror}); choose another --port") from exc


def demo(artifacts_dir: str = artifacts.DEFAULT_DIR, host: str = "127.0.0.1", port: int = 8000) -> None:
    """Serve the draw-a-digit page and the exported ONNX model; open the printed address in a browser.

    Args:
        artifacts_dir: the folder holding digits_cnn.onnx.
        host: the address to listen on.
        port: the port to listen on (0 picks a free one).
    """
    server = make_server(artifacts_dir, host, port)
    address = f"http://{server.server_address[0]}:{server.server_address[1]}/"
    print(f"lightning-digits demo: open {address} (Ctrl-C stops)", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        print("stopped", file=sys.stderr)
    finally:
        server.server_close()


def serve_in_background(artifacts_dir: str) -> tuple[ThreadingHTTPServer, str]:
    """A server on a free port in a daemon thread, for tests and screenshots."""
    server = make_server(artifacts_dir, port=0)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}/"
