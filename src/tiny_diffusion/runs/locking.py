"""One training process per run directory: an operating-system lock on ``.NAME.lock`` beside it.

The lock is ``fcntl.flock`` (``msvcrt.locking`` where there is no fcntl, on Windows): the operating system releases
it when the process ends in any way, ``kill -9`` included, so a crash never leaves a run locked. The file itself is
removed when the holder is done; after a crash it stays behind, empty and harmless, and the next trainer takes it.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from ..errors import UsageError

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None
    import msvcrt

__all__ = ["lock_path", "run_lock"]


def lock_path(run_dir: Path) -> Path:
    """``runs/.base.lock`` for ``runs/base``."""
    return run_dir.parent / f".{run_dir.name}.lock"


def _try_lock(fd: int) -> bool:
    try:
        if fcntl is not None:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        else:  # pragma: no cover
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
    except OSError:
        return False
    return True


def _holder(fd: int) -> str:
    """ " (pid N)" as the holder wrote it, or nothing where it cannot be read."""
    try:
        pid = os.pread(fd, 32, 0).decode().strip() if hasattr(os, "pread") else ""
    except (OSError, UnicodeDecodeError):
        return ""
    return f" (pid {pid})" if pid.isdecimal() else ""


@contextmanager
def run_lock(run_dir: Path) -> Iterator[None]:
    """Hold the lock of ``run_dir`` for the block; refuse with one line when another process holds it."""
    path = lock_path(run_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
        if not _try_lock(fd):
            holder = _holder(fd)
            os.close(fd)
            raise UsageError(
                f"another training process{holder} is writing {run_dir}; wait for it to finish or "
                f"stop it (its lock: {path})"
            )
        try:  # a holder that finished removes the file: then lock the file now at the path, not the removed one
            current = os.path.samestat(os.fstat(fd), os.stat(path))
        except FileNotFoundError:
            current = False
        if current:
            break
        os.close(fd)
    try:
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        yield
    finally:
        try:
            path.unlink(missing_ok=True)  # while holding it: a newcomer then either fails or makes a new file
        except OSError:  # pragma: no cover - Windows cannot remove an open file
            pass
        os.close(fd)  # releases the lock
