"""The activations psi of the paper.

``psi_into`` fills a preallocated buffer, because the trainer calls it on
(replicas, n, p) arrays every step and fresh allocations of that size would
dominate the cost of a step. The derivative psi' is taken from psi's output
inside the trainer's fused loop (:mod:`fa._kernels`).
"""

from __future__ import annotations

import numpy as np

ACTIVATIONS = ("linear", "relu", "tanh", "sigmoid")


def psi(name: str, H: np.ndarray) -> np.ndarray:
    """Return ``psi(H)`` for the activation ``name`` (a new array)."""
    A = np.empty_like(H)
    psi_into(name, H, A)
    return A


def psi_into(name: str, H: np.ndarray, A: np.ndarray) -> None:
    """Write ``A = psi(H)`` into the buffer ``A``."""
    if name == "linear":
        np.copyto(A, H)
    elif name == "relu":
        np.maximum(H, 0.0, out=A)
    elif name == "tanh":
        np.tanh(H, out=A)
    elif name == "sigmoid":
        # sigmoid(h) = (1 + tanh(h/2)) / 2: no overflow for large |h|.
        np.multiply(H, 0.5, out=A)
        np.tanh(A, out=A)
        A += 1.0
        A *= 0.5
    else:  # validated at the public boundary; this is a programming error
        raise AssertionError(f"unknown activation {name!r}")
