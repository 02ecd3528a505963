"""The limits the server enforces, spelled once: the guard, the endpoint, /info, the OpenAPI page, the `serve`
flags and the README quote them. Plain values; knows nothing of HTTP or the model."""

MAX_BODY_BYTES = 16 * 1024 * 1024  # 16 MiB: a phone photo or 64 scans fit; anything larger answers 413
MAX_IMAGES = 64  # images in one request, uploads or base64 alike
# Decoded pixels of all the images of one request together (one image may hold data/images.py's MAX_PIXELS):
# a 48 MP phone photo, a few smaller ones, or 64 scans of 750,000 pixels. Large images are shrunk while they
# decode, so this bounds the work a request costs.
MAX_REQUEST_PIXELS = 50_000_000
# A request whose images hold more pixels than this is decoded on the worker's one thread for large requests,
# so that small requests on the same worker go on being answered meanwhile.
LARGE_REQUEST_PIXELS = 1_000_000
BODY_TIMEOUT_S = 10.0  # a client that has not sent its whole body by then answers 408 (--body_timeout)
ANSWER_TIMEOUT_S = 30.0  # a large request still waiting for that thread by then answers 504
GRACEFUL_TIMEOUT_S = 3.0  # on SIGTERM / Ctrl-C, requests in flight get this long to be answered (--graceful_timeout)
# Before that, a stopping worker answers the requests still coming on its open connections with "Connection: close"
# and waits this long at most for their clients to close them, so that none sends one more into a closing socket.
DRAIN_S = 1.0
FORM_TYPES = ("multipart/form-data", "application/json")  # plus any image/* type: the raw file as the body


def too_many_images(count: int) -> str:
    return f"{count} images in one request; the limit is {MAX_IMAGES}: split them over several requests"
