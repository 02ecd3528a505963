"""`python -m lightning_digits.serving`: the `serve` command in a process that never imports torch. Knows
nothing of the training side."""

from __future__ import annotations

from jsonargparse import ArgumentError, auto_cli

from lightning_digits.errors import exit_on_user_error
from lightning_digits.serving.server import serve

PROG = "lightning-digits serve"


def main(argv: list[str] | None = None) -> None:
    with exit_on_user_error("lightning-digits", (ArgumentError,), see=f"{PROG} --help"):
        auto_cli(serve, args=argv, prog=PROG, exit_on_error=False)


if __name__ == "__main__":
    main()
