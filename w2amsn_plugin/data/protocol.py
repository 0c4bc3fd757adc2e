"""The data protocol of a set of slice databases as written into its manifest: its record, its id,
and the check that keeps databases of different protocols apart (paper section IV-A;
docs/data.md). The settings themselves and the file names are owned by
:mod:`w2amsn_plugin.protocol`.

``w2amsn prepare`` writes the protocol into ``<dataset>_<MOD>_split.json`` (key ``"protocol"``:
plane, in-plane voxel size, normalisation percentile, bit depth, slice selection, crop,
degradations, scales, and ``id``) and stamps every database folder with
:data:`~w2amsn_plugin.protocol.STAMP_FILE` naming the same ``id``. The id is a hash of what fixes
the pixels of a slice (modality, plane, percentile, bits, slice selection, crop, format), not of
the degradations and scales, which a later run may add to the same HR database.

:func:`check_dataset` runs once when :class:`~w2amsn_plugin.data.mr_slice_dataset.MRSliceDataset`
opens a pair of databases (nothing per item): the GT and LQ stamps must carry one id, the manifest
beside the GT database (found by name, :func:`~w2amsn_plugin.protocol.manifest_beside`) must carry
it too, and the options must agree with the databases (modality, scale, ``plane:`` if given).
Databases without a stamp or manifest (older runs, folders of PNGs) are not checked.
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

from ..protocol import (IXI_DATASET, STAMP_FILE, kind_scale, manifest_beside,
                        manifest_name, parse_database_name, read_manifest)
from .planes import ANATOMICAL_PLANES, PLANES

__all__ = ["protocol_id", "write_stamp", "read_stamp", "check_dataset"]


def protocol_id(fields: dict[str, Any]) -> str:
    """16 hex digits of the SHA-256 of ``fields`` as canonical JSON."""
    text = json.dumps(fields, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def write_stamp(folder: str | os.PathLike, pid: str, modality: str, split: str, kind: str,
                dataset: str = IXI_DATASET) -> None:
    """Write :data:`~w2amsn_plugin.protocol.STAMP_FILE` into a database folder."""
    stamp = {"protocol_id": pid, "modality": modality, "split": split, "kind": kind,
             "manifest": manifest_name(modality, dataset)}
    Path(folder, STAMP_FILE).write_text(json.dumps(stamp, indent=1) + "\n")


def read_stamp(folder: str | os.PathLike) -> dict | None:
    """The stamp of a database folder, or ``None`` when it has none (an older database)."""
    path = Path(folder, STAMP_FILE)
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise ValueError(f"{path}: unreadable protocol stamp ({err})") from None


def check_dataset(opt: dict, gt_folder: str, lq_folder: str, scale: int) -> None:
    """Refuse a GT/LQ database pair that does not belong together or to the options.

    Raises ValueError, one line naming the database and the mismatch.
    """
    gt_name, lq_name = parse_database_name(gt_folder), parse_database_name(lq_folder)
    if gt_name and lq_name:
        if gt_name[:2] != lq_name[:2] or gt_name.dataset != lq_name.dataset:
            raise ValueError(f"{lq_folder}: LQ database of {lq_name.dataset} {lq_name[0]} "
                             f"{lq_name[1]} paired with GT database of {gt_name.dataset} "
                             f"{gt_name[0]} {gt_name[1]} ({gt_folder})")
        if lq_name[2] != "HR" and kind_scale(lq_name[2]) != scale:
            raise ValueError(f"{lq_folder}: LQ database is x{kind_scale(lq_name[2])}, the options' "
                             f"scale is {scale}")
    gt_stamp, lq_stamp = read_stamp(gt_folder), read_stamp(lq_folder)
    if gt_stamp and lq_stamp and gt_stamp["protocol_id"] != lq_stamp["protocol_id"]:
        raise ValueError(f"{lq_folder}: built with data protocol {lq_stamp['protocol_id']}, the GT "
                         f"database {gt_folder} with {gt_stamp['protocol_id']}: databases of "
                         "different runs do not mix; rebuild both with one w2amsn prepare run")
    if gt_name is None or not manifest_beside(gt_folder).is_file():
        return
    manifest_path = manifest_beside(gt_folder)
    manifest = read_manifest(manifest_path)
    protocol = manifest.get("protocol") or {}
    if manifest.get("modality") not in (None, gt_name[0]):
        raise ValueError(f"{manifest_path}: describes {manifest.get('dataset', IXI_DATASET)} "
                         f"{manifest['modality']}, the database {gt_folder} is {gt_name[0]}")
    for folder, stamp in ((gt_folder, gt_stamp), (lq_folder, lq_stamp)):
        if stamp and protocol.get("id") and stamp["protocol_id"] != protocol["id"]:
            raise ValueError(f"{folder}: built with data protocol {stamp['protocol_id']}, but "
                             f"{manifest_path} beside it records {protocol['id']}: databases of "
                             "different runs do not mix")
    scales = protocol.get("scales")
    if scales and lq_name and lq_name[2] != "HR" and scale not in scales:
        raise ValueError(f"{manifest_path}: built for scales {scales}, the options' scale is {scale}")
    _check_plane(opt.get("plane"), manifest, manifest_path)


def _check_plane(wanted: str | None, manifest: dict, manifest_path: Path) -> None:
    """The options' ``plane:`` against the manifest's plane (an anatomical plane also matches an
    ``acquisition`` set whose every volume was sliced along that plane)."""
    if wanted is None:
        return
    if wanted not in PLANES:
        raise ValueError(f"options: plane {wanted!r} is not one of {', '.join(PLANES)}")
    recorded = (manifest.get("protocol") or {}).get("plane")
    if recorded is None or recorded == wanted:
        return
    axes = {v.get("plane_axis_ras") for v in manifest.get("volumes", {}).values()}
    if wanted in ANATOMICAL_PLANES and axes == {ANATOMICAL_PLANES[wanted]}:
        return
    raise ValueError(f"{manifest_path}: slices of the {recorded} plane, the options ask for "
                     f"plane: {wanted}")
