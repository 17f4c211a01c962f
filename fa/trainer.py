"""Full-batch gradient descent on a two-layer network by BP or FA.

The model and the update rules are exactly those of PAPER.md section 2::

    f(x)   = (1/sqrt(p)) * sum_r beta_r psi(w_r . x)
    L      = (1/n) * sum_i (f(x_i) - y_i)^2
    H = X W^T,  A = psi(H),  D = psi'(H),  e = f(X) - y          # all (n, p) but e
    g_beta = (2 / (n sqrt(p))) A^T e + lam * beta
    G_W    = (2 / (n sqrt(p))) (D * (e v^T))^T X,   v = beta (BP) or b (FA)

Two exact formulations of the same iteration are implemented:

``"direct"``
    keeps ``W`` and computes ``H = X W^T`` and ``G_W`` every step
    (about ``4 n d p`` flops per step).
``"rowspace"``
    uses that every first-layer update is ``(p x n) @ X``, so
    ``W_t = W_0 + C_t X``. With ``K = X X^T`` and ``H_0 = X W_0^T``,
    ``H_t = H_0 + K C_t^T``, so each step moves ``H`` by ``-K M`` with
    ``eta G_W = M^T X``: about ``2 n^2 p`` flops per step, 6x fewer for the
    paper's n = 50, d = 150. ``W = W_0 + (K^{-1} (H - H_0))^T X`` is rebuilt
    once at the end.

The elementwise work of a step (``A``, ``D``, ``g_beta``, ``M``) runs in two
compiled loops (:mod:`fa._kernels`). Many seeds (replicas) are trained as stacked
computations: every state array has a leading replica axis, and replicas that
stop (converged, diverged or at their step budget) are dropped from the stack.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import numpy as np
from threadpoolctl import threadpool_limits

from . import _kernels, _random
from ._validation import (check_finite_array, check_float, check_int, check_option,
                          check_seeds)
from .activations import ACTIVATIONS, psi_into

RULES = ("fa", "bp")
LAM_SCHEDULES = ("constant", "release", "decay")
CONVERGE_ON = ("loss", "alignment")
METHODS = ("auto", "rowspace", "direct")
DTYPES = ("float64", "float32")

#: A replica whose loss exceeds this multiple of its initial loss has diverged.
BLOWUP = 1e6
#: Default memory for one stacked chunk of replicas (bytes).
DEFAULT_MEMORY_BUDGET = 4 * 2**30
#: Working set of one stack of replicas per step (bytes), about a last-level cache.
CACHE_BYTES = 8 * 2**20


class DivergenceWarning(RuntimeWarning):
    """A replica's loss became non-finite or exploded; it was stopped."""


@dataclass
class TrainResult:
    """What one call of :func:`train` returns.

    With a sequence of seeds every array has a leading replica axis ``R``
    (``record_steps`` is shared). Replicas can stop at different steps
    (``until_converged`` or divergence): ``loss`` and ``alignment`` are padded
    with NaN after a replica's own ``steps``; those NaNs are padding, never data.

    Attributes
    ----------
    loss : ndarray, shape (T + 1,)
        Training loss (mean squared error) after ``t`` updates, ``t = 0..T``,
        where ``T`` is the largest number of steps taken by any replica.
        With dropout this is the loss of the full network (no units dropped).
    record_steps : ndarray of int, shape (K,)
        Steps at which the alignment was recorded: multiples of
        ``record_every`` and each replica's final step.
    alignment : ndarray, shape (K,)
        ``cos(beta, b)`` at ``record_steps``.
    steps : int
        Updates taken.
    diverged : bool
        True if the run was stopped because its loss became non-finite or
        exceeded ``BLOWUP`` times its initial value.
    W : ndarray, shape (p, d)
        Final first-layer weights (at the last finite step if diverged).
    beta : ndarray, shape (p,)
        Final second-layer weights.
    b : ndarray, shape (p,)
        The fixed random feedback vector.
    config : dict
        The arguments of the call (excluding the data).
    """

    loss: np.ndarray
    record_steps: np.ndarray
    alignment: np.ndarray
    steps: np.ndarray | int
    diverged: np.ndarray | bool
    W: np.ndarray
    beta: np.ndarray
    b: np.ndarray
    config: dict = field(default_factory=dict)

    @property
    def final_loss(self):
        """Loss at each replica's final step."""
        return _at_steps(self.loss, self.steps)

    @property
    def final_alignment(self):
        """``cos(beta, b)`` of the final parameters."""
        return cosine(self.beta, self.b)


