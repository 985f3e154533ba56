"""One `rpsquest up` or `serve` per data dir: an exclusive flock on a file there, held while the process lives."""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

LOCK_FILE = "rpsquest.lock"


class DataDirBusy(Exception):
    """Another process holds the data dir's lock."""


def lock_data_dir(data_dir: Path) -> int:
    """Take the data dir's lock for the rest of this process and return its file descriptor.

    The kernel drops the lock when the process ends, however it ends (kill -9 included). The
    descriptor is not inherited: server workers and the trainer, children of this process, never
    hold it. Raises DataDirBusy, naming the holder's pid, when another process holds it.
    """
    data_dir.mkdir(parents=True, exist_ok=True)
    fd = os.open(data_dir / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.read(fd, 32).decode(errors="replace").strip() or "unknown"
        os.close(fd)
        raise DataDirBusy(
            f"{data_dir.resolve()} is in use by another rpsquest up or serve (pid {holder}):"
            " stop it, or use another --data-dir"
        ) from None
    os.ftruncate(fd, 0)
    os.write(fd, f"{os.getpid()}\n".encode())
    return fd
