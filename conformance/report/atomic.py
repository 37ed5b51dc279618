"""Writing a report file so that a reader never sees half of it, and checking beforehand that it can be.

The data goes to a temporary file in the destination's own directory (a rename is atomic only
within one file system), is flushed and fsync'ed, and then ``os.replace`` puts it in place: a
reader sees the old file or the new one, never a truncated one, and a failure at any step leaves
the old file as it was and no temporary file behind.
"""
from __future__ import annotations

import os
import stat
import tempfile
from pathlib import Path
from typing import Callable


class ReportPathError(ValueError):
    """A report cannot be written where the user asked (a usage error, found before the run starts)."""


_UMASK: int | None = None


def _new_file_mode() -> int:
    global _UMASK
    if _UMASK is None:
        _UMASK = os.umask(0o022)
        os.umask(_UMASK)
    return 0o666 & ~_UMASK


def destination(path: str | os.PathLike[str]) -> Path:
    """The file that writing ``path`` changes: a symbolic link is followed, so the link stays a link."""
    p = Path(path)
    return Path(os.path.realpath(p)) if p.is_symlink() else p


def _temp_prefix(target: Path) -> str:
    return f".{target.name[:40]}."


def atomic_write(path: str | os.PathLike[str], data: bytes, commit: Callable[[], bool] | None = None) -> bool:
    """Put ``data`` at ``path`` atomically. ``commit`` is asked just before the replace; when it answers
    False (a newer write has superseded this one) the temporary file is discarded. Returns whether
    the file was replaced.

    A path that exists and is not a regular file (``/dev/null``, a FIFO) is written in place: it
    cannot be replaced, and must not be (replacing ``/dev/null`` as root would be a disaster)."""
    target = destination(path)
    if target.exists() and not target.is_file():
        if commit is not None and not commit():
            return False
        with open(target, "wb") as special:
            special.write(data)
        return True
    try:
        mode = stat.S_IMODE(target.stat().st_mode)
    except FileNotFoundError:
        mode = _new_file_mode()
    fd, temp = tempfile.mkstemp(prefix=_temp_prefix(target), suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.chmod(temp, mode)
        if commit is not None and not commit():
            os.unlink(temp)
            return False
        os.replace(temp, target)
    except BaseException:
        try:
            os.unlink(temp)
        except OSError:
            pass
        raise
    return True


def sync_directory(path: str | os.PathLike[str]) -> None:
    """Make a completed replace durable (best effort: not every file system lets a directory be fsync'ed)."""
    try:
        fd = os.open(destination(path).parent, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def check_writable(path: str | os.PathLike[str] | None, what: str) -> None:
    """Raise :class:`ReportPathError` unless ``what`` (e.g. "the JSON report") can be written at ``path``.

    Probes by creating files, and removes them: nothing is left behind, and an existing report at
    ``path`` is not touched."""
    if path is None:
        return
    if str(path) == "":
        raise ReportPathError(f"cannot write {what}: the path is empty")
    given = Path(path)
    if given.is_dir():
        raise ReportPathError(f"cannot write {what} to {given}: it is a directory")
    target = destination(given)
    if target.exists() and not target.is_file():
        if not os.access(target, os.W_OK):
            raise ReportPathError(f"cannot write {what} to {given}: it is not writable")
        return
    parent = target.parent
    if not parent.exists():
        # Distinguish "no such directory" from "a component of the path is a regular file".
        blocker = next((p for p in reversed(parent.parents) if p.exists() and not p.is_dir()), None)
        if blocker is not None:
            raise ReportPathError(f"cannot write {what} to {given}: {blocker} is a file, not a directory")
        raise ReportPathError(f"cannot write {what} to {given}: directory {parent} does not exist")
    if not parent.is_dir():
        raise ReportPathError(f"cannot write {what} to {given}: {parent} is a file, not a directory")
    try:
        fd, temp = tempfile.mkstemp(prefix=_temp_prefix(target), suffix=".tmp", dir=parent)
    except OSError as exc:
        raise ReportPathError(f"cannot write {what} to {given}: cannot create files in {parent} "
                              f"({exc.strerror or exc})") from None
    os.close(fd)
    os.unlink(temp)
    if not target.exists():
        # The exact name too: it may be too long or otherwise refused by the file system.
        try:
            fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            return  # created meanwhile by someone else: it is there, we replace it later
        except OSError as exc:
            raise ReportPathError(f"cannot write {what} to {given}: {exc.strerror or exc}") from None
        os.close(fd)
        os.unlink(target)
