"""Full-batch gradient descent on a two-layer network by BP or FA.

The model and the update rules are those of docs/model.md, written out as code in
:mod:`fa.model`::

    H = X W^T,  A = psi(H),  D = psi'(H),  e = f(X) - y          # all (n, p) but e
    g_beta = (2 / (n sqrt(p))) A^T e + lam * beta
    G_W    = (2 / (n sqrt(p))) (D * (e v^T))^T X,   v = beta (BP) or b (FA)

Two implementations, checked against each other (tests/test_reference.py):

* the default: numpy with the elementwise work of a step (``A``, ``D``, ``g_beta``,
  ``M``) in two compiled loops (:mod:`fa._kernels`), on one BLAS thread;
* the array-API code of :mod:`fa.model` (``method="reference"``, or any
  ``backend=``: numpy, array_api_strict, torch, cupy, on any of their devices).

Each runs one of two exact formulations of the same iteration:

``"direct"``
    keeps ``W`` and computes ``H = X W^T`` and ``G_W`` every step
    (about ``4 n d p`` flops per step).
``"rowspace"``
    uses that every first-layer update is ``(p x n) @ X``, so
    ``W_t = W_0 + C_t X``. With ``K = X X^T``, each step moves ``H`` by ``-K M``
    with ``eta G_W = M^T X``: about ``2 n^2 p`` flops per step, 6x fewer for the
    paper's n = 50, d = 150. ``W = W_0 + (K^{-1} (H - H_0))^T X`` is rebuilt
    once at the end.

Many seeds (replicas) are trained as stacked computations: every state array has
a leading replica axis, and replicas that stop (converged, diverged or at their
step budget) are dropped from the stack. Random draws (``W``, ``beta``, ``b``,
dropout masks) always come from the host's seed streams (:func:`fa.model.rng`), so the
numbers do not depend on the backend or device.
"""

from __future__ import annotations

import contextlib
import importlib
import warnings
from dataclasses import dataclass, field

import numpy as np
from array_api_compat import numpy as _npx
from scipy.linalg import blas
from threadpoolctl import threadpool_limits

from . import _kernels, model
from ._validation import check_finite_array
from .constraints import validate
from .model import RULES, cosine

_GEMM = {np.dtype("float64"): blas.dgemm, np.dtype("float32"): blas.sgemm}

#: A replica whose loss exceeds this multiple of its initial loss has diverged.
BLOWUP = 1e6
#: Default memory for one stacked chunk of replicas (bytes).
DEFAULT_MEMORY_BUDGET = 4 * 2**30
#: Working set of one stack of replicas per step (bytes), about a last-level cache.
CACHE_BYTES = 8 * 2**20
#: Share of a GPU's free memory one stacked chunk may use.
DEVICE_MEMORY_SHARE = 0.5

#: Array-API namespace of each backend, and how to install it.
_NAMESPACES = {"numpy": "array_api_compat.numpy", "array_api_strict": "array_api_strict",
               "torch": "array_api_compat.torch", "cupy": "array_api_compat.cupy"}
_INSTALL = {"numpy": 'pip install -e "."', "array_api_strict": 'pip install -e ".[test]"',
            "torch": 'pip install -e ".[torch]"', "cupy": 'pip install -e ".[cupy]"'}


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
    capped : bool
        True if ``until_converged`` stopped the run at ``max_steps`` before the
        stopping rule was met.
    config : dict
        The settings the run used: the arguments of the call, validated, without the
        data and the seeds, and with ``method`` as resolved (never "auto").
    """

    loss: np.ndarray
    record_steps: np.ndarray
    alignment: np.ndarray
    steps: np.ndarray | int
    diverged: np.ndarray | bool
    W: np.ndarray
    beta: np.ndarray
    b: np.ndarray
    capped: np.ndarray | bool = False
    config: dict = field(default_factory=dict)

    @property
    def final_loss(self):
        """Loss at each replica's final step."""
        return _at_steps(self.loss, self.steps)

    @property
    def final_alignment(self):
        """``cos(beta, b)`` of the final parameters."""
        return cosine(self.beta, self.b)


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


