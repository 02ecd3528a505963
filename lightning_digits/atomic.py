"""Atomic file writes: write beside the target under a temporary name, flush it to the disk, then rename it
into place, so a crash, a kill or a full disk never leaves a half-written artifact under its final name (and
the previous version survives until the new one is whole). A write the disk refuses (full, quota, read-only)
ends as one UserError that names the file, the folder and the cause.

Every file the project writes itself goes through `atomic_path` (or `write_text`); checkpoints too, through
training.atomic_checkpoints.AtomicCheckpointIO."""

from __future__ import annotations

import errno
import os
import re
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from lightning_digits.errors import UserError

# What the disk said, and what the user can do about it.
_FULL = "free space or choose another {option}"
_LOCKED = "make it writable or choose another {option}"
DISK_FAULTS = {
    errno.ENOSPC: ("no space left", _FULL),
    errno.EDQUOT: ("disk quota exceeded", _FULL),
    # What a write past the process's file-size limit (`ulimit -f`) or the filesystem's largest file raises.
    errno.EFBIG: ("file size limit reached", _FULL),
    errno.EROFS: ("read-only filesystem", _LOCKED),
    errno.EACCES: ("permission denied", _LOCKED),
    errno.EPERM: ("operation not permitted", _LOCKED),
}
_OPTIONS: dict[Path, str] = {}  # folder -> the option the user chose it with (see ensure_writable_dir)


def option_for(folder: Path) -> str:
    """The option that chose `folder` (or a folder above it), for a message that says what to change."""
    folder = folder.resolve()
    for candidate in (folder, *folder.parents):
        if candidate in _OPTIONS:
            return _OPTIONS[candidate]
    return "folder"


def disk_fault(exc: OSError, target: Path | str | None = None, existed: bool = False) -> UserError | None:
    """The one-line error for a write the disk refused (None for any other OSError). `target`: the file that
    atomic_path was writing (None: a file someone else writes, named by the error itself); `existed`: whether
    a previous version of it is kept."""
    if exc.errno not in DISK_FAULTS:
        return None
    cause, fix = DISK_FAULTS[exc.errno]
    failed = Path(exc.filename) if exc.filename else None
    if target is not None and (failed is None or failed.parent == Path(target).parent):
        target = Path(target)
        kept = f"the previous {target.name} is intact" if existed else f"no {target.name} was written"
        return UserError(
            f"{cause} on {target.parent} while saving {target.name}; {kept}; "
            + fix.format(option=option_for(target.parent))
        )
    # A file Lightning writes itself (its CSV log), or a library's scratch file in the temp folder.
    if failed is None:
        return UserError(f"{cause} while writing a file ({exc.strerror}); {fix.format(option='folder')}")
    return UserError(
        f"{cause} on {failed.parent} while writing {failed.name}; {fix.format(option=option_for(failed.parent))}"
    )


def _fsync(path: Path, flags: int = os.O_RDONLY) -> None:
    fd = os.open(path, flags)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextmanager
def atomic_path(target: Path | str, overwrite: bool = True) -> Iterator[Path]:
    """Yield a temporary path in the target's folder; on success it replaces `target`, on error it vanishes.
    With `overwrite=False` it is linked in under the name instead, which raises FileExistsError (and writes
    nothing) when another writer got there first: for files that must never replace one another.

    In the target's own folder, not the system's temp folder: only a rename within one filesystem is atomic
    (a move across filesystems is a copy into the final name). Flushed to the disk before the rename, so a
    crash of the machine cannot leave an empty file under the final name either."""
    target = Path(target)
    existed = target.exists()
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=target.suffix)
        os.close(fd)
        tmp = Path(tmp_name)
        try:
            umask = os.umask(0)
            os.umask(umask)
            os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes it private; the artifact gets the usual permissions
            yield tmp
            _fsync(tmp)
            if overwrite:
                os.replace(tmp, target)
            else:
                os.link(tmp, target)
            _fsync(target.parent, os.O_RDONLY | os.O_DIRECTORY)  # the rename itself
        finally:
            tmp.unlink(missing_ok=True)
    except OSError as exc:
        if (error := disk_fault(exc, target, existed)) is None:
            raise
        raise error from exc


# atomic_path's temporary names: "." + the target's name + "." + mkstemp's 8 random characters + its suffix.
_TEMPORARY = re.compile(r"^\.(?P<name>.+)\.[a-z0-9_]{8}(?P<suffix>\.[^.]+)?$")


def remove_leftovers(folder: Path | str) -> list[str]:
    """Remove the temporary files that writers killed mid-write (kill -9, a crash) left in `folder`; the names
    removed. Only for a folder this process holds the run lock of: nobody else can be writing there."""
    removed = []
    for entry in os.scandir(folder):
        match = _TEMPORARY.match(entry.name)
        if match and entry.is_file() and Path(match["name"]).suffix == (match["suffix"] or ""):
            Path(entry.path).unlink(missing_ok=True)
            removed.append(entry.name)
    return removed


def write_text(target: Path | str, text: str) -> None:
    with atomic_path(target) as tmp:
        tmp.write_text(text, encoding="utf-8")


def ensure_writable_dir(folder: Path | str, option: str) -> None:
    """Create `folder` if needed and prove a file can be written in it, before any work starts. A later write
    there that the disk refuses names `option` in its error."""
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as exc:
        raise UserError(
            f"cannot write to {folder} ({exc.strerror or exc}); choose another folder with {option}"
        ) from exc
    _OPTIONS[folder.resolve()] = option
