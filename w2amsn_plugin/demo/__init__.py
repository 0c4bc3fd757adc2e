"""The README's demo (``w2amsn demo``, ``bash scripts/demo.sh``; docs/demo.md): its data
(:mod:`.sources`), its steps (:mod:`.pipeline`) and its report (:mod:`.report`)."""
from __future__ import annotations

__all__: list[str] = []
