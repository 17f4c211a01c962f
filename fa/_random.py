"""Independent random streams per seed.

A seed ``s`` names one replica of an experiment. Its data, its network's
initial weights and feedback vector, and its dropout masks come from separate
streams ``SeedSequence(s, spawn_key=(stream,))``, so that, for example, the
first rows of ``X`` and of ``W`` are never the same numbers, and changing the
width of the student does not change the data.
"""

import numpy as np

DATA, INIT, DROPOUT = 0, 1, 2


def rng(seed: int, stream: int) -> np.random.Generator:
    """Return the generator of stream ``stream`` for seed ``seed``."""
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(stream,)))
