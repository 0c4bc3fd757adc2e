"""One writer per output folder (``w2amsn prepare-ixi --out``): an advisory lock on
``<folder>/.w2amsn.lock`` (``fcntl.flock``) that records the owner's pid and start time, so a
second run into the same folder refuses in one line naming the running process. The kernel drops
an flock when its process dies, kill -9 included, so a lock file left by a dead process is simply
taken over (and said so).
"""
from __future__ import annotations

import contextlib
import fcntl
import json
import os
import socket
import time
from pathlib import Path
from typing import Callable, Iterator

__all__ = ["LOCK_NAME", "FolderLocked", "folder_lock"]

LOCK_NAME = ".w2amsn.lock"


class FolderLocked(RuntimeError):
    """The folder is being written by another process, or cannot be used; one line."""


def _owner(fd: int) -> dict:
    try:
        text = os.pread(fd, 4096, 0).decode("utf-8", "replace")
        owner = json.loads(text)
    except (OSError, ValueError):
        return {}
    return owner if isinstance(owner, dict) else {}


def _describe(owner: dict) -> str:
    pid, host, since = owner.get("pid", "?"), owner.get("host"), owner.get("since")
    return f"pid {pid}" + (f" on {host}" if host and host != socket.gethostname() else "") + (
        f", since {since}" if since else "")


def _acquire(path: Path) -> int:
    """An open descriptor of ``path`` holding its exclusive flock (the file is re-opened if
    another process replaced it meanwhile)."""
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            owner = _owner(fd)
            os.close(fd)
            raise FolderLocked(f"{path.parent}: another run is writing into it ({_describe(owner)}, "
                               f"lock {path}); wait for it to end or stop it") from None
        except OSError as err:  # e.g. ENOLCK: a file system without flock
            os.close(fd)
            raise FolderLocked(f"{path}: cannot be locked ({err.strerror}); use an --out on a "
                               "local file system") from None
        try:
            same = os.stat(path).st_ino == os.fstat(fd).st_ino
        except FileNotFoundError:
            same = False
        if same:
            return fd
        os.close(fd)  # the holder removed the file while we waited: lock the new one


@contextlib.contextmanager
def folder_lock(folder: str | os.PathLike, what: str,
                log: Callable[[str], None] | None = None, *, lock_name: str = LOCK_NAME) -> Iterator[Path]:
    """Hold the lock of ``folder`` (created if missing; removed again if it is still empty at
    the end and was created here) for the block; :class:`FolderLocked` if another live process
    holds it or the folder cannot be created or written."""
    folder = Path(folder)
    created = not folder.exists()
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as err:  # commands check this first (results.output_paths); other callers here
        raise FolderLocked(f"{folder}: cannot be created ({err.strerror or err})") from None
    path = folder / lock_name  # basicsr train|test: one per experiment name beside its folder
    fd = _acquire(path)
    try:
        stale = _owner(fd)
        if stale.get("pid") and log is not None:
            log(f"note: took over the lock {path} left by {_describe(stale)}, which has ended")
        record = {"pid": os.getpid(), "host": socket.gethostname(), "what": what,
                  "since": time.strftime("%Y-%m-%d %H:%M:%S")}
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(record).encode(), 0)
        yield folder
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
        os.close(fd)
        if created:
            with contextlib.suppress(OSError):
                folder.rmdir()  # only if nothing was written
