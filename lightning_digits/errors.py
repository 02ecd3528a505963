"""The one exception type for mistakes a user can fix; the CLI prints it as one line, without a traceback."""


class UserError(Exception):
    """Bad input (files, images, config, paths). The message says what was wrong and how to fix it."""
