"""What this machine is and what it can do at best: the yardstick of ``w2amsn bench``.

The limit is the throughput of a large 3x3 convolution (the operation W²AMSN, EDSR and RCAN spend
almost all their time in), in fp32 and in bf16, channels_last, under ``torch.inference_mode``;
FLOPs = 2 x multiply-adds. Two widths (64 and 128 channels) are timed and the faster is the
limit, so a model's FLOP utilisation (MFU) is measured against the best the convolution library
reaches here. Where bf16 is emulated (no AVX512-BF16/AMX on the CPU) it is about ten times
slower than fp32, so it is timed on a small input only, and the result says so.
"""
from __future__ import annotations

import platform
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from .. import device_caps
from .timing import synchronize, time_calls

__all__ = ["ConvLimit", "conv_limit", "machine_info", "isa_summary"]


@dataclass
class ConvLimit:
    """Best GFLOP/s of a 3x3 convolution in one precision, and how it was measured."""

    dtype: str
    gflops: float
    shape: str
    emulated: bool
    per_shape: dict[str, float] = field(default_factory=dict)


def isa_summary() -> str:
    """``'AVX2'``, ``'AVX512'``, ``'AVX512 + AVX512-BF16'``, ``'AVX512 + AMX'`` ... from the CPU
    flags (torch's dispatch capability where /proc/cpuinfo is not available)."""
    flags = device_caps.cpu_flags()
    if not flags:
        return device_caps.cpu_capability()
    parts = ["AVX512" if "avx512f" in flags else "AVX2" if "avx2" in flags else
             "ASIMD" if "asimd" in flags else "SSE"]
    if "amx_bf16" in flags:
        parts.append("AMX-BF16")
    if "avx512_bf16" in flags:
        parts.append("AVX512-BF16")
    if "avx_ne_convert" in flags:
        parts.append("AVX-NE-CONVERT")
    if "bf16" in flags:  # Arm
        parts.append("BF16")
    return " + ".join(parts)


def machine_info(device: str) -> dict[str, Any]:
    """The machine in words and numbers: CPU model, ISA, bf16 support, threads, versions."""
    import basicsr

    info: dict[str, Any] = {
        "cpu_model": device_caps.cpu_model(),
        "cpu_isa": isa_summary(),
        "torch_cpu_capability": device_caps.cpu_capability(),
        "cpu_native_bf16": device_caps.native_bf16("cpu"),
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "basicsr": getattr(basicsr, "__version__", "?"),
        "python": platform.python_version(),
        "device": device,
        "device_description": device_caps.describe_device(device),
    }
    if torch.device(device).type == "cuda":
        info["cuda_native_bf16"] = device_caps.native_bf16(device)
        info["cuda_name"] = torch.cuda.get_device_name(device)
    return info


def _shapes(device: str, small: bool) -> list[tuple[int, int, int]]:
    """(batch, channels, side) of the convolutions to time."""
    if small:
        return [(1, 64, 32)]
    if torch.device(device).type == "cuda":
        return [(32, 64, 256), (16, 128, 256)]
    return [(1, 64, 128), (1, 128, 96)]


def conv_limit(dtype: torch.dtype, device: str = "cpu", *, warmup: int = 2, reps: int = 5,
               small: bool | None = None) -> ConvLimit:
    """GFLOP/s of 3x3 convolutions in ``dtype`` on ``device``, best over the timed shapes.

    ``small=None`` picks a 1x64x32x32 input where bf16 is emulated, so the measurement stays
    short; the result is labelled ``emulated``.
    """
    emulated = dtype == torch.bfloat16 and not device_caps.native_bf16(device)
    small = emulated if small is None else small
    per_shape: dict[str, float] = {}
    with torch.inference_mode():
        for batch, channels, side in _shapes(device, small):
            conv = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
            conv = conv.to(device=device, dtype=dtype, memory_format=torch.channels_last)
            x = torch.rand(batch, channels, side, side, device=device, dtype=dtype)
            x = x.contiguous(memory_format=torch.channels_last)
            flops = 2 * batch * channels * channels * 9 * side * side
            timing = time_calls(lambda: conv(x), warmup=warmup, reps=reps, device=device)
            per_shape[f"{batch}x{channels}x{side}x{side}"] = flops / timing.best / 1e9
    synchronize(device)
    best_shape = max(per_shape, key=per_shape.get)
    return ConvLimit(dtype=str(dtype).removeprefix("torch."), gflops=per_shape[best_shape],
                     shape=f"3x3 conv, {best_shape} input, channels_last", emulated=emulated,
                     per_shape=per_shape)
