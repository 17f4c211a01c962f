"""Independent random streams per seed.

A seed ``s`` names one replica of an experiment. Its data, its network's
initial weights and feedback vector, and its dropout masks come from separate
streams ``SeedSequence(s, spawn_key=(stream,))``, so that, for example, the
first rows of ``X`` and of ``W`` are never the same numbers, and changing the
width of the student does not change the data.

The deep networks of F4 (:mod:`fa.deep`) draw their forward weights from ``INIT``,
their feedback matrices from ``FEEDBACK`` and their mini-batch order from
``BATCHES``; the data of F4 is MNIST, not drawn.
"""

import numpy as np

DATA, INIT, DROPOUT, FEEDBACK, BATCHES = 0, 1, 2, 3, 4


def rng(seed: int, stream: int) -> np.random.Generator:
    """Return the generator of stream ``stream`` for seed ``seed``."""
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(stream,)))
