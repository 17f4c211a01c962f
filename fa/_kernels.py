"""The elementwise work of one training step, fused into two compiled loops (numba).

Per step every replica ``r`` needs, with ``A = psi(H)`` and ``D = psi'(H)``::

    f     = A beta / sqrt(p)                       # forward: the outputs, then e = f - y
    g     = c * A^T e                              # backward: second-layer gradient,
    beta <- beta - eta * (g + lam * beta)          #   its step,
    M     = eta * c * D * (e v^T)                  #   and the first-layer factor (eta G_W = M^T X)

In numpy that is about a dozen passes over the (n, p) arrays; here ``forward`` reads
one (n, p) array and ``backward`` reads it again and writes ``M``. That array is ``H``
(relu, linear) or ``A`` for an entry of :data:`fa.model.ACTIVATIONS` with
``dpsi_of_psi`` (tanh, sigmoid). For ``psi' = 1`` without dropout ``M`` is rank one and
``backward_rank_one`` applies ``H <- H - K M = H - w v^T`` (``w = eta c K e``) in the
pass that reads ``H``. benchmarks/README.md has the numbers.
"""

from __future__ import annotations

import numba
import numpy as np
from array_api_compat import numpy as _npx
from scipy.linalg import blas

from . import model
from .model import RULES, Activation, cosine