class Stopping:
    """The stopping rule of the paper's code, for ``R`` replicas.

    ``t`` counts the updates taken. With ``until_converged``, a check runs at
    ``t = check_every - 1, 2 check_every - 1, ...`` from the start: the monitored
    value (the loss before update ``t``, or ``cos(beta, b)``) is compared with its
    value at the previous check (at the first check with ``first``: 0 for the loss,
    1 for the alignment), and a change below ``tol`` latches "converged" for good.
    A replica goes on while ``t < steps`` or it has not latched, so one that latched
    before ``steps`` takes exactly ``steps`` updates, and otherwise it stops right
    after the first later check below ``tol``. ``cap`` bounds every run; a replica
    stopped there without having converged is "capped".

    Without ``until_converged`` every replica takes exactly ``steps`` updates.

    Parameters
    ----------
    R : int
        Number of replicas.
    steps : int
        The minimum number of updates, ``T(p)`` in the width sweep.
    until_converged : bool, default False
        Apply the rule; otherwise stop every replica at ``steps``.
    check_every : int, default 1000
        Updates between checks.
    tol : float, default 1e-3
        A check whose change is below ``tol`` latches "converged".
    first : float, default 0.0
        The value the first check compares with: 0 for the loss, 1 for the alignment.
    cap : int, optional
        The most updates any replica takes with ``until_converged`` (None: ``10 * steps``).

    Examples
    --------
    >>> rule = Stopping(1, steps=4, until_converged=True, check_every=2, tol=0.1, cap=40)
    >>> [bool(rule.check(t, [v])[0]) for t, v in enumerate([9, 5, 9, 5.05])]
    [False, False, False, True]
    >>> bool(rule.done(4)[0])
    True
    """

    def __init__(self, R: int, *, steps: int, until_converged=False, check_every=1000,
                 tol=1e-3, first=0.0, cap: int | None = None):
        self.steps, self.until_converged = steps, until_converged
        self.check_every, self.tol = check_every, tol
        self.cap = steps if not until_converged else (10 * steps if cap is None else cap)
        self.latched = np.full(R, not until_converged)
        self.previous = np.full(R, float(first))

    def is_check(self, t: int) -> bool:
        """Whether ``t`` is a check step."""
        return self.until_converged and t % self.check_every == self.check_every - 1

    def check(self, t: int, value) -> np.ndarray:
        """Compare ``value`` (R,), the monitored value before update ``t``, if ``t`` is a
        check step; return the latches."""
        if self.is_check(t):
            value = np.array(value, dtype=float)
            self.latched |= np.abs(value - self.previous) < self.tol
            self.previous = value
        return self.latched

    def done(self, t: int) -> np.ndarray:
        """Which replicas stop with ``t`` updates taken (decided before the check at ``t``)."""
        return (self.latched & (t >= self.steps)) | (t >= self.cap)

    def capped(self, t: int) -> np.ndarray:
        """Which replicas stop at ``t`` only because of the cap."""
        return (t >= self.cap) & ~(self.latched & (t >= self.steps))

    def keep(self, mask) -> None:
        """Drop the replicas where ``mask`` is False."""
        self.latched, self.previous = self.latched[mask], self.previous[mask]


