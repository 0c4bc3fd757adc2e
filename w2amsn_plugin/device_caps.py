"""What this machine computes natively: CPU model and vector ISA, and whether bf16 is fast.

bf16 autocast pays off only where the hardware multiplies bf16 natively: a CUDA GPU with bf16
(Ampere and later), or a CPU with AVX512-BF16, AMX-BF16 or AVX-NE-CONVERT (x86) or the BF16
extension (Arm). Elsewhere oneDNN emulates it: on an AVX2-only CPU a bf16 convolution is about
10x slower than fp32 (measured on an AVX2-only EPYC), so "auto" (``None``) means fp32 there; on an
AVX512-BF16 EPYC a W²AMSN forward ran 1.5-1.9x faster in bf16. Inference
(docs/inference.md) and the benchmarks use this one decision.
"""
from __future__ import annotations

import functools
import platform
import warnings

import torch

__all__ = ["cpu_model", "cpu_capability", "cpu_flags", "native_bf16", "resolve_bf16", "resolve_bf16_option",
           "describe_device"]

# /proc/cpuinfo flags that mean oneDNN runs bf16 convolutions in hardware, not by emulation
_NATIVE_BF16_FLAGS = frozenset({"avx512_bf16", "amx_bf16", "avx_ne_convert", "bf16"})

_warned_slow_bf16: set[str] = set()


def _cpuinfo_field(names: tuple[str, ...]) -> str | None:
    """First value of one of ``names`` in /proc/cpuinfo (Linux), or None."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                key, sep, value = line.partition(":")
                if sep and key.strip() in names:
                    return value.strip()
    except OSError:
        return None
    return None


@functools.lru_cache(maxsize=None)
def cpu_model() -> str:
    """The CPU's marketing name, e.g. ``'AMD EPYC 9B14'`` (``platform`` fallback off Linux)."""
    return _cpuinfo_field(("model name", "Model", "Hardware")) or platform.processor() or "unknown CPU"


@functools.lru_cache(maxsize=None)
def cpu_flags() -> frozenset[str]:
    """The CPU feature flags of /proc/cpuinfo (``flags`` on x86, ``Features`` on Arm); empty
    where that file does not exist."""
    value = _cpuinfo_field(("flags", "Features"))
    return frozenset(value.split()) if value else frozenset()


def cpu_capability() -> str:
    """The vector ISA PyTorch dispatches to on this CPU: ``'AVX2'``, ``'AVX512'``, ``'DEFAULT'``..."""
    return str(torch.backends.cpu.get_cpu_capability())


def _onednn_reports_bf16() -> bool:
    check = getattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", None)
    try:
        return bool(check()) if check is not None else False
    except RuntimeError:
        return False


@functools.lru_cache(maxsize=None)
def _native_bf16_cpu() -> bool:
    # oneDNN says "supported" for plain AVX512 too, where it emulates bf16; require the
    # instructions themselves when /proc/cpuinfo tells us which ones exist
    if not _onednn_reports_bf16():
        return False
    flags = cpu_flags()
    return bool(flags & _NATIVE_BF16_FLAGS) if flags else True


def native_bf16(device: str | torch.device = "cpu") -> bool:
    """True where ``device`` computes bf16 convolutions in hardware (see the module docstring)."""
    dev = torch.device(device)
    if dev.type == "cuda":
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported(including_emulation=False)
    if dev.type == "cpu":
        return _native_bf16_cpu()
    return False


def resolve_bf16(requested: bool | None, device: str | torch.device = "cpu") -> bool:
    """Whether to run in bf16 on ``device``: ``None`` (auto) is :func:`native_bf16`; ``True``
    is honoured, with one warning per device type where bf16 is emulated (it will be slower)."""
    if requested is None:
        return native_bf16(device)
    dev_type = torch.device(device).type
    if requested and not native_bf16(device) and dev_type not in _warned_slow_bf16:
        _warned_slow_bf16.add(dev_type)
        where = f"{cpu_model()} ({cpu_capability()})" if dev_type == "cpu" else dev_type
        warnings.warn(f"bf16 is emulated on {where}: it will be slower than fp32, not faster",
                      RuntimeWarning, stacklevel=2)
    return bool(requested)


def resolve_bf16_option(value: bool | str, device: str | torch.device = "cpu") -> bool:
    """An options file's ``bf16: true | false | auto`` on ``device`` (:func:`resolve_bf16`, with
    ``auto`` as ``None``)."""
    return value is not False and resolve_bf16(None if value == "auto" else bool(value), device)


def describe_device(device: str | torch.device = "cpu") -> str:
    """One line naming the device, its ISA/threads and its bf16 support (for logs and reports)."""
    dev = torch.device(device)
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            return f"{dev} (not available)"
        name = torch.cuda.get_device_name(dev)
        return f"{dev} {name}, native bf16: {'yes' if native_bf16(dev) else 'no'}"
    return (f"cpu {cpu_model()}, {cpu_capability()}, {torch.get_num_threads()} threads, "
            f"native bf16: {'yes' if native_bf16(dev) else 'no'}")
