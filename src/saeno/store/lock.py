"""One writer per store: an advisory ``flock`` on ``<store>/.saeno-writer.lock`` (local stores).

The lock is held by an open file descriptor, so the kernel releases it when the writing process dies
(a killed capture never leaves a stale lock). Remote stores (``s3://``, ``memory://``) have no lock;
their readers still see only committed rows, because each commit is one metadata write.
"""

from __future__ import annotations

import os
from pathlib import Path

from saeno.errors import StoreError

LOCK_NAME = ".saeno-writer.lock"


class WriterLock:
    """Exclusive, non-blocking writer lock of the local store folder ``root`` (no-op when None)."""

    def __init__(self, root: Path | None, url: str) -> None:
        self.root = root
        self.url = url
        self._fd: int | None = None

    def acquire(self) -> WriterLock:
        """Take the lock; :class:`StoreError` when another process holds it."""
        if self.root is None or self._fd is not None:
            return self
        import fcntl

        self.root.mkdir(parents=True, exist_ok=True)
        path = self.root / LOCK_NAME
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "another process"
            os.close(fd)
            raise StoreError(
                f"another capture (process {holder}) is writing the store at {self.url}: wait for it "
                "to finish, or capture into another location"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        self._fd = fd
        return self

    def release(self) -> None:
        """Remove the lock file and drop the lock (unlinked while still held, so no other writer
        can hold the same file meanwhile)."""
        if self._fd is not None:
            assert self.root is not None
            try:
                (self.root / LOCK_NAME).unlink(missing_ok=True)
            except OSError:
                pass
            os.close(self._fd)
            self._fd = None
