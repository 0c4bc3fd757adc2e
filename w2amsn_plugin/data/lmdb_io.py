"""BasicSR-compatible LMDB databases of 16-bit PNG slices: write, verify, read.

Layout (BasicSR's ``paired_paths_from_lmdb``, ``basicsr/data/data_util.py``): a folder
``NAME.lmdb`` holding ``data.mdb``, ``lock.mdb`` and ``meta_info.txt`` whose lines read
``KEY.png (h,w,1) compress_level``; BasicSR takes ``line.split('.')[0]`` as the key, so keys have no
dots. A database is built under a temporary name, verified (every value decodes to the expected
shape) and only then moved into place with :func:`os.replace`.

Writing never leaves process memory in a file: LMDB zeroes the unused part of each page
(``meminit``), and :func:`write_sorted_copy` publishes a database as a fresh file written in key
order in one transaction, without a lock file, so the same keys and values always give the same
``data.mdb`` bytes, whatever order the workers finished in.

Reading: :func:`readonly_env` gives the process's one read-only environment of a database (the
py-lmdb binding refuses to open one path twice in a process); the dataset and anything else that
reads a database in the same process must use it.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Iterable, Mapping

import lmdb
import numpy as np

from .png16 import decode_png

__all__ = ["lmdb_map_size", "LmdbWriter", "write_sorted_copy", "verify_lmdb", "write_meta_info",
           "read_meta_keys", "readonly_env", "read_slice"]

_PAGE = 4096
#: read-only environments of this process, by (pid, real path)
_ENVS: dict[tuple[int, str], lmdb.Environment] = {}


def readonly_env(path: str | os.PathLike) -> lmdb.Environment:
    """The process's shared read-only environment of the database at ``path``.

    Opened on first use, without locking and read-ahead (as BasicSR's ``LmdbBackend``); a forked
    dataloader worker opens its own (an environment must not cross a fork).
    """
    pid = os.getpid()
    for stale in [k for k in _ENVS if k[0] != pid]:
        # inherited through fork from the parent: py-lmdb still counts it as open in this
        # process (so a second open of the same path fails) but it must not be used here
        _ENVS.pop(stale).close()
    key = (pid, os.path.realpath(path))
    env = _ENVS.get(key)
    if env is None:
        env = lmdb.open(str(path), readonly=True, lock=False, readahead=False, meminit=False)
        _ENVS[key] = env
    return env


def lmdb_map_size(n_values: int, height: int, width: int) -> int:
    """Map size for ``n_values`` 16-bit ``height x width`` PNGs.

    Upper bound: raw 16-bit size (PNG of MR slices is ~2x smaller; zlib's worst-case growth is
    < 1 %) plus one page per value for LMDB's overflow-page rounding, x1.25, plus 16 MiB for the
    B-tree. The map is only reserved address space: the file grows with what is written.
    """
    per_value = 2 * height * width + height + 1024 + _PAGE
    return int(n_values * per_value * 1.25) + (16 << 20)


class LmdbWriter:
    """Append-only writer of one LMDB database; one transaction per :meth:`put_many`."""

    def __init__(self, path: str | os.PathLike, map_size: int):
        self.path = Path(path)
        self.path.mkdir(parents=True, exist_ok=True)
        self._env = lmdb.open(str(self.path), map_size=map_size, subdir=True, meminit=True,
                              map_async=False)

    def put_many(self, items: Iterable[tuple[str, bytes]]) -> None:
        """Write ``(key, value)`` pairs atomically (overwriting keys that exist)."""
        items = list(items)
        while True:
            try:
                with self._env.begin(write=True) as txn:
                    for key, value in items:
                        txn.put(key.encode("ascii"), value)
                return
            except lmdb.MapFullError:  # estimate too small: grow and retry the transaction
                self._env.set_mapsize(self._env.info()["map_size"] * 2)

    def delete_many(self, keys: Iterable[str]) -> None:
        """Delete ``keys`` (missing ones are ignored) in one transaction."""
        with self._env.begin(write=True) as txn:
            for key in keys:
                txn.delete(key.encode("ascii"))

    def close(self) -> None:
        self._env.sync(True)
        self._env.close()


def write_sorted_copy(src: str | os.PathLike, dst: str | os.PathLike, map_size: int) -> None:
    """Copy the database at ``src`` into a new one at ``dst`` (a folder that must not exist):
    every key in order, appended in one transaction, pages zeroed, no ``lock.mdb`` (readers open
    it without locking, as BasicSR does). ``map_size`` is doubled until the data fits."""
    Path(dst).mkdir()
    source = lmdb.open(str(src), readonly=True, lock=False, readahead=False, subdir=True)
    try:
        while True:
            env = lmdb.open(str(dst), map_size=map_size, subdir=True, meminit=True, lock=False,
                            sync=True)
            try:
                with source.begin() as rtxn, env.begin(write=True) as wtxn:
                    for key, value in rtxn.cursor():
                        wtxn.put(key, value, append=True)
                env.sync(True)
                return
            except lmdb.MapFullError:
                map_size *= 2
            finally:
                env.close()
            for name in ("data.mdb", "lock.mdb"):
                Path(dst, name).unlink(missing_ok=True)
    finally:
        source.close()


def verify_lmdb(path: str | os.PathLike, shape: tuple[int, int]) -> tuple[list[str], list[str]]:
    """Decode every value of the database at ``path``; return ``(sorted keys, problems)``.

    A problem line names the database and key of a value that does not decode as a grayscale
    16-bit PNG of ``shape`` (h, w).
    """
    path = Path(path)
    keys: list[str] = []
    problems: list[str] = []
    env = lmdb.open(str(path), readonly=True, lock=False, readahead=False, subdir=True)
    try:
        with env.begin(write=False) as txn:
            for raw_key, value in txn.cursor():
                key = raw_key.decode("ascii")
                keys.append(key)
                try:
                    img = decode_png(bytes(value), f"{path.name}:{key}")
                except ValueError as err:
                    problems.append(str(err))
                    continue
                if img.shape != tuple(shape):
                    problems.append(f"{path.name}:{key}: shape {img.shape}, expected {shape}")
    finally:
        env.close()
    return sorted(keys), problems


def write_meta_info(path: str | os.PathLike, keys: Iterable[str],
                    shape: tuple[int, int] | Mapping[str, tuple[int, int]], compress_level: int) -> None:
    """Write BasicSR's ``meta_info.txt``: ``KEY.png (h,w,1) compress_level`` per key; ``shape`` is
    every slice's ``(h, w)``, or a mapping from key to its own."""
    def line(key: str) -> str:
        h, w = shape[key] if isinstance(shape, Mapping) else shape
        return f"{key}.png ({h},{w},1) {compress_level}\n"

    Path(path, "meta_info.txt").write_text("".join(line(key) for key in keys))


def read_meta_keys(path: str | os.PathLike) -> list[str]:
    """Keys listed in ``meta_info.txt`` of an LMDB folder, read as BasicSR reads them."""
    with open(Path(path, "meta_info.txt")) as fin:
        return [line.split(".")[0] for line in fin if line.strip()]


def read_slice(folder: str | os.PathLike, key: str) -> np.ndarray:
    """The ``H x W`` float32 [0, 1] slice stored under ``key`` in the database at ``folder``
    (through :func:`readonly_env`); a key missing from ``data.mdb`` is a :class:`KeyError`
    naming the database and the key."""
    with readonly_env(folder).begin(write=False) as txn:
        value = txn.get(key.encode("ascii"))
    if value is None:
        raise KeyError(f"{folder}: key {key} listed in meta_info.txt is not stored")
    return decode_png(value, f"{folder}:{key}")
