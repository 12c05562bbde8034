"""Seeds mixed from integers, so every random draw is a function of named positions."""

from __future__ import annotations

import numpy as np

from cpc.errors import ConfigError


def mix_seed(*parts: int) -> int:
    """A 63-bit seed mixing integers (numpy's ``SeedSequence``), for torch generators."""
    state = np.random.SeedSequence([int(p) for p in parts]).generate_state(2, np.uint32)
    return int(state[0]) << 31 | int(state[1]) >> 1


#: The largest seed a generator, probe or k-means accepts (scikit-learn's and numpy's
#: legacy limit, so one range holds everywhere).
MAX_SEED = 2**32 - 1


def check_seed(seed: int, name: str = "seed") -> int:
    """``seed`` if it is an integer in ``[0, MAX_SEED]``.

    Raises:
        ConfigError: Naming ``name`` and the range.

    """
    is_int = isinstance(seed, int | np.integer) and not isinstance(seed, bool)
    if not (is_int and 0 <= seed <= MAX_SEED):
        raise ConfigError(f"{name} must be an integer in [0, {MAX_SEED}], got {seed!r}")
    return int(seed)