_GEMM = {np.dtype("float64"): blas.dgemm, np.dtype("float32"): blas.sgemm}

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
    ``beta -= lr * (c * (A (* mask))^T e + lam * beta)`` in place, reading ``v`` first;
    ``g`` is a (p,) buffer.
    """
    key = (activation, bool(masked))     # the entry itself: a re-registered name recompiles
    if key not in _COMPILED:
        _COMPILED[key] = _compile(_pair(activation), bool(masked))
    return _COMPILED[key]


def rank_one_loop(activation: Activation):
    """``backward_rank_one(H, e, w, v, beta, c, lr, lam, g)`` for an ``activation`` with
    ``unit_slope``, compiled on first use: it updates ``beta -= lr * (c * psi(H)^T e +
    lam * beta)`` and ``H -= w v^T`` in place, reading ``v`` first.
    """
    if not activation.unit_slope:
        raise ValueError("rank_one_loop needs an activation with unit_slope=True (psi' = 1).")
    key = (activation, "rank_one")
    if key not in _COMPILED:
        _COMPILED[key] = _compile_rank_one(_pair(activation))
    return _COMPILED[key]


# --- the engine: the replicas of a stack stepped by these loops ----------------------

class Fused:
    """The replicas still training, stepped by the compiled loops; ``H`` always holds
    ``X W^T`` (R, n, p) for the current ``W``."""

    def __init__(self, X, y, W, beta, b, cfg):
        R, p, d = W.shape
        n = X.shape[-2]
        self.X = np.asarray(X, dtype=W.dtype).reshape(-1, n, d)          # (R|1, n, d)
        self.Y = np.broadcast_to(np.asarray(y, dtype=W.dtype), (R, n)).copy()   # (R, n)
        self.beta, self.b = beta, b                                       # (R, p)
        self.method = cfg["method"]
        self.H = self.X @ np.swapaxes(W, 1, 2)                            # (R, n, p)
        if self.method == "rowspace":
            # W_t = W_0 + C_t X, so each step moves H by -K M; W is rebuilt in `params`.
            self.W0 = W                                                   # (R, p, d)
            self.H0 = self.H.copy()                                       # (R, n, p)
            self.K = self.X @ np.swapaxes(self.X, 1, 2)                   # (R|1, n, n)
        else:
            self.W = W                                                    # (R, p, d)
            self.G = np.empty_like(W)                                     # (R, p, d)
        self.act = model.activation(cfg["activation"])
        self.reads_A = reads_A(self.act)
        self.A = None                   # psi(H), for activations whose loops read it
        self.M = np.empty_like(self.H)  # eta * c * D * (e v^T), so that eta * G_W = M^T X
        self.f = np.empty((R, n), dtype=W.dtype)    # network outputs
        self.g = np.empty(p, dtype=W.dtype)         # work buffer of the backward loop
        self.forward, _ = loops(self.act, masked=False)
        self.forward_dropped, self.backward = loops(self.act,
                                                             masked=cfg["dropout"] > 0)
        # psi' = 1 and no dropout: the step of H is the rank-one w v^T.
        self.rank_one = (self.act.unit_slope and self.method == "rowspace"
                         and not cfg["dropout"] > 0)
        if self.rank_one:
            self.backward_rank_one = rank_one_loop(self.act)
        self.scale, self.c = 1.0 / np.sqrt(p), 2.0 / (n * np.sqrt(p))
        self.lr, self.rule = cfg["lr"], cfg["rule"]

    def loss(self, mask, lam_t):
        """The loss of the full network before the next update (R,)."""
        if self.reads_A:
            self.A = self.act.psi_array(_npx, self.H)                    # (R, n, p)
        Z = self.A if self.reads_A else self.H
        self.forward(Z, NO_MASK, self.beta, self.scale, self.f)  # f = psi(H) beta / sqrt(p)
        self.e = self.f - self.Y                                          # (R, n)
        return np.mean(self.e * self.e, axis=1)

    def alignment(self):
        return cosine(self.beta, self.b)

    def step(self, mask, lam_t):
        """One update with the L2 strength ``lam_t`` (and dropout ``mask``, if any)."""
        Z = self.A if self.reads_A else self.H
        if mask is not None:
            # psi(H) and psi'(H) see the same mask; the error is that of the thinned network.
            self.forward_dropped(Z, mask, self.beta, self.scale, self.f)
            self.e = self.f - self.Y
        v = RULES[self.rule](self.beta, self.b)
        if self.rank_one:
            # K M = eta c (K e) v^T: H <- H - w v^T, beta as below, in one pass over H.
            w = np.matmul(self.K, self.e[..., None])[..., 0] * (self.lr * self.c)   # (R, n)
            self.backward_rank_one(self.H, self.e, w, v, self.beta, self.c, self.lr, lam_t,
                                   self.g)
            return
        # beta -= eta (c A^T e + lam beta);  M = eta c psi'(H) * (e v^T)
        self.backward(Z, NO_MASK if mask is None else mask, self.e, v, self.beta,
                      self.c, self.lr, lam_t, self.M, self.g)
        if self.method == "rowspace":
            _subtract_product(self.H, self.K, self.M)   # H <- H - K M   (2 n^2 p flops)
        else:
            np.matmul(np.swapaxes(self.M, 1, 2), self.X, out=self.G)     # (R, p, d)
            self.W -= self.G
            np.matmul(self.X, np.swapaxes(self.W, 1, 2), out=self.H)

    def params(self, rows):
        """``W``, ``beta`` of the stack rows ``rows`` (a boolean mask)."""
        if self.method == "direct":
            return self.W[rows], self.beta[rows]
        W = [model.rebuild_W(self.K[r % len(self.K)], self.X[r % len(self.X)], self.H[r],
                             self.H0[r], self.W0[r])
             for r in np.flatnonzero(rows)]
        return np.stack(W), self.beta[rows]

    def keep(self, mask):
        """Drop the replicas where ``mask`` is False."""
        names = ["H", "M", "Y", "e", "f", "beta", "b"]
        names += ["W0", "H0"] if self.method == "rowspace" else ["W", "G"]
        names += ["A"] if self.reads_A else []
        names += [k for k in ("X", "K") if getattr(self, k, None) is not None
                  and getattr(self, k).shape[0] > 1]
        for name in names:
            setattr(self, name, getattr(self, name)[mask])


def _subtract_product(H, K, M) -> None:
    """``H[r] -= K[r] @ M[r]`` in place (``K`` may be shared): one BLAS ``gemm`` per
    replica on the C-ordered ``H[r]`` seen as the Fortran-ordered ``H[r]^T`` (numpy's
    matmul would take two more passes over the (n, p) arrays)."""
    gemm = _GEMM[H.dtype]
    for r in range(H.shape[0]):
        Ht = H[r].T
        out = gemm(-1.0, M[r].T, K[r if K.shape[0] > 1 else 0].T, 1.0, Ht, overwrite_c=True)
        if not np.shares_memory(out, Ht):   # BLAS copied after all: write the result back
            Ht[...] = out
