"""The manifest records of a ``w2amsn prepare`` run (:mod:`.prepare`): the ``"protocol"`` record
(what fixes the slices, with its id; :mod:`.protocol`), the human-readable ``"preprocessing"``
record, and the fingerprint that tells whether a rerun into the same folder has the same options
and split."""
from __future__ import annotations

from typing import TYPE_CHECKING

from .ixi import FOREGROUND_THRESHOLD
from .planes import DISPLAY
from ..protocol import SMALL_VOLUME_RULES
from .protocol import protocol_id

if TYPE_CHECKING:
    from .prepare import PrepareConfig

__all__ = ["FORMAT_VERSION", "SMALL_VOLUME_RULES", "SMALL_VOLUME_TEXT", "fingerprint",
           "protocol_record", "preprocessing_text"]

FORMAT_VERSION = 2
#: the rules of :data:`~w2amsn_plugin.protocol.SMALL_VOLUME_RULES` (the manifest states the one used):
#: ``refuse`` (IXI's rule: refused when slicing its acquisition plane, zero-padded when a
#: named anatomical plane is asked for), ``pad`` (zero-padded), ``skip`` (left out, counted)
SMALL_VOLUME_TEXT = {
    "refuse": "a plane smaller than the crop is refused for the acquisition plane, zero-padded "
              "for a named anatomical plane",
    "pad": "a plane smaller than the crop is zero-padded equally on both sides",
    "skip": "a volume whose plane is smaller than the crop, or that has fewer slices than the "
            "crop's depth, is skipped (listed under skipped)",
}


def fingerprint(manifest: dict) -> dict:
    return {k: manifest.get(k) for k in ("format_version", "modality", "options", "splits")} | {
        "protocol_id": (manifest.get("protocol") or {}).get("id")}


def protocol_record(cfg: PrepareConfig, crop: tuple[int, int, int], existing: dict | None) -> dict:
    """The manifest's ``"protocol"`` record (``in_plane_voxel_mm`` is filled in at the end); its
    ``crop`` is (height, width, depth); degradations and scales are the union with an earlier run's
    on the same databases."""
    old = (existing or {}).get("protocol") or {}
    crop = (crop[1], crop[0], crop[2])
    fields = {"format_version": FORMAT_VERSION, "modality": cfg.modality, "plane": cfg.plane,
              "percentile": cfg.percentile, "bits": cfg.bits, "slice_selection": cfg.slices,
              "crop": list(crop)}
    return {"plane": cfg.plane, "in_plane_voxel_mm": None, "percentile": cfg.percentile,
            "bits": cfg.bits, "slice_selection": cfg.slices, "crop": list(crop),
            "degradation": sorted(set(old.get("degradation", [])) | set(cfg.degradations)),
            "scales": sorted(set(old.get("scales", [])) | set(cfg.scales)),
            "id": protocol_id(fields)}


def preprocessing_text(cfg: PrepareConfig, crop: tuple[int, int, int]) -> dict[str, str]:
    """The manifest's human-readable ``"preprocessing"`` record."""
    display = {axis: f"rows along RAS axis {r} ({'+ at the top' if rf else '- at the top'}), "
                     f"columns along RAS axis {c} ({'+ on the left' if cf else '- on the left'})"
               for axis, (r, rf, c, cf) in DISPLAY.items()}
    return {
        "orientation": "nibabel as_closest_canonical (RAS, no resampling); slices of the "
                       f"{cfg.plane} plane (w2amsn_plugin.data.planes; per volume plane_axis_ras), "
                       f"upright: normal 0 (sagittal): {display[0]}; normal 1 (coronal): "
                       f"{display[1]}; normal 2 (axial): {display[2]}",
        "crop": f"height and width: centre crop to {crop[1]}x{crop[0]} (cut to a multiple of "
                f"lcm(scales)); {SMALL_VOLUME_TEXT[cfg.small_volumes]}; slices: "
                + (f"{crop[2]} consecutive slices centred on the foreground (normalised intensity > "
                   f"{FOREGROUND_THRESHOLD}) bounding box, clamped to the volume"
                   if cfg.slices == "head" else f"the central {crop[2]} slices")
                + ", zero-padded equally when the volume is shorter",
        "normalization": f"per volume: clip to [min, {cfg.percentile}th percentile] and scale "
                         "to [0, 1] (w2amsn_plugin.data.normalization); lo/hi per volume below",
        "storage": f"{cfg.bits}-bit grayscale PNG, value = round(x * {2**cfg.bits - 1})",
        "lr": f"degradation of the {cfg.bits}-bit HR slice: bicubic = MATLAB imresize (antialiased, "
              "BasicSR imresize weights); truncation = central k-space crop, magnitude",
    }
