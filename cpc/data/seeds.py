"""Seeds mixed from integers, so every random draw is a function of named positions."""

from __future__ import annotations

import numpy as np


def mix_seed(*parts: int) -> int:
    """A 63-bit seed mixing integers (numpy's ``SeedSequence``), for torch generators."""
    state = np.random.SeedSequence([int(p) for p in parts]).generate_state(2, np.uint32)
    return int(state[0]) << 31 | int(state[1]) >> 1