def cosine(beta: np.ndarray, b: np.ndarray):
    """Alignment ``cos(beta, b) = beta . b / (|beta| |b|)`` along the last axis."""
    num = np.sum(beta * b, axis=-1)
    return num / (np.linalg.norm(beta, axis=-1) * np.linalg.norm(b, axis=-1))


def _at_steps(curve: np.ndarray, steps):
    if curve.ndim == 1:
        return curve[int(steps)]
    return curve[np.arange(curve.shape[0]), np.asarray(steps)]


def lam_at(t: int, lam: float, schedule: str, lam_until, lam_gamma) -> float:
    """The L2 strength at step ``t`` under a schedule of the paper's code.

    ``constant``: ``lam``; ``release``: ``lam`` for ``t < lam_until`` then 0
    ("regularise, then release"); ``decay``: ``lam * lam_gamma**t``.
    """
    if schedule == "constant":
        return lam
    if schedule == "release":
        return lam if t < lam_until else 0.0
    return lam * lam_gamma**t


def stopping_steps(steps: int, until_converged: bool, check_every: int,
                   max_steps: int | None) -> tuple[int, int]:
    """Return ``(first_check, cap)`` of the stopping protocol.

    Without ``until_converged`` a run takes exactly ``steps`` updates. With it
    (PAPER.md F3, the authors' code) a run takes at least ``steps`` updates,
    then checks every ``check_every`` steps whether the monitored quantity
    moved by less than ``tol`` since the previous check (the first check
    compares with 0), never going past ``max_steps`` (default ``10 * steps``).
    """
    if not until_converged:
        return steps, steps
    return steps, (10 * steps if max_steps is None else max_steps)


