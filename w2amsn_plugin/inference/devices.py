"""The compute device of an inference run, checked before any work."""
from __future__ import annotations

import torch

from .errors import InferenceError
from .settings import DEVICE_AUTO

__all__ = ["check_device"]


def check_device(device: str | torch.device) -> torch.device:
    """``device`` as a :class:`torch.device` this machine has, or one-line :class:`InferenceError`.
    ``auto`` is the current CUDA device where there is one, else the CPU."""
    if device == DEVICE_AUTO:
        device = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as err:
        raise InferenceError(f"device {device!r}: not a device (use auto, cpu, cuda or "
                             "cuda:N)") from err
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise InferenceError(f"device {device!r}: CUDA is not available in this torch "
                                 "build/machine")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise InferenceError(f"device {device!r}: this machine has "
                                 f"{torch.cuda.device_count()} CUDA device(s)")
        if dev.index is None:  # the current one, named: tensors report their index
            dev = torch.device("cuda", torch.cuda.current_device())
    elif dev.type != "cpu":
        raise InferenceError(f"device {device!r}: only cpu and cuda are supported")
    return dev
