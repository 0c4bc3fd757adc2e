"""The one-line error and the warning of whole-volume inference."""
from __future__ import annotations

__all__ = ["InferenceError", "InferenceWarning"]


class InferenceError(ValueError):
    """A user-caused problem (bad file, options or arguments), reported as one line."""


class InferenceWarning(UserWarning):
    """Something a result's user should know (voxel size far from the training data's, small
    slices, clipped voxel values); also listed in the sidecar's ``warnings``."""