def train(X, y, *, width, activation="relu", rule="fa", lam=0.0, lr, steps, seed=0,
          record_every=1, lam_schedule="constant", lam_until=None, lam_gamma=None,
          dropout=0.0, until_converged=False, check_every=1000, tol=1e-3,
          converge_on="loss", max_steps=None, dtype="float64", method="auto",
          memory_budget=DEFAULT_MEMORY_BUDGET):
    """Train two-layer networks by full-batch gradient descent with BP or FA.

    Parameters
    ----------
    X : array of shape (n, d) or (R, n, d)
        Inputs, shared by all replicas or one data set per seed.
    y : array of shape (n,) or (R, n)
        Targets, matching ``X``.
    width : int
        Number of hidden units ``p``.
    activation : {"relu", "linear", "tanh", "sigmoid"}, default "relu"
        The activation ``psi``.
    rule : {"fa", "bp"}, default "fa"
        Feedback alignment (error sent back through the fixed random ``b``)
        or backpropagation (through ``beta``).
    lam : float, default 0.0
        L2 strength on ``beta`` (gradient ``+ lam * beta``).
    lr : float
        Step size ``eta``.
    steps : int
        Number of updates; with ``until_converged`` the minimum number.
    seed : int or sequence of int, default 0
        One seed trains one network; a sequence of ``R`` seeds trains ``R``
        independent networks (own ``W``, ``beta``, ``b``, dropout masks) as a
        stacked computation, and every returned array gains a leading
        replica axis. Results equal the replicas trained one at a time.
    record_every : int, default 1
        Record ``cos(beta, b)`` every this many steps (and at the end).
    lam_schedule : {"constant", "release", "decay"}, default "constant"
        ``release``: ``lam`` until step ``lam_until``, then 0.
        ``decay``: ``lam * lam_gamma**t``.
    lam_until : int, optional
        Step at which the L2 penalty is switched off (``release`` only).
    lam_gamma : float in (0, 1], optional
        Geometric decay factor per step (``decay`` only).
    dropout : float in [0, 1), default 0.0
        Inverted dropout rate ``q`` on the hidden activations during training
        steps (each unit kept with probability ``1 - q``, scaled by
        ``1/(1 - q)``). The recorded loss is that of the full network.
    until_converged : bool, default False
        The paper's stopping protocol (PAPER.md F3): after ``steps`` updates,
        check every ``check_every`` steps and stop once the monitored quantity
        changed by less than ``tol`` since the previous check (the first check
        compares with 0).
    check_every : int, default 1000
    tol : float, default 1e-3
    converge_on : {"loss", "alignment"}, default "loss"
        The monitored quantity (the dropout width sweep uses the alignment).
    max_steps : int, optional
        Hard cap with ``until_converged`` (default ``10 * steps``).
    dtype : {"float64", "float32"}, default "float64"
        Floating-point precision of the computation (the paper used float32).
    method : {"auto", "rowspace", "direct"}, default "auto"
        ``rowspace`` tracks ``W - W_0`` in the row space of ``X`` (cheaper when
        ``n < d``; needs linearly independent rows); ``direct`` updates ``W``.
        ``auto`` picks ``rowspace`` when it applies. Both give the same iterates
        up to round-off.
    memory_budget : int, default 4 GiB
        Bytes of memory for one stacked chunk (:func:`bytes_per_replica`); more
        replicas than fit are trained in consecutive chunks. Chunks are also kept
        to about a last-level cache (:func:`replicas_per_stack`) for speed; the
        chunking never changes the numbers.

    Returns
    -------
    TrainResult
        Loss per step, alignment per recorded step, final ``W``, ``beta``,
        ``b``, steps taken and divergence flags.

    Raises
    ------
    ValueError
        For any parameter outside its documented range or data of the wrong
        shape or with non-finite values.

    Warns
    -----
    DivergenceWarning
        Once per call if any replica diverged, with the step and a hint.

    Examples
    --------
    >>> X, y = make_data("teacher", 50, 150, width=400, activation="relu", seed=0)
    >>> res = train(X, y, width=400, activation="relu", rule="fa", lam=0.05,
    ...             lr=1e-2, steps=2000, seed=0, record_every=100)
    >>> res.loss.shape, res.alignment.shape
    ((2001,), (21,))
    """
    caller = "train"
    width = check_int(width, "width", caller, low=1)
    activation = check_option(activation, "activation", caller, ACTIVATIONS)
    rule = check_option(rule, "rule", caller, RULES)
    lam = check_float(lam, "lam", caller, low=0.0)
    lr = check_float(lr, "lr", caller, low=0.0, low_open=True)
    steps = check_int(steps, "steps", caller, low=1)
    seeds, stacked = check_seeds(seed, "seed", caller)
    record_every = check_int(record_every, "record_every", caller, low=1)
    lam_schedule = check_option(lam_schedule, "lam_schedule", caller, LAM_SCHEDULES)
    if lam_schedule == "release":
        lam_until = check_int(lam_until, "lam_until", caller, low=0)
    elif lam_until is not None:
        raise ValueError("The 'lam_until' parameter of train is only used with "
                         f"lam_schedule='release'. Got lam_until={lam_until!r} with "
                         f"lam_schedule={lam_schedule!r} instead.")
    if lam_schedule == "decay":
        lam_gamma = check_float(lam_gamma, "lam_gamma", caller, low=0.0, high=1.0,
                                low_open=True)
    elif lam_gamma is not None:
        raise ValueError("The 'lam_gamma' parameter of train is only used with "
                         f"lam_schedule='decay'. Got lam_gamma={lam_gamma!r} with "
                         f"lam_schedule={lam_schedule!r} instead.")
    dropout = check_float(dropout, "dropout", caller, low=0.0, high=1.0, high_open=True)
    if not isinstance(until_converged, (bool, np.bool_)):
        raise ValueError("The 'until_converged' parameter of train must be a bool. "
                         f"Got {until_converged!r} instead.")
    check_every = check_int(check_every, "check_every", caller, low=1)
    tol = check_float(tol, "tol", caller, low=0.0, low_open=True)
    converge_on = check_option(converge_on, "converge_on", caller, CONVERGE_ON)
    if max_steps is not None:
        max_steps = check_int(max_steps, "max_steps", caller, low=steps)
    dtype = check_option(str(np.dtype(dtype)) if _is_dtype(dtype) else dtype,
                         "dtype", caller, DTYPES)
    method = check_option(method, "method", caller, METHODS)
    memory_budget = check_int(memory_budget, "memory_budget", caller, low=1)

    X = check_finite_array(X, "X", caller, ndim=(2, 3))
    y = check_finite_array(y, "y", caller, ndim=(1, 2))
    R = len(seeds)
    _check_shapes(X, y, R)
    n, d = X.shape[-2:]
    invertible_K = n < d and bool(np.all(np.linalg.matrix_rank(X) == n))
    if method == "auto":
        method = "rowspace" if invertible_K else "direct"
    elif method == "rowspace" and not invertible_K:
        raise ValueError("The 'method' parameter of train can be 'rowspace' only when the "
                         "rows of X are linearly independent (K = X X^T invertible; needs "
                         f"n < d). Got method='rowspace' with X of shape {X.shape} instead.")

    config = dict(width=width, activation=activation, rule=rule, lam=lam, lr=lr,
                  steps=steps, record_every=record_every, lam_schedule=lam_schedule,
                  lam_until=lam_until, lam_gamma=lam_gamma, dropout=dropout,
                  until_converged=bool(until_converged), check_every=check_every,
                  tol=tol, converge_on=converge_on, max_steps=max_steps, dtype=dtype,
                  method=method)
    first_check, cap = stopping_steps(steps, bool(until_converged), check_every, max_steps)

    chunk = min(max_replicas(n, d, width, dtype=dtype, method=method,
                             memory_budget=memory_budget, steps=cap),
                replicas_per_stack(n, width, dtype=dtype))
    parts = []
    # One BLAS thread: the per-replica products are small (n x n by n x p), and a
    # multi-threaded BLAS spends more on synchronising than it gains (measured up to
    # 30x slower on 2 cores). Use processes (run_sweep's n_jobs) for parallelism.
    with threadpool_limits(limits=1, user_api="blas"):
        for start in range(0, R, chunk):
            idx = slice(start, start + chunk)
            Xc = X[idx] if X.ndim == 3 else X
            yc = y[idx] if y.ndim == 2 else y
            parts.append(_train_stack(Xc, yc, seeds[idx], config, first_check, cap))
    result = _concatenate(parts, config)

    if np.any(result.diverged):
        bad = np.flatnonzero(result.diverged)
        first = bad[np.argmin(result.steps[bad])]
        warnings.warn(
            f"{len(bad)} of {R} runs diverged (first: seed {seeds[first]} at step "
            f"{int(result.steps[first])}) with lr={lr}; they were stopped and marked "
            "in result.diverged. Lower 'lr'.", DivergenceWarning, stacklevel=2)
    if not stacked:
        result = _unstack(result)
    return result


