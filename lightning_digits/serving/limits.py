"""The limits the server enforces, spelled once: the guard, the API, /info, the OpenAPI page and the README
quote them. Plain values; knows nothing of HTTP or the model."""

MAX_BODY_BYTES = 16 * 1024 * 1024  # 16 MiB: a phone photo or 64 scans fit; anything larger answers 413
MAX_IMAGES = 64  # images in one request, uploads or base64 alike
BODY_TIMEOUT_S = 10.0  # a client that has not sent its whole body by then answers 408 (--body_timeout)
ANSWER_TIMEOUT_S = 30.0  # a request with no answer by then (queue full, worker died) answers 504
MEDIA_TYPES = ("multipart/form-data", "application/json")


def too_many_images(count: int) -> str:
    return f"{count} images in one request; the limit is {MAX_IMAGES}: split them over several requests"
