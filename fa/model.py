"""The paper's model in one file: the network, its activations, the two learning rules,
the initial draws and one step of gradient descent.

A two-layer network of width ``p``, no biases, trained by full-batch gradient descent
on the mean squared error, for ``R`` networks stacked along a leading axis::

    f(x)   = (1/sqrt(p)) * sum_r beta_r psi(w_r . x)
    L      = (1/n) * sum_i (f(x_i) - y_i)^2
    H = X W^T,  A = psi(H),  D = psi'(H),  e = f(X) - y                 # (n, p) ... (n,)
    g_beta = (2 / (n sqrt(p))) A^T e + lam * beta                       # second layer
    G_W    = (2 / (n sqrt(p))) (D * (e v^T))^T X                       # first layer
    W <- W - eta G_W,   beta <- beta - eta g_beta

with ``v = beta`` for backpropagation (BP) and ``v = b``, a fixed random vector, for
feedback alignment (FA): that one vector is the only difference between the rules
(:data:`RULES`). Every entry of ``W``, ``beta`` and ``b`` is drawn i.i.d. N(0, 1)
(:func:`init`); inputs are not rescaled by ``1/sqrt(d)``. These conventions give the
paper's step sizes ``eta`` and strengths ``lam`` their meaning (docs/model.md).

:func:`step` is written against the Python array API standard (``xp``), so it runs on
numpy, array_api_strict, torch or cupy; it is the oracle of the fused CPU loops
(:mod:`fa._kernels`). :func:`step_rowspace` is the same step in the row space of ``X``:
``G_W = Delta^T X``, so ``H = X W^T`` moves by ``-eta K Delta`` with ``K = X X^T``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import numpy as np
from array_api_compat import array_namespace

# --- random streams ------------------------------------------------------------------
# A seed names one replica. Its data, initial weights, dropout masks, deep feedback
# matrices and mini-batch order come from separate streams, so that the student's width
# does not change its data, and BP and FA runs of one seed start alike.
DATA, INIT, DROPOUT, FEEDBACK, BATCHES = 0, 1, 2, 3, 4


def rng(seed: int, stream: int) -> np.random.Generator:
    """The generator of stream ``stream`` (``DATA``, ``INIT``, ...) for ``seed``."""
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(stream,)))


# --- activations -----------------------------------------------------------------------

@dataclass(frozen=True)
class Activation:
    """An activation ``psi`` and its derivative, as scalar and as array functions.

    Attributes
    ----------
    psi, dpsi : callable float -> float
        ``psi(h)`` and ``psi'(h)`` in plain arithmetic and ``math`` calls, so numba can
        compile them into the fused loops (no calls to other Python functions).
    psi_array, dpsi_array : callable (xp, H) -> array
        The same elementwise on an array ``H`` of the array-API namespace ``xp``.
    dpsi_of_psi : callable float -> float, optional
        ``psi'(h)`` as a function of ``a = psi(h)``: the fused loops then read
        ``A = psi(H)`` (computed by numpy) instead of evaluating ``psi`` themselves.
    unit_slope : bool, default False
        ``psi' = 1`` everywhere (linear): without dropout the first-layer step is then
        rank one, which the fused loops exploit.
    """

    psi: Callable[[float], float]
    dpsi: Callable[[float], float]
    psi_array: Callable
    dpsi_array: Callable
    dpsi_of_psi: Callable[[float], float] | None = None
    unit_slope: bool = False


def _sigmoid_array(xp, H):
    # sigmoid(h) = (1 + tanh(h/2)) / 2: no overflow for large |h|
    return (xp.tanh(H * 0.5) + 1.0) * 0.5


#: The activations by name. A new one is one more entry (docs/extending.md).
ACTIVATIONS: dict[str, Activation] = {
    "linear": Activation(
        psi=lambda h: h, dpsi=lambda h: 1.0,
        psi_array=lambda xp, H: H, dpsi_array=lambda xp, H: xp.ones_like(H), unit_slope=True),
    "relu": Activation(
        psi=lambda h: max(h, 0.0), dpsi=lambda h: 1.0 if h > 0.0 else 0.0,
        psi_array=lambda xp, H: xp.maximum(H, 0.0),
        dpsi_array=lambda xp, H: xp.astype(H > 0.0, H.dtype)),
    "tanh": Activation(
        psi=math.tanh, dpsi=lambda h: 1.0 - math.tanh(h) ** 2,
        psi_array=lambda xp, H: xp.tanh(H),
        dpsi_array=lambda xp, H: 1.0 - xp.tanh(H) ** 2,
        dpsi_of_psi=lambda a: 1.0 - a * a),
    "sigmoid": Activation(
        psi=lambda h: (math.tanh(h * 0.5) + 1.0) * 0.5,
        dpsi=lambda h: 0.25 * (1.0 - math.tanh(h * 0.5) ** 2),
        psi_array=_sigmoid_array,
        dpsi_array=lambda xp, H: 0.25 * (1.0 - xp.tanh(H * 0.5) ** 2),
        dpsi_of_psi=lambda a: a * (1.0 - a)),
}


def activation(name) -> Activation:
    """The :class:`Activation` called ``name``; ValueError listing the names if unknown."""
    if not isinstance(name, str) or name not in ACTIVATIONS:
        raise ValueError(f"The 'activation' parameter must be one of "
                         f"{', '.join(map(repr, ACTIVATIONS))}. Got {name!r} instead.")
    return ACTIVATIONS[name]


def psi(name: str, H):
    """``psi(H)`` for the activation ``name`` (any array-API array)."""
    return activation(name).psi_array(array_namespace(H), H)


# --- the learning rules ------------------------------------------------------------------

#: The vector ``v`` that carries the error back to the first layer, by rule.
RULES = {
    "fa": lambda beta, b: b,        # feedback alignment: the fixed random b
    "bp": lambda beta, b: beta,     # backpropagation: the second-layer weights
}


# --- initialisation and alignment ----------------------------------------------------------

def init(seeds, d: int, width: int, dtype="float64"):
    """Draw ``W`` (R, p, d), ``beta`` (R, p) and ``b`` (R, p), i.i.d. N(0, 1), per seed.

    In this order from each seed's stream ``INIT``, in float64 and then rounded to
    ``dtype``, so float32 runs start from the float64 ones.
    """
    draws = []
    for s in seeds:
        g = rng(s, INIT)
        draws.append((g.standard_normal((width, d)), g.standard_normal(width),
                      g.standard_normal(width)))
    W, beta, b = (np.stack(parts).astype(dtype) for parts in zip(*draws))
    return W, beta, b


def cosine(beta, b):
    """Alignment ``cos(beta, b) = beta . b / (|beta| |b|)`` along the last axis.

    Parameters
    ----------
    beta, b : ndarray of the same shape (..., p)
        Vectors along the last axis; leading axes are replicas.

    Returns
    -------
    float or ndarray of shape (...)
        The cosine of each pair, in [-1, 1].

    Raises
    ------
    ValueError
        If the shapes differ (broadcasting would pair vectors silently).
    """
    beta, b = np.asarray(beta), np.asarray(b)
    if beta.shape != b.shape:
        raise ValueError(f"The 'b' parameter of cosine must have the shape of beta, "
                         f"{beta.shape}. Got an array of shape {b.shape} instead.")
    num = np.sum(beta * b, axis=-1)
    return num / (np.linalg.norm(beta, axis=-1) * np.linalg.norm(b, axis=-1))


# --- one step ------------------------------------------------------------------------

def _signals(xp, H, y, beta, b, name, rule, lam, mask):
    """Loss before the step, ``Delta`` (with ``G_W = Delta^T X``) and ``g_beta``."""
    n, p = H.shape[-2], H.shape[-1]
    act = activation(name)
    A, D = act.psi_array(xp, H), act.dpsi_array(xp, H)                  # (R, n, p)
    f = (A @ beta[..., None])[..., 0] / math.sqrt(p)                    # (R, n)
    L = xp.mean((f - y) ** 2, axis=-1)                                  # (R,) full network
    if mask is not None:                       # inverted dropout: the thinned network
        A, D = A * mask, D * mask                                       # (R, n, p)
        f = (A @ beta[..., None])[..., 0] / math.sqrt(p)                # (R, n)
    e = f - y                                                           # (R, n)
    c = 2.0 / (n * math.sqrt(p))
    g_beta = c * (xp.matrix_transpose(A) @ e[..., None])[..., 0] + lam * beta   # (R, p)
    v = RULES[rule](beta, b)                   # the one difference between FA and BP
    Delta = c * D * (e[..., :, None] * v[..., None, :])                 # (R, n, p)
    return L, Delta, g_beta


def step(X, y, W, beta, b, *, activation, rule, eta, lam, mask=None):
    """One full-batch gradient-descent step on ``R`` stacked networks.

    Parameters
    ----------
    X : array (R or 1, n, d)
    y : array (R, n)
    W : array (R, p, d)
    beta, b : arrays (R, p)
    activation, rule : str
        Names in :data:`ACTIVATIONS` and :data:`RULES`.
    eta, lam : float
        Step size and L2 strength on ``beta`` for this step.
    mask : array (R, n, p), optional
        Inverted-dropout mask (0 or ``1/(1-q)``) for this step.

    Returns
    -------
    W, beta : arrays
        The parameters after the step.
    L : array (R,)
        The loss (of the full network) before the step.
    """
    xp = array_namespace(X, y, W, beta, b)
    H = X @ xp.matrix_transpose(W)                                      # (R, n, p)
    L, Delta, g_beta = _signals(xp, H, y, beta, b, activation, rule, lam, mask)
    G_W = xp.matrix_transpose(Delta) @ X                                # (R, p, d)
    return W - eta * G_W, beta - eta * g_beta, L


def step_rowspace(K, H, y, beta, b, *, activation, rule, eta, lam, mask=None):
    """:func:`step` in the row space of ``X``: ``H <- H - eta K Delta``, with ``K = X X^T``
    (R or 1, n, n) and ``H = X W^T`` (R, n, p); returns ``H, beta`` and ``L``."""
    xp = array_namespace(K, H, y, beta, b)
    L, Delta, g_beta = _signals(xp, H, y, beta, b, activation, rule, lam, mask)
    return H - eta * (K @ Delta), beta - eta * g_beta, L                # (R, n, p)


def rebuild_W(K, X, H, H0, W0):
    """``W = W_0 + C X`` with ``C^T = K^{-1} (H - H_0)``: one replica's ``W`` from its
    row-space state (``K`` invertible)."""
    Ct = np.linalg.solve(K, H - H0)                                     # (n, p)
    return Ct.T @ X + W0                                                # (p, d)
