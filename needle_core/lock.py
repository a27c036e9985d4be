"""Advisory file locks (``flock``) between the processes that write one result store or one
data folder.

The kernel drops a process's locks when it exits, kill -9 included, so a lock left by a dead
process never blocks anyone: there is nothing stale to clean up.  The lock file itself stays
(removing it would race with a process waiting on it); whoever takes a lock exclusively
writes who it is into the file (pid, host, start time), for the messages of the others.

flock works between processes of one machine and, on Linux, over NFS v4 (where it maps to
POSIX locks); the workers of a cluster share the store through such a file system.
"""
from __future__ import annotations

import fcntl
import json
import os
import platform
import time
from pathlib import Path


class FileLock:
    """A lock on ``path`` (created if missing), held by this object's open file.

    Two ``FileLock`` objects on one path exclude each other even inside one process (each has
    its own open file), so one process must not take a path it already holds.
    """

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self._fd: int | None = None

    def acquire(self, exclusive: bool = True, wait: bool = True) -> bool:
        """Take the lock (or convert the one held: flock converts by releasing first, so
        another process may get in between).  Returns False, holding nothing new, when
        ``wait`` is False and another process holds it in a conflicting mode."""
        if self._fd is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666)
        mode = (fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH) | (0 if wait else fcntl.LOCK_NB)
        try:
            fcntl.flock(self._fd, mode)
        except BlockingIOError:
            return False
        if exclusive:
            record = json.dumps(dict(pid=os.getpid(), host=platform.node(),
                                     since=time.strftime("%Y-%m-%dT%H:%M:%S%z"))).encode()
            try:
                os.ftruncate(self._fd, 0)
                os.pwrite(self._fd, record, 0)
            except OSError:  # a full disk: the record only names the holder in others' messages
                pass
        return True

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the last descriptor of the open file drops the lock
            self._fd = None

    def held(self) -> bool:
        """Whether some process holds the lock now (not to be asked while this object holds it)."""
        try:
            fd = os.open(self.path, os.O_RDONLY)
        except FileNotFoundError:
            return False
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return False
        except BlockingIOError:
            return True
        finally:
            os.close(fd)

    def holder(self) -> str:
        """Who last took the lock exclusively, in words ("pid 12 on node-3 since ...")."""
        try:
            record = json.loads(self.path.read_text())
            return f"pid {record['pid']} on {record['host']} since {record['since']}"
        except (OSError, ValueError, KeyError, TypeError):
            return "another process"

    def __enter__(self) -> "FileLock":
        return self

    def __exit__(self, *exc) -> None:
        self.release()
