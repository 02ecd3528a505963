"""`lightning-digits serve`: the exported ONNX model behind an HTTP API on LitServe.

The serving side of the project: it imports no torch and no Lightning and knows nothing of training; it only
ever sees an ONNX file with the project's input contract. Modules: `limits` (the numbers a client must respect),
`guard` (the front door: content type, size, time, syntax), `api` (the LitAPI: decode, predict, encode),
`openapi` (the documented shapes), `server` (building and running the LitServer; the `serve` command).
"""
