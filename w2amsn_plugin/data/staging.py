"""Staging of one ``w2amsn prepare`` run: temporary databases under ``OUT/.<dataset>_<MOD>_staging``
(:func:`w2amsn_plugin.protocol.staging_name`) plus the list of finished volumes, so a rerun after
Ctrl-C, a crash, a killed worker or a full disk skips them (:mod:`.prepare`)."""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Callable

from ..protocol import slice_key
from ..results.files import write_json
from .ixi import IXIDataError
from .lmdb_io import LmdbWriter

__all__ = ["DONE_FILE", "Staging", "file_stamp", "write_json_atomic"]

DONE_FILE = "done.jsonl"


def write_json_atomic(path: Path, obj: dict) -> None:
    """``obj`` as indented JSON at ``path``, through the package's one atomic writer."""
    write_json(path, obj)


class Staging:
    """``OUT/.<dataset>_<MOD>_staging``: temporary databases plus the list of finished volumes.

    ``done`` maps a volume id to its record (``volume``, ``split``, file ``size``/``mtime_ns``,
    ...; ``skipped``: the one-line reason when the volume could not be read).
    """

    def __init__(self, root: Path, config: dict, targets: dict[str, tuple[str, str]],
                 volume_split: dict[str, str], files: dict[str, Path],
                 map_sizes: dict[str, int], log: Callable[[str], None]):
        self.root = root
        self.targets = targets
        config_path = root / "config.json"
        if root.exists() and not config_path.is_file():  # killed while creating it: start anew
            shutil.rmtree(root)
        if root.exists():
            old = json.loads(config_path.read_text())
            same = {k: v for k, v in old.items() if k != "targets"} == \
                {k: v for k, v in config.items() if k != "targets"}
            if not same or not set(config["targets"]) <= set(old["targets"]):
                raise IXIDataError(
                    f"{root}: an unfinished run with other options is staged here; rerun it with "
                    "the same options, or pass --overwrite to discard it")
            # a subset: the run was stopped while publishing; the rest is already in place
        else:
            root.mkdir(parents=True)
            write_json_atomic(config_path, config)
        self.writers = {name: LmdbWriter(self.tmp_path(name), map_sizes[name]) for name in targets}
        self.done: dict[str, dict] = {}
        done_path = root / DONE_FILE
        if done_path.is_file():
            for line in done_path.read_text().splitlines():
                try:
                    rec = json.loads(line)
                except json.JSONDecodeError:  # a line cut by a crash: that volume is redone
                    continue
                rec.setdefault("volume", rec.pop("subject", None))  # staged by an older version
                self.done[rec["volume"]] = rec
        self._prune(volume_split, files, config["modality"], config["options"]["crop"][2], log)
        self._done_file = open(done_path, "a")

    def tmp_path(self, name: str) -> Path:
        return self.root / (name + ".tmp")

    def _prune(self, volume_split: dict[str, str], files: dict[str, Path], modality: str,
               depth: int, log: Callable[[str], None]) -> None:
        """Forget finished volumes whose split or file changed since they were staged."""
        stale = [rec for volume, rec in self.done.items()
                 if volume_split.get(volume) != rec["split"]
                 or file_stamp(files.get(volume)) != (rec["size"], rec["mtime_ns"])]
        for rec in stale:
            keys = [slice_key(rec["volume"], modality, k) for k in range(depth)]
            for name, (split, _) in self.targets.items():
                if split == rec["split"]:
                    self.writers[name].delete_many(keys)
            del self.done[rec["volume"]]
        if stale:
            log(f"note: {len(stale)} staged volume(s) changed split or file; they are redone")
            (self.root / DONE_FILE).write_text(
                "".join(json.dumps(r) + "\n" for r in self.done.values()))

    def commit(self, split: str, volume: str, values_by_kind: dict[str, list[bytes]] | None,
               record: dict, modality: str) -> None:
        """Write one volume's slices into every target of its split (none for a skipped volume,
        ``values_by_kind`` None), then mark it done."""
        for name, (target_split, kind) in self.targets.items():
            if target_split == split and values_by_kind is not None:
                values = values_by_kind[kind]
                self.writers[name].put_many(
                    (slice_key(volume, modality, k), v) for k, v in enumerate(values))
        self._done_file.write(json.dumps(record) + "\n")
        self._done_file.flush()
        os.fsync(self._done_file.fileno())
        self.done[volume] = record

    def close(self) -> None:
        for writer in self.writers.values():
            writer.close()
        self.writers = {}
        if not self._done_file.closed:
            self._done_file.close()


def file_stamp(path: Path | None) -> tuple[int, int] | None:
    if path is None or not path.exists():
        return None
    st = path.stat()
    return st.st_size, st.st_mtime_ns
