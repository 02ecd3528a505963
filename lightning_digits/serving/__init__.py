"""`lightning-digits serve`: the exported ONNX model behind an HTTP API.

The serving side of the project: it imports no torch and no Lightning and knows nothing of training; it only
ever sees an ONNX file with the project's input contract. Modules: `limits` (the numbers a client must
respect), `guard` (the front door: content type, size, time, syntax), `decode` (a body's images -> digits),
`app` (one worker's ASGI app: /predict and the documented routes), `openapi` (the documented shapes),
`worker` (one worker process under uvicorn), `supervisor` (the listening sockets and the processes behind
them), `server` (the `serve` command: checks, settings, start).
"""
