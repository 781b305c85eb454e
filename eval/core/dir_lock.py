"""An exclusive lock on a directory, held by one process at a time, that never outlives it.

The lock is an operating-system lock on a small file in the directory (``flock`` on POSIX,
``msvcrt.locking`` on Windows), not the file's existence: the kernel releases it when the
process exits in any way, ``kill -9`` and a crash included, so there is never a stale lock to
remove by hand. The file holds the owner's pid, for the message a second process gets.
Local file systems only: some network file systems do not enforce these locks.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Optional

__all__ = ["DirectoryLock", "LockHeld"]


class LockHeld(OSError):
    """Another process holds the lock.

    Args:
        path (Path): the lock file.
        pid (Optional[int]): the owner's pid, when it could be read.
    """

    def __init__(self, path: Path, pid: Optional[int]) -> None:
        super().__init__(f"{path} is locked by {'pid ' + str(pid) if pid else 'another process'}")
        self.path = path
        self.pid = pid


class DirectoryLock:
    """An exclusive, non-blocking lock on ``directory / name``; a context manager.

    Args:
        directory (Path): an existing directory.
        name (str): the lock file's name in it.
    """

    def __init__(self, directory: Path, name: str = ".lock") -> None:
        self.path = Path(directory) / name
        self._fd: Optional[int] = None

    def acquire(self) -> DirectoryLock:
        """Take the lock, or fail at once.

        Returns:
            DirectoryLock: self.

        Raises:
            LockHeld: if another process holds it (with its pid).
            OSError: if the lock file cannot be created.
        """
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            _lock(fd)
        except OSError:
            pid = _read_pid(fd)
            os.close(fd)
            raise LockHeld(self.path, pid) from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._fd = fd
        return self

    def release(self) -> None:
        """Give the lock up (closing the file releases it)."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> DirectoryLock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()


def _lock(fd: int) -> None:
    try:
        import fcntl
    except ImportError:  # Windows
        import msvcrt

        msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
    else:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)


def _read_pid(fd: int) -> Optional[int]:
    try:
        os.lseek(fd, 0, os.SEEK_SET)
        return int(os.read(fd, 32).decode().strip())
    except (OSError, ValueError):
        return None
