"""``fa.train``: full-batch gradient descent on two-layer networks by BP or FA.

It validates the arguments (:mod:`fa.constraints`), picks the engine and the
formulation, cuts the seeds into stacks that fit in memory (and in a last-level cache
on a CPU) and hands each stack to :func:`fa.loop.train_stack`.
"""

from __future__ import annotations

import contextlib
import importlib
import warnings

import numpy as np
from threadpoolctl import threadpool_limits

from .constraints import check_array, validate
from .loop import DivergenceWarning, Stopping, concatenate, train_stack, unstack

DEFAULT_MEMORY_BUDGET = 4 * 2**30
CACHE_BYTES = 8 * 2**20         # working set of one stack per step, about a last-level cache
DEVICE_MEMORY_SHARE = 0.5       # share of a GPU's free memory one stacked chunk may use

#: Array-API namespace of each backend, and how to install it.
_NAMESPACES = {"numpy": "array_api_compat.numpy", "array_api_strict": "array_api_strict",
               "torch": "array_api_compat.torch", "cupy": "array_api_compat.cupy"}
_INSTALL = {"numpy": "`pip install array-api-compat`",
            "array_api_strict": "`pip install array-api-strict`", "torch": "`pip install torch`",
            "cupy": "the CuPy wheel of your CUDA version, e.g. `pip install cupy-cuda12x`"}


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
        The activation ``psi``: a name in :data:`fa.model.ACTIVATIONS`.
    rule : str, default "fa"
        A name in :data:`fa.model.RULES`: "fa" (error sent back through the fixed
        random ``b``) or "bp" (through ``beta``).
    lam : float, default 0.0
        L2 strength on ``beta`` (gradient ``+ lam * beta``).
    lr : float
        Step size ``eta``.
    steps : int
        Number of updates; with ``until_converged`` the minimum number ``T(p)``.
    seed : int or sequence of int, default 0
        A sequence of ``R`` seeds trains ``R`` independent networks (own ``W``,
        ``beta``, ``b``, dropout masks) stacked, and every returned array gains a
        leading replica axis. Results equal the replicas trained one at a time.
    record_every : int, default 1
        Record ``cos(beta, b)`` every this many steps (and at the end).
    lam_schedule : {"constant", "release", "decay"}, default "constant"
        ``release``: ``lam`` until step ``lam_until``, then 0; ``decay``: ``lam * lam_gamma**t``.
    lam_until : int, optional
        Step at which the L2 penalty is switched off (``release`` only).
    lam_gamma : float in (0, 1], optional
        Geometric decay factor per step (``decay`` only).
    dropout : float in [0, 1), default 0.0
        Inverted dropout rate ``q`` on the hidden units in training steps; the recorded
        loss is that of the full network.
    until_converged : bool, default False
        The paper's stopping rule (:class:`Stopping`): a check (every ``check_every``
        steps) whose value moved less than ``tol`` latches "converged"; the run goes on
        while ``t < steps`` or it has not latched.
    check_every : int, default 1000
        Updates between the stopping rule's checks.
    tol : float, default 1e-3
        The change below which a check latches "converged".
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
        ``n < d``; needs linearly independent rows); ``direct`` updates ``W``;
        ``auto`` picks ``rowspace`` when it applies; ``reference`` trains through
        :func:`fa.model.step`. All give the same iterates up to round-off.
    memory_budget : int, default 4 GiB
        Host memory for one stacked chunk (:func:`bytes_per_replica`); chunks are also
        kept to a last-level cache on the CPU (:func:`replicas_per_stack`) or sized to a
        GPU's free memory. The chunking never changes the numbers.
    backend : {None, "numpy", "array_api_strict", "torch", "cupy"}, default None
        None: the fused numpy path; else the array-API code of :mod:`fa.model`.
    device : str, optional
        The backend's device (e.g. "cuda" for torch); None: the library's default.

    Returns
    -------
    TrainResult
        Loss per step, alignment per recorded step, final parameters, steps and flags.

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
    params = {k: v for k, v in locals().items() if k not in ("X", "y")}   # the keywords
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
    return result if stacked else unstack(result)


def _check_data(X, y, R):
    """``X``, ``y`` as finite float arrays of matching shapes."""
    X = check_array(X, "X", "train", ndim=(2, 3))
    y = check_array(y, "y", "train", ndim=(1, 2))
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
                         f"library; install {backend}: {_INSTALL[backend]}. "
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
    # One BLAS thread: on these small products a multi-threaded BLAS spends more on
    # synchronising than it gains (up to 30x slower on 2 cores; torch's threads up to
    # 100x). Parallelise with processes (run_sweep's n_jobs).
    with threadpool_limits(limits=1, user_api="blas"), _torch_threads(xp, 1):
        for start in range(0, len(seeds), chunk):
            idx = slice(start, start + chunk)
            Xc = X[idx] if X.ndim == 3 else X
            yc = y[idx] if y.ndim == 2 else y
            parts.append(train_stack(Xc, yc, seeds[idx], cfg, xp))
    return concatenate(parts)


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
    """Replicas per stack: a share of a GPU's free memory, else the memory and cache budgets."""
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
    """Peak memory of one replica in a stacked :func:`train` call (bytes); ``steps`` is
    the longest run (the loss of every step is kept, in float64)."""
    itemsize = np.dtype(dtype).itemsize
    p = width
    if method == "rowspace":
        # H0, H, A (tanh, sigmoid), M, K M, a dropout mask (n x p); W0, the returned W.
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
    """Replicas whose up to six (n, p) arrays fit in ``CACHE_BYTES`` (at least one): a
    step's passes over them then run at cache speed (benchmarks/README.md)."""
    return max(1, CACHE_BYTES // (6 * n * width * np.dtype(dtype).itemsize))