def _is_dtype(dtype) -> bool:
    try:
        np.dtype(dtype)
    except TypeError:
        return False
    return not isinstance(dtype, str) or dtype in DTYPES


def _check_shapes(X, y, R):
    if X.ndim == 3 and X.shape[0] != R:
        raise ValueError(f"The 'X' parameter of train must have one data set per seed: "
                         f"a leading axis of {R}. Got an array of shape {X.shape} instead.")
    if y.ndim == 2 and y.shape[0] != R:
        raise ValueError(f"The 'y' parameter of train must have one target vector per seed: "
                         f"a leading axis of {R}. Got an array of shape {y.shape} instead.")
    if y.shape[-1] != X.shape[-2]:
        raise ValueError(f"The 'y' parameter of train must have one target per row of X "
                         f"({X.shape[-2]}). Got an array of shape {y.shape} instead.")


def bytes_per_replica(n: int, d: int, width: int, *, dtype="float64", method="rowspace",
                      steps: int = 0) -> int:
    """Peak memory of one replica in a stacked :func:`train` call (bytes).

    ``steps`` is the longest run (the cap with ``until_converged``): the loss of
    every step is kept, in float64.
    """
    itemsize = np.dtype(dtype).itemsize
    p = width
    if method == "rowspace":
        # H0, H, A (tanh, sigmoid), M, K M, a dropout mask (n x p each);
        # W0 and the returned W (p x d).
        floats = 6 * n * p + 2 * p * d
    else:
        # H, A, M, a dropout mask (n x p); W, G_W and the returned W (p x d).
        floats = 4 * n * p + 3 * p * d
    # W is drawn in float64 before the cast to dtype.
    return itemsize * (floats + n * d + n * n + 4 * p) + 8 * (p * d + steps + 1)


