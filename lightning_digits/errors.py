"""What the user is told: the one exception type for mistakes a user can fix (the CLI prints it as one line,
without a traceback), and notices such as a skipped file, which go through logging rather than `warnings`
so that PYTHONWARNINGS=ignore cannot hide them."""

import logging
import sys

NOTICES = logging.getLogger("lightning_digits")


class UserError(Exception):
    """Bad input (files, images, config, paths). The message says what was wrong and how to fix it."""


class _Stderr(logging.Handler):
    def emit(self, record: logging.LogRecord) -> None:
        print(self.format(record), file=sys.stderr)  # whatever sys.stderr is now (pytest swaps it per test)


def show_notices_on_stderr() -> None:
    """Print the package's notices (INFO and up) on stderr as plain lines; for the command-line entry points."""
    if not any(isinstance(handler, _Stderr) for handler in NOTICES.handlers):
        NOTICES.addHandler(_Stderr())
        NOTICES.setLevel(logging.INFO)
        NOTICES.propagate = False
