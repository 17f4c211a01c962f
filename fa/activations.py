"""The activations psi of the paper and their derivatives psi'.

Each activation fills preallocated buffers in place, because the trainer calls
it on (replicas, n, p) arrays every step and fresh allocations of that size
would dominate the cost of a step.
"""

from __future__ import annotations

import numpy as np

ACTIVATIONS = ("linear", "relu", "tanh", "sigmoid")


def psi(name: str, H: np.ndarray) -> np.ndarray:
    """Return ``psi(H)`` for the activation ``name`` (a new array)."""
    A = np.empty_like(H)
    D = np.empty_like(H)
    psi_and_derivative(name, H, A, D)
    return A


def psi_and_derivative(name: str, H: np.ndarray, A: np.ndarray, D: np.ndarray) -> None:
    """Write ``A = psi(H)`` and ``D = psi'(H)`` into the buffers ``A`` and ``D``."""
    if name == "linear":
        np.copyto(A, H)
        D.fill(1.0)
    elif name == "relu":
        np.maximum(H, 0.0, out=A)
        np.greater(H, 0.0, out=D)
    elif name == "tanh":
        np.tanh(H, out=A)
        np.multiply(A, A, out=D)
        np.subtract(1.0, D, out=D)  # tanh' = 1 - tanh^2
    elif name == "sigmoid":
        # sigmoid(h) = (1 + tanh(h/2)) / 2: no overflow for large |h|.
        np.multiply(H, 0.5, out=A)
        np.tanh(A, out=A)
        A += 1.0
        A *= 0.5
        np.subtract(1.0, A, out=D)
        D *= A  # sigmoid' = sigmoid (1 - sigmoid)
    else:  # validated at the public boundary; this is a programming error
        raise AssertionError(f"unknown activation {name!r}")
