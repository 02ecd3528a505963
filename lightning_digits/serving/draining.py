"""How a worker of `serve` stops without failing a request: uvicorn's server, whose stop first drains. It
stops accepting (the listening socket stays open in the supervisor and in the worker that replaces this one,
which accepts what comes next), answers whatever still comes on its open connections with "Connection: close",
and waits until their clients have closed them (at most DRAIN_S); then uvicorn's graceful shutdown runs.

That shutdown alone closes idle keep-alive connections at once, and a client that had just sent its next
request on one gets no answer: requests failed so during a reload under load. Knows nothing of the app.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, MutableMapping
from types import FrameType
from typing import Any

import uvicorn

from lightning_digits.serving.limits import DRAIN_S

Message = MutableMapping[str, Any]
Send = Callable[[Message], Awaitable[None]]


class DrainingServer(uvicorn.Server):
    def __init__(self, app: Callable, **config: Any) -> None:
        self.drain_until: float | None = None
        super().__init__(uvicorn.Config(self._closing(app), **config))

    def _closing(self, app: Callable) -> Callable:
        """`app`, whose answers say "Connection: close" once the server drains."""

        async def closing_app(scope: Message, receive: Callable, send: Send) -> None:
            async def send_closing(message: Message) -> None:
                if self.drain_until is not None and message["type"] == "http.response.start":
                    message = {**message, "headers": [*message.get("headers", []), (b"connection", b"close")]}
                await send(message)

            await app(scope, receive, send_closing)

        return closing_app

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        if self.drain_until is None:  # the first stop signal drains; another one stops at once
            self.drain_until = time.monotonic() + DRAIN_S
        else:
            super().handle_exit(sig, frame)

    async def on_tick(self, counter: int) -> bool:
        if self.drain_until is not None and not self.should_exit:
            for server in self.servers:
                server.close()  # this process stops accepting; the socket stays open in the others
            self.should_exit = not self.server_state.connections or time.monotonic() > self.drain_until
        return await super().on_tick(counter)
