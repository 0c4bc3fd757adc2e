"""Lossless grayscale PNG storage of [0, 1] MR slices, 16 bit by default (docs/data.md).

MR has more intensity levels than 8 bits hold: on the shipped real slices 8-bit quantisation
alone is 62 dB from the 16-bit slice and moves a 40 dB score by 0.04-0.06 dB
(``scripts/bit_depth_psnr.py``; docs/data.md), so slices are stored as 16-bit PNG with
``value = round(x * 65535)``. ``bits=8`` (``value = round(x * 255)``) is the storage of PNG-based
SR pipelines, one of the protocol readings ``w2amsn calibrate`` compares. Encoding uses
OpenCV with PNG compression level 1 by default (zlib level 1, as BasicSR's LMDB tools use: ~2x
smaller than raw, the fastest level; higher levels gain under 2 % on MR slices and encode slower).
"""
from __future__ import annotations

import struct
import zlib

import cv2
import numpy as np

from ..protocol import BIT_DEPTHS, DEFAULT_COMPRESS_LEVEL

__all__ = ["DEFAULT_COMPRESS_LEVEL", "BIT_DEPTHS", "to_uint16", "quantize", "encode_png16", "decode_png",
           "PngDecodeError"]

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


class PngDecodeError(ValueError):
    """A stored slice that is not a whole grayscale PNG; the message names where it is."""


def _damage(data: bytes) -> str | None:
    """Why ``data`` is not a whole PNG (signature, chunk CRCs, IEND), found before libpng would
    print its own warnings to stderr; None if it is whole."""
    if not data.startswith(_PNG_SIGNATURE):
        return "not a PNG (no PNG signature)"
    pos = len(_PNG_SIGNATURE)
    while pos + 12 <= len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        end = pos + 12 + length
        if end > len(data):
            break
        if zlib.crc32(data[pos + 4:end - 4]) != struct.unpack(">I", data[end - 4:end])[0]:
            return f"a damaged PNG ({kind.decode('latin-1')} chunk fails its CRC)"
        if kind == b"IEND":
            return None
        pos = end
    return "a truncated PNG (no IEND chunk)"



def to_uint16(x: np.ndarray) -> np.ndarray:
    """Quantise [0, 1] values to uint16 (``round(x * 65535)``, clipped)."""
    return np.clip(np.rint(np.asarray(x, dtype=np.float64) * 65535.0), 0, 65535).astype(np.uint16)


def quantize(x: np.ndarray, bits: int) -> np.ndarray:
    """Quantise [0, 1] values to ``bits`` (16: uint16 ``round(x * 65535)``, 8: uint8
    ``round(x * 255)``), clipped."""
    if bits == 16:
        return to_uint16(x)
    if bits == 8:
        return np.clip(np.rint(np.asarray(x, dtype=np.float64) * 255.0), 0, 255).astype(np.uint8)
    raise ValueError(f"bits must be one of {BIT_DEPTHS}, got {bits!r}")


def encode_png16(img: np.ndarray, compress_level: int = DEFAULT_COMPRESS_LEVEL) -> bytes:
    """PNG bytes of a 2-D uint16 (or, for ``bits=8`` storage, uint8) image."""
    if img.dtype not in (np.uint16, np.uint8) or img.ndim != 2:
        raise ValueError(f"expected a 2-D uint16 or uint8 image, got {img.dtype} {img.shape}")
    ok, buf = cv2.imencode(".png", img, [cv2.IMWRITE_PNG_COMPRESSION, int(compress_level)])
    if not ok:
        raise RuntimeError("cv2.imencode failed to encode a 16-bit PNG")
    return buf.tobytes()


def decode_png(data: bytes, where: str = "PNG") -> np.ndarray:
    """Decode grayscale PNG bytes to a float32 ``H x W`` image in [0, 1].

    16-bit images are divided by 65535, 8-bit ones by 255; ``where`` (a key or path) names the
    value in the error raised for undecodable or colour data.
    """
    damage = _damage(data)
    if damage:
        raise PngDecodeError(f"{where}: value is {damage}")
    img = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), cv2.IMREAD_UNCHANGED)
    if img is None:
        raise PngDecodeError(f"{where}: value is not a decodable PNG image")
    if img.ndim != 2:
        raise PngDecodeError(f"{where}: expected a grayscale PNG, got shape {img.shape}")
    if img.dtype == np.uint16:
        return img.astype(np.float32) / np.float32(65535.0)
    if img.dtype == np.uint8:
        return img.astype(np.float32) / np.float32(255.0)
    raise ValueError(f"{where}: unsupported PNG sample type {img.dtype}")
