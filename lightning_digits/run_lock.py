"""One writer per folder: the run that writes an artifacts folder holds an OS lock on it (fcntl.flock on
`.lightning-digits.lock` there), so a second run into the same folder stops before any work, with one line
naming the folder and the process that holds it. The kernel drops the lock when its holder ends, however it
ends (kill -9 included), so a folder is never left locked; the file itself stays (removing a lock file races
with the next run that opens it).

A command that only reads a folder (ensemble's members, export's checkpoint) refuses too while a live run
writes there, rather than waiting: a fit can take hours, and a refusal says at once what to do.

Under DDP only the launching process (global rank 0) locks: Lightning's launcher re-executes the command for
each other rank, and those see a rank in their environment. Locks last for one command (`command_scope`), so
commands run one after another in one process (tune's trials, tests) take and drop them in turn.
"""

from __future__ import annotations

import fcntl
import os
import socket
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

from lightning_digits.atomic import remove_leftovers
from lightning_digits.errors import UserError

LOCK_FILE = ".lightning-digits.lock"
# Set for every process of a multi-process run by Lightning's launcher, torchrun or SLURM; non-zero: not the writer.
RANK_VARIABLES = ("RANK", "LOCAL_RANK", "NODE_RANK", "GROUP_RANK", "SLURM_PROCID")
_scopes: list[ExitStack] = []
_held: set[Path] = set()


def is_launching_process() -> bool:
    return all(os.environ.get(name, "0") in ("", "0") for name in RANK_VARIABLES)


@contextmanager
def command_scope() -> Iterator[None]:
    """The locks that `hold` takes inside are released when this ends."""
    with ExitStack() as stack:
        _scopes.append(stack)
        try:
            yield
        finally:
            _scopes.remove(stack)


def _holder(lock: Path) -> str:
    """Who holds `lock`, from what it wrote there (it writes just after locking: a moment's wait for it)."""
    for _ in range(20):
        try:
            pid, host, command = lock.read_text(encoding="utf-8").split(maxsplit=2)
        except (OSError, ValueError):
            time.sleep(0.05)
            continue
        where = "" if host == socket.gethostname() else f" on {host}"
        return f"`{command.strip()}`, pid {pid}{where}"
    return "pid unknown"


def _refusal(folder: Path, lock: Path, option: str) -> UserError:
    return UserError(
        f"{folder} is in use by another lightning-digits run ({_holder(lock)}); wait for it to end, or choose "
        f"another {option}"
    )


def _open(lock: Path, option: str) -> int:
    try:
        return os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        raise UserError(f"cannot write to {lock.parent} ({exc.strerror}); choose another folder with {option}") from exc


def hold(folder: Path | str, command: str, option: str) -> None:
    """Lock `folder` for the rest of the current command_scope, or raise UserError naming the run that holds it.
    `command`: what this process is doing (shown to a second run); `option`: the flag that chose the folder."""
    folder = Path(folder).resolve()
    if not is_launching_process() or folder in _held:
        return
    if not _scopes:
        raise RuntimeError("run_lock.hold() outside a command_scope()")
    lock = folder / LOCK_FILE
    fd = _open(lock, option)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise _refusal(folder, lock, option) from None
    os.ftruncate(fd, 0)
    os.write(fd, f"{os.getpid()} {socket.gethostname()} {command}\n".encode())
    _held.add(folder)
    remove_leftovers(folder)  # of a writer killed here before: nobody else can be writing now

    def release() -> None:
        _held.discard(folder)
        os.close(fd)  # drops the lock

    _scopes[-1].callback(release)


def check_not_written(folder: Path | str, option: str) -> None:
    """Refuse to read `folder` while another run writes there (a test of the lock, which is not kept)."""
    folder = Path(folder).resolve()
    lock = folder / LOCK_FILE
    if folder in _held or not lock.is_file():
        return
    fd = os.open(lock, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        raise _refusal(folder, lock, option) from None
    finally:
        os.close(fd)