def train(X, y, *, width, activation="relu", rule="fa", lam=0.0, lr, steps, seed=0,
          record_every=1, lam_schedule="constant", lam_until=None, lam_gamma=None,
          dropout=0.0, until_converged=False, check_every=1000, tol=1e-3,
          converge_on="loss", max_steps=None, dtype="float64", method="auto",
          memory_budget=DEFAULT_MEMORY_BUDGET, backend=None, device=None):
    """Train two-layer networks by full-batch gradient descent with BP or FA.

    Parameters
    ----------
    X : array of shape (n, d) or (R, n, d)
        Inputs, shared by all replicas or one data set per seed.
    y : array of shape (n,) or (R, n)
        Targets, matching ``X``.
    width : int
        Number of hidden units ``p``.
    activation : str, default "relu"
        The activation ``psi``: a name in :data:`fa.model.ACTIVATIONS`
        ("linear", "relu", "tanh", "sigmoid", and any registered one).
    rule : str, default "fa"
        A name in :data:`fa.model.RULES`: feedback alignment ("fa", error sent
        back through the fixed random ``b``) or backpropagation ("bp", through ``beta``).
    lam : float, default 0.0
        L2 strength on ``beta`` (gradient ``+ lam * beta``).
    lr : float
        Step size ``eta``.
    steps : int
        Number of updates; with ``until_converged`` the minimum number ``T(p)``.
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
        The stopping rule of the paper's code (:class:`Stopping`): checks every
        ``check_every`` steps from the start (at ``t = check_every - 1``, ...); a
        change of the monitored value below ``tol`` since the previous check latches
        "converged"; the run goes on while ``t < steps`` or it has not latched.
    check_every : int, default 1000
        Updates between the stopping rule's checks.
    tol : float, default 1e-3
        A check whose monitored value moved less than ``tol`` since the previous one
        latches "converged".
    converge_on : {"loss", "alignment"}, default "loss"
        The monitored value: the loss (first compared with 0) or ``cos(beta, b)``
        (first compared with 1; the dropout width sweep).
    max_steps : int, optional
        Cap on the updates with ``until_converged`` (default ``10 * steps``); runs
        stopped there are flagged in ``TrainResult.capped``.
    dtype : {"float64", "float32"}, default "float64"
        Floating-point precision of the computation (the paper used float32).
    method : {"auto", "rowspace", "direct", "reference"}, default "auto"
        ``rowspace`` tracks ``W - W_0`` in the row space of ``X`` (cheaper when
        ``n < d``; needs linearly independent rows); ``direct`` updates ``W``.
        ``auto`` picks ``rowspace`` when it applies. ``reference`` trains through
        :func:`fa.model.step` (direct formulation; numpy unless ``backend``).
        All give the same iterates up to round-off.
    memory_budget : int, default 4 GiB
        Bytes of host memory for one stacked chunk (:func:`bytes_per_replica`); more
        replicas than fit are trained in consecutive chunks. On the CPU chunks are
        also kept to about a last-level cache (:func:`replicas_per_stack`); on a GPU
        they are sized to its free memory. The chunking never changes the numbers.
    backend : {None, "numpy", "array_api_strict", "torch", "cupy"}, default None
        None: the fused numpy path. Otherwise the array-API code of
        :mod:`fa.model` on that library.
    device : str, optional
        The backend's device (e.g. "cuda" for torch); None: the library's default.

    Returns
    -------
    TrainResult
        Loss per step, alignment per recorded step, final ``W``, ``beta``,
        ``b``, steps taken, divergence and cap flags.

    Raises
    ------
    ValueError
        For any parameter outside its documented range, data of the wrong shape or
        with non-finite values, or a backend that is not installed.

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
    params = dict(width=width, activation=activation, rule=rule, lam=lam, lr=lr,
                  steps=steps, seed=seed, record_every=record_every,
                  lam_schedule=lam_schedule, lam_until=lam_until, lam_gamma=lam_gamma,
                  dropout=dropout, until_converged=until_converged,
                  check_every=check_every, tol=tol, converge_on=converge_on,
                  max_steps=max_steps, dtype=dtype, method=method,
                  memory_budget=memory_budget, backend=backend, device=device)
    cfg = validate(params, "train")
    seeds = cfg.pop("seed")
    stacked = isinstance(seeds, list)
    seeds = seeds if stacked else [seeds]
    X, y = _check_data(X, y, len(seeds))
    cfg.update(_resolve_method(X, cfg["method"], cfg["backend"]))
    xp = _namespace(cfg["backend"])
    _check_device(xp, cfg["backend"], cfg["device"])
    cfg["cap"] = Stopping(0, steps=cfg["steps"], until_converged=cfg["until_converged"],
                          cap=cfg["max_steps"]).cap
    result = _train_chunks(X, y, seeds, cfg, xp)
    _warn_divergence(result, seeds, cfg["lr"])
    return result if stacked else _unstack(result)


def _check_data(X, y, R):
    """``X``, ``y`` as finite float arrays of matching shapes."""
    X = check_finite_array(X, "X", "train", ndim=(2, 3))
    y = check_finite_array(y, "y", "train", ndim=(1, 2))
    n, d = X.shape[-2:]
    if y.shape[-1] != n and y.shape[-1] == d:
        raise ValueError(f"The 'X' parameter of train must hold one sample per row, shape "
                         f"(n, d) with n = {y.shape[-1]} targets in y. Got an array of shape "
                         f"{X.shape} instead: pass X.T.")
    if y.ndim == 2 and y.shape == (n, 1) and n > 1:
        raise ValueError(f"The 'y' parameter of train must be a vector of {n} targets. Got "
                         f"an array of shape {y.shape} instead: pass y.ravel().")
    if X.ndim == 3 and X.shape[0] != R:
        raise ValueError(f"The 'X' parameter of train must have one data set per seed: "
                         f"a leading axis of {R}. Got an array of shape {X.shape} instead.")
    if y.ndim == 2 and y.shape[0] != R:
        raise ValueError(f"The 'y' parameter of train must have one target vector per seed: "
                         f"a leading axis of {R}. Got an array of shape {y.shape} instead.")
    if y.shape[-1] != X.shape[-2]:
        raise ValueError(f"The 'y' parameter of train must have one target per row of X "
                         f"({X.shape[-2]}). Got an array of shape {y.shape} instead.")
    return X, y


def _resolve_method(X, method, backend) -> dict:
    """The formulation (``rowspace`` or ``direct``) and the backend that run ``method``."""
    if method == "reference":
        return dict(method="direct", backend=backend or "numpy")
    n, d = X.shape[-2:]
    invertible_K = n < d and bool(np.all(np.linalg.matrix_rank(X) == n))
    if method == "rowspace" and not invertible_K:
        raise ValueError("The 'method' parameter of train can be 'rowspace' only when the "
                         "rows of X are linearly independent (K = X X^T invertible; needs "
                         f"n < d). Got method='rowspace' with X of shape {X.shape} instead.")
    if method == "auto":
        method = "rowspace" if invertible_K else "direct"
    return dict(method=method, backend=backend)


def _namespace(backend):
    """The array-API namespace of ``backend`` (None for the fused numpy path)."""
    if backend is None:
        return None
    try:
        return importlib.import_module(_NAMESPACES[backend])
    except ImportError:
        raise ValueError(f"The 'backend' parameter of train must name an installed array "
                         f"library; install {backend} with `{_INSTALL[backend]}`. "
                         f"Got {backend!r} instead.") from None


def _check_device(xp, backend, device):
    """Refuse a ``device`` that ``backend`` does not have here, naming the parameter."""
    if device is None:
        return
    try:
        xp.asarray(0.0, device=device)
    # Each library fails its own way (torch without CUDA raises AssertionError).
    except Exception as err:
        raise ValueError(f"The 'device' parameter of train must be a device of {backend} "
                         f"available here. Got {device!r} instead ({type(err).__name__}: "
                         f"{err}).") from None


def _train_chunks(X, y, seeds, cfg, xp):
    """Train the replicas in consecutive stacks sized to memory (and cache on a CPU)."""
    n, d = X.shape[-2:]
    chunk = _chunk_size(n, d, cfg, xp)
    parts = []
    # One BLAS thread: the per-replica products are small (n x n by n x p), and a
    # multi-threaded BLAS spends more on synchronising than it gains (measured up to
    # 30x slower on 2 cores; torch's CPU threads up to 100x). Use processes
    # (run_sweep's n_jobs) for parallelism.
    with threadpool_limits(limits=1, user_api="blas"), _torch_threads(xp, 1):
        for start in range(0, len(seeds), chunk):
            idx = slice(start, start + chunk)
            Xc = X[idx] if X.ndim == 3 else X
            yc = y[idx] if y.ndim == 2 else y
            parts.append(_train_stack(Xc, yc, seeds[idx], cfg, xp))
    return _concatenate(parts)


@contextlib.contextmanager
def _torch_threads(xp, k):
    """Run torch's CPU operations on ``k`` threads (when ``xp`` is torch)."""
    from array_api_compat import is_torch_namespace
    if xp is None or not is_torch_namespace(xp):
        yield
        return
    import torch
    before = torch.get_num_threads()
    torch.set_num_threads(k)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _chunk_size(n, d, cfg, xp) -> int:
    kw = dict(dtype=cfg["dtype"], method=cfg["method"], steps=cfg["cap"])
    free = _device_free_bytes(xp, cfg["device"])
    if free is not None:
        # The array-API step holds about twice the fused path's arrays (temporaries).
        per = 2 * bytes_per_replica(n, d, cfg["width"], **kw)
        return max(1, int(DEVICE_MEMORY_SHARE * free) // per)
    return min(max_replicas(n, d, cfg["width"], memory_budget=cfg["memory_budget"], **kw),
               replicas_per_stack(n, cfg["width"], dtype=cfg["dtype"]))


def _device_free_bytes(xp, device):
    """Free memory of a GPU ``device`` of ``xp`` (bytes); None on a CPU."""
    from array_api_compat import is_cupy_namespace, is_torch_namespace
    if xp is not None and is_torch_namespace(xp):
        import torch
        dev = torch.device(device or "cpu")
        return torch.cuda.mem_get_info(dev)[0] if dev.type == "cuda" else None
    if xp is not None and is_cupy_namespace(xp):
        import cupy
        return cupy.cuda.runtime.memGetInfo()[0]
    return None


def _warn_divergence(result, seeds, lr):
    if np.any(result.diverged):
        bad = np.flatnonzero(result.diverged)
        first = bad[np.argmin(result.steps[bad])]
        warnings.warn(
            f"{len(bad)} of {len(seeds)} runs diverged (first: seed {seeds[first]} at step "
            f"{int(result.steps[first])}) with lr={lr}; they were stopped and marked "
            "in result.diverged. Lower 'lr'.", DivergenceWarning, stacklevel=3)


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


class _Dropout:
    """Inverted-dropout masks of the live replicas, one seed stream each (on the host)."""

    def __init__(self, seeds, q, shape, dtype):
        self.rngs = [model.rng(s, model.DROPOUT) for s in seeds]
        self.q, self.shape = q, shape
        self.scale = np.dtype(dtype).type(1.0 / (1.0 - q))

    def draw(self):
        """(R, n, p): 0 or ``1/(1-q)`` (each unit kept with probability ``1 - q``)."""
        return np.stack([r.random(self.shape) >= self.q for r in self.rngs]) * self.scale

    def keep(self, mask):
        self.rngs = [r for r, k in zip(self.rngs, mask) if k]


def _rebuild_W(K, X, H, H0, W0):
    """``W = W_0 + C X`` with ``C^T = K^{-1} (H - H_0)`` (one replica; K invertible)."""
    Ct = np.linalg.solve(K, H - H0)                                    # (n, p)
    return Ct.T @ X + W0                                               # (p, d)


def _row(A, r):
    """Row ``r`` of an array shared by all replicas (leading axis 1) or not."""
    return A[r if A.shape[0] > 1 else 0]


def _train_stack(X, y, seeds, cfg, xp):
    """Train the replicas ``seeds`` as one stack: the step loop (inputs validated)."""
    R, (n, d), p = len(seeds), X.shape[-2:], cfg["width"]
    W, beta, b = model.init(seeds, d, p, cfg["dtype"])
    record = _Record(R, cfg, W.shape[1:], b)
    net = _Fused(X, y, W, beta, b, cfg) if xp is None else _ArrayAPI(X, y, W, beta, b, cfg, xp)
    stopping = Stopping(R, steps=cfg["steps"], until_converged=cfg["until_converged"],
                        check_every=cfg["check_every"], tol=cfg["tol"],
                        first=0.0 if cfg["converge_on"] == "loss" else 1.0, cap=cfg["cap"])
    dropout = _Dropout(seeds, cfg["dropout"], (n, p), cfg["dtype"]) if cfg["dropout"] else None
    live = np.arange(R)                 # stack row -> replica
    t = 0
    with np.errstate(over="ignore", invalid="ignore"):
        while True:
            mask = None if dropout is None else dropout.draw()            # (R, n, p)
            lam_t = lam_at(t, cfg["lam"], cfg["lam_schedule"], cfg["lam_until"],
                           cfg["lam_gamma"])
            L = net.loss(mask, lam_t)                                     # (R,) before update t
            record.loss[live, t] = L
            if t % cfg["record_every"] == 0:
                record.alignment[live, t // cfg["record_every"]] = net.alignment()
            bad = ~np.isfinite(L) | (L > BLOWUP * record.loss[live, 0])
            done = bad | stopping.done(t)
            if np.any(done):
                record.stop(live[done], t, net, done, bad[done],
                            stopping.capped(t)[done] & ~bad[done])
                keep = ~done
                live, L = live[keep], L[keep]
                if live.size == 0:
                    break
                for part in (net, stopping, dropout):
                    if part is not None:
                        part.keep(keep)
                mask = None if mask is None else mask[keep]
            if stopping.is_check(t):
                stopping.check(t, L if cfg["converge_on"] == "loss" else net.alignment())
            net.step(mask, lam_t)
            t += 1
    return record.result(cfg)


class _Record:
    """The outputs of one stack, filled in as its replicas step and stop."""

    def __init__(self, R, cfg, shape_W, b):
        self.every = cfg["record_every"]
        self.loss = np.full((R, cfg["cap"] + 1), np.nan)
        self.grid = np.arange(0, cfg["cap"] + 1, self.every)
        self.alignment = np.full((R, self.grid.size), np.nan)
        self.off_grid = {}              # final steps off the recording grid: t -> (R,)
        self.steps = np.zeros(R, dtype=int)
        self.diverged = np.zeros(R, dtype=bool)
        self.capped = np.zeros(R, dtype=bool)
        self.W = np.empty((R, *shape_W), dtype=b.dtype)
        self.beta = np.empty_like(b)
        self.b = b.copy()

    def stop(self, rows, t, net, done, bad, capped):
        """Replicas ``rows`` (stack rows ``done``) stop with ``t`` updates taken."""
        self.steps[rows], self.diverged[rows], self.capped[rows] = t, bad, capped
        self.loss[rows, t] = np.where(np.isfinite(self.loss[rows, t]), self.loss[rows, t],
                                      np.nan)
        if t % self.every:
            self.off_grid.setdefault(t, np.full(len(self.steps), np.nan))[rows] = \
                net.alignment()[done]
        self.W[rows], self.beta[rows] = net.params(done)

    def result(self, cfg) -> TrainResult:
        used = int(self.steps.max())
        on_grid = self.grid <= used
        record_steps, alignment = self.grid[on_grid], self.alignment[:, on_grid]
        if self.off_grid:
            merged = np.union1d(record_steps, np.array(sorted(self.off_grid)))
            full = np.full((len(self.steps), merged.size), np.nan)
            full[:, np.searchsorted(merged, record_steps)] = alignment
            for t, values in self.off_grid.items():
                column = np.searchsorted(merged, t)
                full[:, column] = np.where(np.isnan(values), full[:, column], values)
            record_steps, alignment = merged, full
        config = {k: v for k, v in cfg.items() if k != "cap"}
        return TrainResult(loss=self.loss[:, :used + 1], record_steps=record_steps,
                           alignment=alignment, steps=self.steps, diverged=self.diverged,
                           W=self.W, beta=self.beta, b=self.b, capped=self.capped,
                           config=config)


class _Fused:
    """The replicas still training, stepped by the compiled loops of :mod:`fa._kernels`.

    ``H`` always holds ``X W^T`` for the current ``W`` (R, n, p).
    """

    def __init__(self, X, y, W, beta, b, cfg):
        R, p, d = W.shape
        n = X.shape[-2]
        self.X = np.asarray(X, dtype=W.dtype).reshape(-1, n, d)          # (R|1, n, d)
        self.Y = np.broadcast_to(np.asarray(y, dtype=W.dtype), (R, n)).copy()   # (R, n)
        self.beta, self.b = beta, b                                       # (R, p)
        self.method = cfg["method"]
        self.H = self.X @ np.swapaxes(W, 1, 2)                            # (R, n, p)
        if self.method == "rowspace":
            # W_t = W_0 + C_t X, so H_t = H_0 + K C_t^T and each step moves H by
            # -K M: C itself is never needed until the end (see `params`).
            self.W0 = W                                                   # (R, p, d)
            self.H0 = self.H.copy()                                       # (R, n, p)
            self.K = self.X @ np.swapaxes(self.X, 1, 2)                   # (R|1, n, n)
        else:
            self.W = W                                                    # (R, p, d)
            self.G = np.empty_like(W)                                     # (R, p, d)
        self.act = model.activation(cfg["activation"])
        self.reads_A = _kernels.reads_A(self.act)
        self.A = None                   # psi(H), for activations whose loops read it
        self.M = np.empty_like(self.H)  # eta * c * D * (e v^T), so that eta * G_W = M^T X
        self.f = np.empty((R, n), dtype=W.dtype)    # network outputs
        self.g = np.empty(p, dtype=W.dtype)         # work buffer of the backward loop
        self.forward, _ = _kernels.loops(self.act, masked=False)
        self.forward_dropped, self.backward = _kernels.loops(self.act,
                                                             masked=cfg["dropout"] > 0)
        # psi' = 1 and no dropout: the step of H is the rank-one w v^T (fa._kernels).
        self.rank_one = (self.act.unit_slope and self.method == "rowspace"
                         and not cfg["dropout"] > 0)
        if self.rank_one:
            self.backward_rank_one = _kernels.rank_one_loop(self.act)
        self.scale, self.c = 1.0 / np.sqrt(p), 2.0 / (n * np.sqrt(p))
        self.lr, self.rule = cfg["lr"], cfg["rule"]

    def loss(self, mask, lam_t):
        """The loss of the full network before the next update (R,)."""
        if self.reads_A:
            self.A = self.act.psi_array(_npx, self.H)                    # (R, n, p)
        Z = self.A if self.reads_A else self.H
        self.forward(Z, _kernels.NO_MASK, self.beta, self.scale, self.f)  # f = psi(H) beta / sqrt(p)
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
        # beta -= eta (c A^T e + lam beta);  M = eta c psi'(H) * (e v^T)   (fa._kernels)
        self.backward(Z, _kernels.NO_MASK if mask is None else mask, self.e, v, self.beta,
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
        W = [_rebuild_W(_row(self.K, r), _row(self.X, r), self.H[r], self.H0[r], self.W0[r])
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
    """``H[r] -= K[r] @ M[r]`` in place for every replica ``r`` (``K`` may be shared).

    One BLAS ``gemm`` (``C <- C - A B``) per replica: numpy's matmul would write ``K M``
    to a buffer and subtract it in two more passes over the (n, p) arrays. BLAS sees
    the C-ordered ``H[r]`` as the Fortran-ordered ``H[r]^T = H[r]^T - M[r]^T K[r]^T``,
    so it updates it without a copy.
    """
    gemm = _GEMM[H.dtype]
    for r in range(H.shape[0]):
        Ht = H[r].T
        out = gemm(-1.0, M[r].T, K[r if K.shape[0] > 1 else 0].T, 1.0, Ht, overwrite_c=True)
        if not np.shares_memory(out, Ht):   # BLAS copied after all: write the result back
            Ht[...] = out


class _ArrayAPI:
    """The replicas still training, stepped by :mod:`fa.model` on an array library.

    The step of :meth:`loss` is computed with the loss and kept until :meth:`step`
    commits it (the loss decides which replicas stop first).
    """

    def __init__(self, X, y, W, beta, b, cfg, xp):
        R, p, d = W.shape
        n = X.shape[-2]
        self.xp, self.device = xp, cfg["device"]
        Xh = np.asarray(X, dtype=W.dtype).reshape(-1, n, d)               # (R|1, n, d)
        self.X, self.beta, self.b = self._to(Xh), self._to(beta), self._to(b)
        self.y = self._to(np.broadcast_to(np.asarray(y, dtype=W.dtype), (R, n)))
        self.b_host = b
        self.method = cfg["method"]
        self.kw = dict(activation=cfg["activation"], rule=cfg["rule"], eta=cfg["lr"])
        if self.method == "rowspace":
            self.K = self.X @ xp.matrix_transpose(self.X)                 # (R|1, n, n)
            self.H = self.X @ xp.matrix_transpose(self._to(W))            # (R, n, p)
            self.Xh, self.Kh, self.W0 = Xh, Xh @ np.swapaxes(Xh, 1, 2), W  # for `params`
            self.H0 = _to_host(self.H)
        else:
            self.W = self._to(W)                                          # (R, p, d)

    def _to(self, a):
        return self.xp.asarray(np.array(a), device=self.device)     # a writable copy

    def loss(self, mask, lam_t):
        m = None if mask is None else self._to(mask)
        if self.method == "rowspace":
            self.next = model.step_rowspace(self.K, self.H, self.y, self.beta, self.b,
                                                lam=lam_t, mask=m, **self.kw)
        else:
            self.next = model.step(self.X, self.y, self.W, self.beta, self.b,
                                       lam=lam_t, mask=m, **self.kw)
        return _to_host(self.next[2]).astype(float)

    def alignment(self):
        return cosine(_to_host(self.beta), self.b_host)

    def step(self, mask, lam_t):
        state, self.beta, _ = self.next
        setattr(self, "H" if self.method == "rowspace" else "W", state)

    def params(self, rows):
        idx = np.flatnonzero(rows)
        beta = _to_host(self.beta)[idx]
        if self.method == "direct":
            return _to_host(self.W)[idx], beta
        H = _to_host(self.H)
        return np.stack([_rebuild_W(_row(self.Kh, r), _row(self.Xh, r), H[r], self.H0[r],
                                    self.W0[r]) for r in idx]), beta

    def keep(self, mask):
        idx = self.xp.asarray(np.flatnonzero(mask), device=self.device)

        def take(a):
            return self.xp.take(a, idx, axis=0)

        self.y, self.beta, self.b = take(self.y), take(self.beta), take(self.b)
        self.next = tuple(take(a) for a in self.next)
        self.b_host = self.b_host[mask]
        if self.X.shape[0] > 1:
            self.X = take(self.X)
        if self.method == "rowspace":
            self.H, self.H0, self.W0 = take(self.H), self.H0[mask], self.W0[mask]
            if self.Xh.shape[0] > 1:
                self.K, self.Kh, self.Xh = take(self.K), self.Kh[mask], self.Xh[mask]
        else:
            self.W = take(self.W)


def _to_host(a) -> np.ndarray:
    """A numpy copy of an array of any backend or device."""
    from array_api_compat import is_cupy_array, is_torch_array
    if is_torch_array(a):
        return a.detach().cpu().numpy()
    if is_cupy_array(a):
        return a.get()
    return np.asarray(a)


def _concatenate(parts):
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

    def joined(name):
        return np.concatenate([getattr(p, name) for p in parts])

    return TrainResult(
        loss=np.concatenate([pad_loss(p) for p in parts]), record_steps=rec,
        alignment=np.concatenate([pad_alignment(p) for p in parts]),
        steps=joined("steps"), diverged=joined("diverged"), W=joined("W"),
        beta=joined("beta"), b=joined("b"), capped=joined("capped"), config=parts[0].config)


def _unstack(r: TrainResult) -> TrainResult:
    return TrainResult(loss=r.loss[0], record_steps=r.record_steps,
                       alignment=r.alignment[0], steps=int(r.steps[0]),
                       diverged=bool(r.diverged[0]), W=r.W[0], beta=r.beta[0], b=r.b[0],
                       capped=bool(r.capped[0]), config=r.config)
