"""What the user is told: the one exception type for mistakes a user can fix, the one way a command ends on
one (a line on stderr, exit code 2, no traceback), progress lines (`say`), and notices such as a skipped file,
which go through logging rather than `warnings` so that PYTHONWARNINGS=ignore cannot hide them. Imports
nothing but the standard library: every entry point, the torch-free ones too, uses it."""

import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

NOTICES = logging.getLogger("lightning_digits")


class UserError(Exception):
    """Bad input (files, images, config, paths). The message says what was wrong and how to fix it."""


def say(message: str) -> None:
    """A progress line of a command, on stderr (stdout stays for what a command outputs, e.g. CSV)."""
    print(message, file=sys.stderr, flush=True)


def check_ranges(prefix: str, checks: dict[str, tuple[object, bool, str]]) -> None:
    """The one style of range check, where settings enter: `checks` maps each option's name to (its value,
    whether it is in range, the range in words); the first one out of range ends as a UserError saying
    `PREFIXNAME must be RANGE, got VALUE` (prefix "model." for `--model.lr`, "--" for a top-level option)."""
    for name, (value, ok, expected) in checks.items():
        if not ok:
            raise UserError(f"{prefix}{name} must be {expected}, got {value!r}")


def require_onnx_file(path: Path | str, alternative: str = "") -> None:
    """A missing ONNX model as one line that says how to make one, before a loader calls it corrupt; `alternative`:
    another way out that the command offers (", or pass --model")."""
    if not Path(path).is_file():
        raise UserError(f"{path} does not exist; write one with `lightning-digits export` (or `evaluate`){alternative}")


def one_line(message: str) -> str:
    return " ".join(line.strip() for line in message.splitlines() if line.strip())


@contextmanager
def exit_on_user_error(
    prog: str,
    usage_errors: tuple[type[Exception], ...] = (),
    see: str | None = None,
    debug: bool = False,
) -> Iterator[None]:
    """Run an entry point's body: a UserError, or one of `usage_errors` (its parser's own, e.g. jsonargparse's
    ArgumentError), ends the program with `PROG: error: MESSAGE` as one line on stderr and exit code 2. A usage
    error also says where the options are listed (`see`, e.g. "lightning-digits serve --help"). With `debug`
    the exception goes through, traceback and all."""
    try:
        yield
    except (UserError, *usage_errors) as exc:
        if debug:
            raise
        message = one_line(str(exc))
        if see and not isinstance(exc, UserError):
            message += f"; see `{see}`"
        print(f"{prog}: error: {message}", file=sys.stderr)
        sys.exit(2)


class _Stderr(logging.Handler):
    def emit(self, record: logging.LogRecord) -> None:
        print(self.format(record), file=sys.stderr)  # whatever sys.stderr is now (pytest swaps it per test)


def show_notices_on_stderr() -> None:
    """Print the package's notices (INFO and up) on stderr as plain lines; for the command-line entry points."""
    if not any(isinstance(handler, _Stderr) for handler in NOTICES.handlers):
        NOTICES.addHandler(_Stderr())
        NOTICES.setLevel(logging.INFO)
        NOTICES.propagate = False
