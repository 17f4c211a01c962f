"""The training loop: replicas stacked, L2 schedules, the authors' stopping rule,
recording and divergence.

:func:`train_stack` steps the replicas of one stack with either engine, the fused CPU
loops (:class:`fa._kernels.Fused`) or :mod:`fa.model` on an array library
(:class:`ArrayAPI`), in one of two exact formulations: ``"direct"`` keeps ``W``;
``"rowspace"`` keeps ``H = X W^T``, which moves by ``-K M`` with ``K = X X^T`` (6x fewer
flops for n = 50, d = 150), and rebuilds ``W`` at the end. Replicas that stop leave the
stack. Random draws come from the host's seed streams (:func:`fa.model.rng`), so the
numbers do not depend on the engine or device.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from . import model
from ._kernels import Fused
from .model import cosine

#: A replica whose loss exceeds this multiple of its initial loss has diverged.
BLOWUP = 1e6


class DivergenceWarning(RuntimeWarning):
    """A replica's loss became non-finite or exploded; it was stopped."""


@dataclass
class TrainResult:
    """What one call of :func:`train` returns.

    With a sequence of seeds every array has a leading replica axis ``R``
    (``record_steps`` is shared). Replicas can stop at different steps: ``loss`` and
    ``alignment`` are padded with NaN after a replica's own ``steps``.

    Attributes
    ----------
    loss : ndarray, shape (T + 1,)
        Training loss (mean squared error, of the full network) after ``t = 0..T``
        updates, ``T`` the most steps taken by any replica.
    record_steps : ndarray of int, shape (K,)
        Steps at which the alignment was recorded: multiples of ``record_every`` and
        each replica's final step.
    alignment : ndarray, shape (K,)
        ``cos(beta, b)`` at ``record_steps``.
    steps : int
        Updates taken.
    diverged : bool
        True if the run was stopped because its loss became non-finite or exceeded
        ``BLOWUP`` times its initial value.
    W, beta : ndarray, shape (p, d) and (p,)
        Final weights; of a diverged run, those of the step that blew up (finite, but
        huge: not a result).
    b : ndarray, shape (p,)
        The fixed random feedback vector.
    capped : bool
        True if ``until_converged`` stopped the run at ``max_steps``, unconverged.
    config : dict
        The validated arguments of the call, without the data and the seeds, and
        ``method`` as resolved (never "auto").
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
    """The L2 strength at step ``t``: ``constant``: ``lam``; ``release``: ``lam`` for
    ``t < lam_until``, then 0; ``decay``: ``lam * lam_gamma**t``."""
    if schedule == "constant":
        return lam
    if schedule == "release":
        return lam if t < lam_until else 0.0
    return lam * lam_gamma**t


class Stopping:
    """The stopping rule of the paper's code, for ``R`` replicas.

    ``t`` counts the updates taken. With ``until_converged``, a check runs at
    ``t = check_every - 1, 2 check_every - 1, ...``: the monitored value (the loss
    before update ``t``, or ``cos(beta, b)``) is compared with its value at the previous
    check (or with ``first``), and a change below ``tol`` latches "converged" for good.
    A replica goes on while ``t < steps`` or it has not latched, so it takes exactly
    ``steps`` updates or stops right after the first later check below ``tol``. ``cap``
    bounds every run; a replica stopped there without converging is "capped". Without
    ``until_converged`` every replica takes exactly ``steps`` updates.

    Parameters
    ----------
    R : int
        Number of replicas.
    steps : int
        The minimum number of updates, ``T(p)`` in the width sweep.
    until_converged : bool, default False
        Apply the rule; otherwise stop every replica at ``steps``.
    check_every, tol : int and float, default 1000 and 1e-3
        Updates between checks; the change below which a check latches "converged".
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


def train_stack(X, y, seeds, cfg, xp):
    """Train the replicas ``seeds`` as one stack: the step loop (inputs validated)."""
    R, (n, d), p = len(seeds), X.shape[-2:], cfg["width"]
    W, beta, b = model.init(seeds, d, p, cfg["dtype"])
    record = _Record(R, cfg, W.shape[1:], b)
    net = Fused(X, y, W, beta, b, cfg) if xp is None else ArrayAPI(X, y, W, beta, b, cfg, xp)
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


class ArrayAPI:
    """The replicas still training, stepped by :mod:`fa.model` on an array library;
    :meth:`loss` computes the step too, kept until :meth:`step` commits it."""

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
        W = [model.rebuild_W(self.Kh[r % len(self.Kh)], self.Xh[r % len(self.Xh)], H[r],
                             self.H0[r], self.W0[r]) for r in idx]
        return np.stack(W), beta

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


def concatenate(parts):
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


def unstack(r: TrainResult) -> TrainResult:
    return TrainResult(loss=r.loss[0], record_steps=r.record_steps,
                       alignment=r.alignment[0], steps=int(r.steps[0]),
                       diverged=bool(r.diverged[0]), W=r.W[0], beta=r.beta[0], b=r.b[0],
                       capped=bool(r.capped[0]), config=r.config)
