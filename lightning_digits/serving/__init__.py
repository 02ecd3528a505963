"""`lightning-digits serve`: the exported ONNX model behind an HTTP API.

The serving side of the project: it imports no torch and no Lightning and knows nothing of training; it only
ever sees an ONNX file with the project's input contract. Modules: `limits` (the numbers a client must
respect), `guard` (the front door: content type, size, time, syntax), `decode` (a body's images -> digits),
`app` (one worker's ASGI app: /predict and the documented routes), `collect` (POST and GET /samples, for
`serve` and `demo` alike) over `samples` (a person's labelled digits in DIR/<label>/), `openapi` (the
documented shapes), `worker` (one worker process under uvicorn) and `draining` (how it stops without failing a
request), `supervisor` (the listening sockets, the processes behind them, the reload on SIGHUP), `server` (the
`serve` command: checks, settings, start).
"""