def max_replicas(n: int, d: int, width: int, *, dtype="float64", method="rowspace",
                 memory_budget: int = DEFAULT_MEMORY_BUDGET, steps: int = 0) -> int:
    """How many replicas fit in ``memory_budget`` bytes (at least one)."""
    per = bytes_per_replica(n, d, width, dtype=dtype, method=method, steps=steps)
    return max(1, memory_budget // per)


def replicas_per_stack(n: int, width: int, *, dtype="float64") -> int:
    """Replicas whose per-step (n, p) arrays fit in ``CACHE_BYTES`` (at least one).

    A step passes several times over up to six (n, p) arrays per replica; while a
    stack's arrays fit in the last-level cache those passes run at cache speed
    rather than memory speed (benchmarks/README.md). More replicas are trained one
    stack after another.
    """
    return max(1, CACHE_BYTES // (6 * n * width * np.dtype(dtype).itemsize))


def _init(seeds, n_dims: int, width: int, dtype):
    """Draw ``W``, ``beta``, ``b`` i.i.d. N(0, 1) for each seed (in float64, then cast)."""
    Ws, betas, bs = [], [], []
    for s in seeds:
        rng = _random.rng(s, _random.INIT)
        Ws.append(rng.standard_normal((width, n_dims)))
        betas.append(rng.standard_normal(width))
        bs.append(rng.standard_normal(width))
    return (np.stack(Ws).astype(dtype), np.stack(betas).astype(dtype),
            np.stack(bs).astype(dtype))


class _Stack:
    """State of the replicas still training, with the formulation's algebra.

    ``H`` always holds ``X W^T`` for the current ``W`` (R, n, p).
    """

    def __init__(self, X, W, method):
        self.method = method
        self.X = X                                   # (R|1, n, d)
        self.H = X @ np.swapaxes(W, 1, 2)            # (R, n, p)
        if method == "rowspace":
            # W_t = W_0 + C_t X, so H_t = H_0 + K C_t^T and each step moves H by
            # -K M: C itself is never needed until the end (see `weights`).
            self.W0 = W                              # (R, p, d)
            self.H0 = self.H.copy()                  # (R, n, p)
            self.K = X @ np.swapaxes(X, 1, 2)        # (R|1, n, n)
            self.T = np.empty_like(self.H)           # K M, (R, n, p)
        else:
            self.W = W                               # (R, p, d)
            self.G = np.empty_like(W)                # (R, p, d)

    def step_first_layer(self, M):
        """Apply ``W <- W - M^T X`` (``M`` already holds ``eta * G_W``'s left factor)."""
        if self.method == "rowspace":
            np.matmul(self.K, M, out=self.T)         # H <- H - K M   (2 n^2 p flops)
            self.H -= self.T
        else:
            np.matmul(np.swapaxes(M, 1, 2), self.X, out=self.G)   # (R, p, d)
            self.W -= self.G
            np.matmul(self.X, np.swapaxes(self.W, 1, 2), out=self.H)

    def weights_into(self, W_out, out_rows, rows):
        """Write the current ``W`` of stack rows ``rows`` into ``W_out[out_rows]``, in place."""
        for out_row, row in zip(out_rows, rows):
            out = W_out[out_row]                                         # (p, d) view
            if self.method == "rowspace":
                # C^T = K^{-1} (H - H0); K = X X^T is invertible (checked up front).
                K = self.K[row if self.K.shape[0] > 1 else 0]
                X = self.X[row if self.X.shape[0] > 1 else 0]
                Ct = np.linalg.solve(K, self.H[row] - self.H0[row])      # (n, p)
                np.matmul(Ct.T, X, out=out)
                out += self.W0[row]
            else:
                out[...] = self.W[row]

    def keep(self, mask):
        """Drop the replicas where ``mask`` is False."""
        if self.X.shape[0] > 1:
            self.X = self.X[mask]
        names = ("W0", "H0", "T", "H") if self.method == "rowspace" else ("W", "H", "G")
        for name in names:
            setattr(self, name, getattr(self, name)[mask])
        if self.method == "rowspace" and self.K.shape[0] > 1:
            self.K = self.K[mask]


def _train_stack(X, y, seeds, cfg, first_check, cap):
    """Train the replicas ``seeds`` as one stack (inputs already validated)."""
    dtype = np.dtype(cfg["dtype"])
    R = len(seeds)
    n, d = X.shape[-2:]
    p = cfg["width"]
    X = np.asarray(X, dtype=dtype).reshape(-1, n, d)            # (R|1, n, d)
    Y = np.broadcast_to(np.asarray(y, dtype=dtype), (R, n)).copy()  # (R, n)
    W, beta, b = _init(seeds, d, p, dtype)
    state = _Stack(X, W, cfg["method"])
    rule, act, lr = cfg["rule"], cfg["activation"], cfg["lr"]
    q = cfg["dropout"]
    drop_rngs = [_random.rng(s, _random.DROPOUT) for s in seeds] if q > 0 else None
    c = 2.0 / (n * np.sqrt(p))

    # Outputs for all replicas of this stack; `live` maps stack rows to them.
    loss = np.full((R, cap + 1), np.nan)
    grid = np.arange(0, cap + 1, cfg["record_every"])
    alignment = np.full((R, grid.size), np.nan)
    off_grid = {}                       # final steps off the recording grid: t -> (R,)
    out_steps = np.zeros(R, dtype=int)
    diverged = np.zeros(R, dtype=bool)
    W_out = np.empty((R, p, d), dtype=dtype)
    beta_out = np.empty((R, p), dtype=dtype)
    b_out = b.copy()
    live = np.arange(R)
    previous = np.zeros(R)              # monitored value at the previous check
    reads_A = act in _kernels.READS_A
    A = np.empty_like(state.H) if reads_A else None   # psi(H), for tanh and sigmoid
    M = np.empty_like(state.H)          # eta * c * D * (e v^T), so that eta * G_W = M^T X
    f = np.empty((R, n), dtype=dtype)   # network outputs
    g = np.empty(p, dtype=dtype)        # work buffer of the backward loop
    forward, _ = _kernels.loops(act, masked=False)
    forward_dropped, backward = _kernels.loops(act, masked=q > 0)
    mask, scale = _kernels.NO_MASK, 1.0 / np.sqrt(p)

    with np.errstate(over="ignore", invalid="ignore"):
        t = 0
        while True:
            if reads_A:
                psi_into(act, state.H, A)                               # (R, n, p)
            Z = A if reads_A else state.H
            forward(Z, _kernels.NO_MASK, beta, scale, f)                # f = psi(H) beta / sqrt(p)
            e = f - Y                                                   # (R, n)
            L = np.mean(e * e, axis=1)                                  # (R,)
            loss[live, t] = L
            if t % cfg["record_every"] == 0:
                alignment[live, t // cfg["record_every"]] = cosine(beta, b)

            # Which replicas stop here, before taking step t + 1.
            bad = ~np.isfinite(L) | (L > BLOWUP * loss[live, 0])
            done = bad.copy()
            if t >= cap or (t >= first_check and not cfg["until_converged"]):
                done[:] = True
            elif cfg["until_converged"] and t >= first_check \
                    and (t - first_check) % cfg["check_every"] == 0:
                watched = L if cfg["converge_on"] == "loss" else cosine(beta, b)
                done |= np.abs(watched - previous[live]) < cfg["tol"]
                previous[live] = watched
            if np.any(done):
                rows = live[done]
                out_steps[rows] = t
                diverged[rows] = bad[done]
                loss[rows, t] = np.where(np.isfinite(L[done]), L[done], np.nan)
                if t % cfg["record_every"]:
                    off_grid.setdefault(t, np.full(R, np.nan))[rows] = \
                        cosine(beta[done], b[done])
                state.weights_into(W_out, rows, np.flatnonzero(done))
                beta_out[rows] = beta[done]
                keep = ~done
                live = live[keep]
                if live.size == 0:
                    break
                state.keep(keep)
                beta, b, Y, e, f = beta[keep], b[keep], Y[keep], e[keep], f[keep]
                M = M[keep]
                A = A[keep] if reads_A else None
                Z = A if reads_A else state.H
                if drop_rngs is not None:
                    drop_rngs = [g for g, k in zip(drop_rngs, keep) if k]

            # One step of gradient descent on the live replicas.
            if q > 0:
                # Inverted dropout: psi(H) and psi'(H) see the same mask, scaled by
                # 1/(1-q); the error is that of the thinned network.
                mask = np.stack([r.random((n, p)) >= q for r in drop_rngs])
                mask = mask * dtype.type(1.0 / (1.0 - q))              # (R, n, p)
                forward_dropped(Z, mask, beta, scale, f)
                e = f - Y
            v = b if rule == "fa" else beta                 # the one FA/BP difference
            lam_t = lam_at(t, cfg["lam"], cfg["lam_schedule"], cfg["lam_until"],
                           cfg["lam_gamma"])
            # beta -= eta (c A^T e + lam beta);  M = eta c psi'(H) * (e v^T)   (fa._kernels)
            backward(Z, mask, e, v, beta, c, lr, lam_t, M, g)
            state.step_first_layer(M)
            t += 1

    used = int(out_steps.max())
    on_grid = grid <= used
    record_steps, alignment = grid[on_grid], alignment[:, on_grid]
    if off_grid:
        extra = np.array(sorted(off_grid))
        merged = np.union1d(record_steps, extra)
        full = np.full((R, merged.size), np.nan)
        full[:, np.searchsorted(merged, record_steps)] = alignment
        for t_, values in off_grid.items():
            column = np.searchsorted(merged, t_)
            full[:, column] = np.where(np.isnan(values), full[:, column], values)
        record_steps, alignment = merged, full
    return TrainResult(loss=loss[:, :used + 1], record_steps=record_steps,
                       alignment=alignment, steps=out_steps, diverged=diverged,
                       W=W_out, beta=beta_out, b=b_out, config=dict(cfg))


def _concatenate(parts, config):
    if len(parts) == 1:
        return parts[0]
    T = max(p.loss.shape[1] for p in parts)
    rec = np.unique(np.concatenate([p.record_steps for p in parts]))

    def pad_loss(p):
        out = np.full((p.loss.shape[0], T), np.nan)
        out[:, :p.loss.shape[1]] = p.loss
        return out

    def pad_alignment(p):
        out = np.full((p.alignment.shape[0], rec.size), np.nan)
        out[:, np.searchsorted(rec, p.record_steps)] = p.alignment
        return out

    return TrainResult(
        loss=np.concatenate([pad_loss(p) for p in parts]),
        record_steps=rec,
        alignment=np.concatenate([pad_alignment(p) for p in parts]),
        steps=np.concatenate([p.steps for p in parts]),
        diverged=np.concatenate([p.diverged for p in parts]),
        W=np.concatenate([p.W for p in parts]),
        beta=np.concatenate([p.beta for p in parts]),
        b=np.concatenate([p.b for p in parts]),
        config=config)


def _unstack(r: TrainResult) -> TrainResult:
    return TrainResult(loss=r.loss[0], record_steps=r.record_steps,
                       alignment=r.alignment[0], steps=int(r.steps[0]),
                       diverged=bool(r.diverged[0]), W=r.W[0], beta=r.beta[0], b=r.b[0],
                       config=r.config)
