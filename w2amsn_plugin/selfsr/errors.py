"""The one error type of ``w2amsn self-sr``: a problem the user can fix, said in one line."""
from __future__ import annotations

__all__ = ["SelfSRError"]


class SelfSRError(ValueError):
    """A user-caused problem with the scan or the options (the command prints it and exits 2)."""
