"""`python -m lightning_digits.serving`: the `serve` command in a process that never imports torch. Knows
nothing of the training side."""

from __future__ import annotations

import sys

from jsonargparse import ArgumentError, auto_cli

from lightning_digits.errors import UserError
from lightning_digits.serving.server import serve


def main(argv: list[str] | None = None) -> None:
    try:
        auto_cli(serve, args=argv, prog="lightning-digits serve", exit_on_error=False)
    except (UserError, ArgumentError) as exc:
        message = " ".join(line.strip() for line in str(exc).splitlines() if line.strip())
        if isinstance(exc, ArgumentError):
            message += "; see `lightning-digits serve --help`"
        print(f"lightning-digits: error: {message}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
