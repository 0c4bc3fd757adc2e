"""Lossless 16-bit grayscale PNG storage of [0, 1] MR slices (docs/data.md).

MR is ~12-bit; 8-bit storage alone costs PSNR at the 40 dB level, so slices are stored as 16-bit
PNG with ``value = round(x * 65535)``. Encoding uses OpenCV with PNG compression level 1 by
default (zlib level 1, as BasicSR's LMDB tools use: ~2x smaller than raw, the fastest level;
higher levels gain under 2 % on MR slices and encode slower).
"""
from __future__ import annotations

import cv2
import numpy as np

__all__ = ["DEFAULT_COMPRESS_LEVEL", "to_uint16", "encode_png16", "decode_png"]

DEFAULT_COMPRESS_LEVEL = 1


def to_uint16(x: np.ndarray) -> np.ndarray:
    """Quantise [0, 1] values to uint16 (``round(x * 65535)``, clipped)."""
    return np.clip(np.rint(np.asarray(x, dtype=np.float64) * 65535.0), 0, 65535).astype(np.uint16)


def encode_png16(img: np.ndarray, compress_level: int = DEFAULT_COMPRESS_LEVEL) -> bytes:
    """PNG bytes of a 2-D uint16 image."""
    if img.dtype != np.uint16 or img.ndim != 2:
        raise ValueError(f"expected a 2-D uint16 image, got {img.dtype} {img.shape}")
    ok, buf = cv2.imencode(".png", img, [cv2.IMWRITE_PNG_COMPRESSION, int(compress_level)])
    if not ok:
        raise RuntimeError("cv2.imencode failed to encode a 16-bit PNG")
    return buf.tobytes()


def decode_png(data: bytes, where: str = "PNG") -> np.ndarray:
    """Decode grayscale PNG bytes to a float32 ``H x W`` image in [0, 1].

    16-bit images are divided by 65535, 8-bit ones by 255; ``where`` (a key or path) names the
    value in the error raised for undecodable or colour data.
    """
    img = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), cv2.IMREAD_UNCHANGED)
    if img is None:
        raise ValueError(f"{where}: value is not a decodable PNG image")
    if img.ndim != 2:
        raise ValueError(f"{where}: expected a grayscale PNG, got shape {img.shape}")
    if img.dtype == np.uint16:
        return img.astype(np.float32) / np.float32(65535.0)
    if img.dtype == np.uint8:
        return img.astype(np.float32) / np.float32(255.0)
    raise ValueError(f"{where}: unsupported PNG sample type {img.dtype}")
