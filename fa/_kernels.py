"""The elementwise work of one training step, fused into two compiled loops (numba).

Per step every replica ``r`` needs, with ``A = psi(H)`` and ``D = psi'(H)``::

    f     = A beta / sqrt(p)                       # forward: the outputs, then e = f - y
    g     = c * A^T e                              # backward: second-layer gradient,
    beta <- beta - eta * (g + lam * beta)          #   its step,
    M     = eta * c * D * (e v^T)                  #   and the first-layer factor (eta G_W = M^T X)

As numpy expressions that is about a dozen passes over the (n, p) arrays (``A``,
``D`` and ``M`` each written and read back). Here ``forward`` reads one (n, p)
array and ``backward`` reads it again and writes ``M``. For relu and linear that
array is ``H`` itself (``psi`` and ``psi'`` are cheap to recompute); for tanh and
sigmoid it is ``A``, computed by numpy (whose ``tanh`` is vectorised), and ``psi'``
is taken from ``psi``'s output: ``1 - a^2`` and ``a (1 - a)``. Both come from the
one table of :mod:`fa.model`: the scalar ``psi``/``dpsi`` (or ``dpsi_of_psi``)
of an entry are compiled into its loops.

For an activation with ``psi' = 1`` (linear) and no dropout, ``M = eta c e v^T`` is rank
one, so the row-space update ``H <- H - K M`` is ``H <- H - w v^T`` with
``w = eta c K e``: ``backward_rank_one`` applies it in the pass that reads ``H`` for
``g``, with no ``M`` written and no ``n x n x p`` product (about 3x fewer passes over
``H`` per step).

numba compiles one pair of loops per activation (with and without a dropout mask)
on first use in each process, in about a second. benchmarks/README.md has the numbers.
"""

from __future__ import annotations

import numba
import numpy as np

from .model import Activation

#: Stands for "no dropout mask" (the mask argument is then never read).
NO_MASK = np.empty((0, 0, 0))

# Reassociation lets the compiler vectorise the loops; no fast-math assumptions
# about NaN or inf, which the divergence check relies on.
_FLAGS = dict(fastmath={"reassoc", "contract", "nsz", "arcp"}, nogil=True)


def reads_A(activation: Activation) -> bool:
    """Whether the loops of ``activation`` read ``A = psi(H)`` (else ``H``)."""
    return activation.dpsi_of_psi is not None


def _pair(activation: Activation):
    """``z -> (psi, psi')`` compiled from the table entry, ``z`` the array the loops read."""
    if reads_A(activation):
        dpsi = numba.njit(inline="always")(activation.dpsi_of_psi)

        @numba.njit(inline="always")
        def pair(a):
            return a, dpsi(a)
    else:
        psi = numba.njit(inline="always")(activation.psi)
        dpsi = numba.njit(inline="always")(activation.dpsi)

        @numba.njit(inline="always")
        def pair(h):
            return psi(h), dpsi(h)
    return pair


def _compile(pair, masked: bool):
    # One pair of functions per (activation, mask): no branch on either in the inner loops.
    @numba.njit(**_FLAGS)
    def forward(Z, mask, beta, scale, f):
        R, n, p = Z.shape
        for r in range(R):
            for i in range(n):
                s = 0.0
                for j in range(p):
                    a, _ = pair(Z[r, i, j])
                    if masked:
                        a *= mask[r, i, j]
                    s += a * beta[r, j]
                f[r, i] = scale * s

    @numba.njit(**_FLAGS)
    def backward(Z, mask, e, v, beta, c, lr, lam, M, g):
        R, n, p = Z.shape
        for r in range(R):
            g[:] = 0.0
            for i in range(n):
                e_i = e[r, i]
                s = lr * c * e_i
                for j in range(p):
                    a, d = pair(Z[r, i, j])
                    if masked:
                        a *= mask[r, i, j]
                        d *= mask[r, i, j]
                    g[j] += a * e_i
                    M[r, i, j] = s * d * v[r, j]
            for j in range(p):
                beta[r, j] -= lr * (c * g[j] + lam * beta[r, j])

    return forward, backward


def _compile_rank_one(pair):
    @numba.njit(**_FLAGS)
    def backward_rank_one(H, e, w, v, beta, c, lr, lam, g):
        R, n, p = H.shape
        for r in range(R):
            g[:] = 0.0
            for i in range(n):
                e_i, w_i = e[r, i], w[r, i]
                for j in range(p):
                    h = H[r, i, j]
                    a, _ = pair(h)
                    g[j] += a * e_i
                    H[r, i, j] = h - w_i * v[r, j]
            for j in range(p):
                beta[r, j] -= lr * (c * g[j] + lam * beta[r, j])

    return backward_rank_one


_COMPILED = {}


def loops(activation: Activation, masked: bool):
    """``(forward, backward)`` for ``activation``, compiled on first use in this process.

    ``Z`` is ``A = psi(H)`` if :func:`reads_A`, else ``H``.
    ``forward(Z, mask, beta, scale, f)`` writes
    ``f[r, i] = scale * sum_j A[r, i, j] (* mask) * beta[r, j]``.
    ``backward(Z, mask, e, v, beta, c, lr, lam, M, g)`` writes
    ``M = lr * c * D (* mask) * (e v^T)`` and updates
    ``beta -= lr * (c * (A (* mask))^T e + lam * beta)`` in place; ``v`` (``b`` for
    FA, ``beta`` for BP) is read before ``beta`` changes; ``g`` is a (p,) buffer.
    """
    key = (activation, bool(masked))     # the entry itself: a re-registered name recompiles
    if key not in _COMPILED:
        _COMPILED[key] = _compile(_pair(activation), bool(masked))
    return _COMPILED[key]


def rank_one_loop(activation: Activation):
    """``backward_rank_one`` for an ``activation`` with ``unit_slope``, compiled on first use.

    ``backward_rank_one(H, e, w, v, beta, c, lr, lam, g)`` updates
    ``beta -= lr * (c * psi(H)^T e + lam * beta)`` and ``H -= w v^T`` in place, reading
    ``v`` (``b`` for FA, ``beta`` for BP) before ``beta`` changes; ``g`` is a (p,) buffer.
    """
    if not activation.unit_slope:
        raise ValueError("rank_one_loop needs an activation with unit_slope=True (psi' = 1).")
    key = (activation, "rank_one")
    if key not in _COMPILED:
        _COMPILED[key] = _compile_rank_one(_pair(activation))
    return _COMPILED[key]
