"""One gradient-descent step of the two-layer network, as the paper writes it.

The model, loss and updates (docs/model.md), for ``R`` networks stacked along a
leading axis::

    f(x)   = (1/sqrt(p)) * sum_r beta_r psi(w_r . x)
    L      = (1/n) * sum_i (f(x_i) - y_i)^2
    H = X W^T,  A = psi(H),  D = psi'(H),  e = f(X) - y
    g_beta = (2 / (n sqrt(p))) A^T e + lam * beta
    G_W    = (2 / (n sqrt(p))) (D * (e v^T))^T X,    v = b (FA) or beta (BP)
    W <- W - eta G_W,   beta <- beta - eta g_beta

The code is written against the Python array API standard (``xp`` is the
arrays' namespace), so the same lines run on numpy, array_api_strict, torch or
cupy. It is the oracle the fused trainer (:mod:`fa._kernels`) is tested against
and the trainer's array-API backend (``fa.train(..., backend=...)``).

:func:`step` is the direct formulation. :func:`step_rowspace` is the same step
in the row space of ``X``: every first-layer update is ``G_W = Delta^T X``, so
``H = X W^T`` moves by ``-eta K Delta`` with ``K = X X^T`` and ``W`` is never
formed (:mod:`fa.trainer` rebuilds it at the end).
"""

from __future__ import annotations

import math

from array_api_compat import array_namespace

from .activations import get as get_activation

#: The learning rules: the vector ``v`` that carries the error back to the first layer.
RULES = {
    "fa": lambda beta, b: b,        # feedback alignment: the fixed random b
    "bp": lambda beta, b: beta,     # backpropagation: the second-layer weights
}


def _signals(xp, H, y, beta, b, activation, rule, lam, mask):
    """Loss before the step, ``Delta`` (``G_W = Delta^T X``) and ``g_beta``."""
    n, p = H.shape[-2], H.shape[-1]
    act = get_activation(activation)
    A, D = act.psi_array(xp, H), act.dpsi_array(xp, H)                  # (R, n, p)
    f = (A @ beta[..., None])[..., 0] / math.sqrt(p)                    # (R, n)
    L = xp.mean((f - y) ** 2, axis=-1)                                  # (R,) full network
    if mask is not None:                       # inverted dropout: thinned network
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
    activation : str
        A name in :data:`fa.activations.ACTIVATIONS`.
    rule : str
        A name in :data:`RULES`.
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
    """:func:`step` in the row space of ``X``: ``H <- H - eta K Delta``.

    ``K = X X^T`` (R or 1, n, n) and ``H = X W^T`` (R, n, p) stand for ``X`` and ``W``;
    returns ``H, beta`` after the step and the loss ``L`` before it.
    """
    xp = array_namespace(K, H, y, beta, b)
    L, Delta, g_beta = _signals(xp, H, y, beta, b, activation, rule, lam, mask)
    return H - eta * (K @ Delta), beta - eta * g_beta, L                # (R, n, p)
