"""The numbers behind notebook 05: the mechanisms' algebra, and the experiments it runs.

Notation as in ``docs/model.md``: ``f(x) = beta . psi(W x) / sqrt(p)``, ``H = X W^T``,
``A = psi(H)``, ``D = psi'(H)``, ``e = f(X) - y``, ``K = X X^T``, ``v = b`` (FA) or
``beta`` (BP), as :data:`fa.model.RULES` says.

The algebra: the step kernel ``G = second + first`` (:func:`kernel`), the loss it
predicts when frozen (:func:`predicted_loss`), the exact split
``beta_t = c_t beta_0 + l_t`` (:func:`lam_factor`, :func:`decompose`) and a plain
reference loop that keeps ``beta_t`` (:func:`trajectory`).

The experiments (:class:`KernelRun`, :class:`AlignmentRun`, :class:`DynamicsRun`)
follow the protocol of :mod:`fa.sweep`, so :func:`fa.run_sweep` runs, caches and
parallelises them like :class:`fa.RunConfig`. They live apart from
:mod:`fa.mechanisms` (tables, figures, claims) because this module's source is part
of their cache key: redrawing a figure must not recompute the runs.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
from threadpoolctl import threadpool_limits

from . import model
from .constraints import check_option, validate
from .data import make_data
from .experiments import RunConfig
from .model import RULES
from .model import cosine
from .trainer import train

__all__ = ["AlignmentRun", "DynamicsRun", "KernelRun", "Trajectory", "decompose",
           "kernel", "lam_factor", "predicted_loss", "trajectory"]


# --- the algebra ------------------------------------------------------------------

def kernel(X, W, beta, b, *, activation: str, rule: str):
    """The two terms of the step kernel ``G = second + first`` at ``(W, beta)``.

    Returns
    -------
    second : ndarray (n, n)
        ``A A^T / p``, from the second-layer update: PSD in both rules.
    first : ndarray (n, n)
        ``((D diag(beta * v) D^T) * K) / p``, from the first-layer update,
        ``v = b`` (FA) or ``beta`` (BP): PSD for BP (a Schur product of PSD
        matrices), sign-indefinite for FA.
    """
    rule = check_option(rule, "rule", "kernel", RULES)
    act = model.activation(activation)
    p = W.shape[0]
    H = X @ W.T                                       # (n, p)
    A, D = act.psi_array(np, H), act.dpsi_array(np, H)  # (n, p)
    v = RULES[rule](beta, b)
    second = A @ A.T / p                              # (n, n)
    first = ((D * (beta * v)) @ D.T) * (X @ X.T) / p  # (n, n)
    return second, first


def predicted_loss(G, e0, lr: float, steps: int) -> np.ndarray:
    """Loss of ``e_{t+1} = (I - (2 eta / n) G) e_t``, ``t = 0..steps`` (G symmetric).

    With ``G = Q diag(mu) Q^T``, ``e_t = Q diag((1 - 2 eta mu / n)^t) Q^T e_0``.
    """
    n = e0.size
    mu, Q = np.linalg.eigh(G)                                        # (n,), (n, n)
    z = Q.T @ e0                                                     # (n,)
    decay = (1.0 - 2.0 * lr * mu / n)[None, :] ** np.arange(steps + 1)[:, None]  # (T+1, n)
    return np.sum((decay * z) ** 2, axis=1) / n


def lam_factor(lr: float, lam: float, t, lam_until: int | None = None):
    """``c_t = prod_{s<t} (1 - eta lam_s)``: what is left of ``beta_0`` in ``beta_t``.

    ``lam_s = lam`` for ``s < lam_until`` (all ``s`` if ``lam_until`` is None), then 0.
    """
    t = np.asarray(t)
    on = t if lam_until is None else np.minimum(t, lam_until)
    return (1.0 - lr * lam) ** on


def decompose(beta, beta0, b, c):
    """Split ``cos(beta, b)`` exactly into the initial and the learned part.

    ``beta = c beta_0 + l``; the parts are ``c beta_0 . b / (|beta| |b|)`` and
    ``l . b / (|beta| |b|)`` and sum to ``cos(beta, b)``. Leading axes broadcast.
    """
    beta, beta0, b = np.asarray(beta), np.asarray(beta0), np.asarray(b)
    c = np.asarray(c)[..., None]
    norm = np.linalg.norm(beta, axis=-1) * np.linalg.norm(b, axis=-1)
    initial = np.sum(c * beta0 * b, axis=-1) / norm
    learned = np.sum((beta - c * beta0) * b, axis=-1) / norm
    return initial, learned


@dataclass
class Trajectory:
    """What :func:`trajectory` records."""

    loss: np.ndarray          # (T + 1,) loss after t updates
    record_steps: np.ndarray  # (K,) steps at which beta was kept
    beta: np.ndarray          # (K, p) beta_t at record_steps
    beta0: np.ndarray         # (p,)
    b: np.ndarray             # (p,)
    c: np.ndarray             # (K,) c_t at record_steps
    learned: np.ndarray       # (K, p) -eta sum_s (prod_{s<r<t} (1 - eta lam_r)) g_s, accumulated


def trajectory(X, y, *, width: int, activation: str, rule: str = "fa", lr: float,
               steps: int, lam: float = 0.0, lam_until: int | None = None, seed: int = 0,
               record_every: int = 1) -> Trajectory:
    """Full-batch gradient descent as in :func:`fa.train`, written out and recorded.

    Works on ``H = X W^T`` directly (``eta G_W = M^T X`` moves ``H`` by ``-eta K M``),
    and accumulates the learned part ``l_t`` of ``beta_t`` separately from the
    gradients, so that ``beta_t = c_t beta_0 + l_t`` can be checked to round-off.
    ``lam_until`` switches the penalty off from that step on ("release").
    """
    rule = check_option(rule, "rule", "trajectory", RULES)
    act = model.activation(activation)
    n, p = X.shape[0], width
    W0, beta, b = (a[0] for a in model.init([seed], X.shape[1], p))
    beta0 = beta.copy()
    K = X @ X.T                                       # (n, n)
    H = X @ W0.T                                      # (n, p)
    c = 2.0 / (n * np.sqrt(p))
    learned = np.zeros(p)
    loss = np.empty(steps + 1)
    kept, kept_l, kept_t = [], [], []
    # One BLAS thread: the products are small and threads cost more than they give
    # (10x slower on a busy 2-core machine).
    with threadpool_limits(limits=1, user_api="blas"):
        for t in range(steps + 1):
            A = act.psi_array(np, H)                      # (n, p)
            e = A @ beta / np.sqrt(p) - y                 # (n,)
            loss[t] = e @ e / n
            if t % record_every == 0 or t in (steps, lam_until):
                kept.append(beta.copy())
                kept_l.append(learned.copy())
                kept_t.append(t)
            if t == steps:
                break
            lam_t = lam if lam_until is None or t < lam_until else 0.0
            v = RULES[rule](beta, b)                      # the one FA/BP difference
            g = c * A.T @ e                               # (p,) data gradient of beta
            M = c * act.dpsi_array(np, H) * np.outer(e, v)  # (n, p): G_W = M^T X
            beta = (1.0 - lr * lam_t) * beta - lr * g
            learned = (1.0 - lr * lam_t) * learned - lr * g
            H = H - lr * K @ M                            # (n, p)
    record_steps = np.array(kept_t)
    return Trajectory(loss=loss, record_steps=record_steps, beta=np.array(kept),
                      beta0=beta0, b=b, c=lam_factor(lr, lam, record_steps, lam_until),
                      learned=np.array(kept_l))


# --- the experiments (the protocol of fa.sweep) ---------------------------------------

@dataclass(frozen=True)
class _MechanismRun:
    """What the three experiments share: the network, its data and its training length.

    Fields are validated (and numbers normalised) by :func:`fa.constraints.validate`,
    the same table :class:`fa.RunConfig` and :func:`fa.train` use.
    """

    activation: str   # psi: a name in fa.ACTIVATIONS
    width: int        # p, hidden units of the student (and of the teacher)
    data: str         # "linear" or "teacher", as fa.make_data
    n: int            # samples
    d: int            # input dimension
    lr: float         # eta, the step size
    steps: int        # updates

    numerics_modules: ClassVar[tuple[str, ...]] = ("fa.mechanisms_runs",
                                                   *RunConfig.numerics_modules)

    def __post_init__(self):
        values = validate({f.name: getattr(self, f.name) for f in dataclasses.fields(self)},
                          type(self).__name__)
        for name, value in values.items():   # frozen: normalise through object.__setattr__
            object.__setattr__(self, name, value)

    def config(self) -> RunConfig:
        """The :class:`fa.RunConfig` of the training run behind this experiment."""
        raise NotImplementedError

    def cost(self) -> int:
        """Work of one seed: that of its training run."""
        return self.config().cost()

    def chunk_size(self) -> int:
        """Seeds per ``fa.train`` call, as for the training run's :class:`fa.RunConfig`."""
        return self.config().chunk_size()

    def _train(self, seeds: list[int]):
        """Data ``X`` (R, n, d), ``y`` (R, n) and the :func:`fa.train` result for ``seeds``."""
        config = self.config()
        teacher = config.data == "teacher"
        X, y = make_data(config.data, config.n, config.d, seed=seeds,
                         width=config.width if teacher else None,
                         activation=config.activation if teacher else None)
        result = train(X, y, seed=seeds, **config.train_kwargs())
        if np.any(result.diverged):
            # The algebra below would run on a blown-up network: stop, and say where.
            raise FloatingPointError(f"{self!r} diverged for some of the seeds {seeds}; "
                                     "its step size is too large for this network.")
        return X, y, result

    def _network(self) -> dict:
        return dict(activation=self.activation, width=self.width, data=self.data, n=self.n,
                    d=self.d, lr=self.lr, steps=self.steps)


@dataclass(frozen=True)
class KernelRun(_MechanismRun):
    """Statement 1 for one rule: the kernel at initialisation, and the loss it predicts.

    An experiment of :mod:`fa.sweep`; trains with ``lam = 0``. Per seed, the record
    holds the smallest eigenvalue of ``A A^T / p`` (``second_min``), the smallest
    eigenvalue and the spectral norm of the rule's first-layer term (``first_min``,
    ``first_norm``), the smallest eigenvalue of ``G_0`` (``min``), how far the kernel
    moved in training (``drift``: ``|G_T - G_0|_2 / |G_0|_2``), and the curves
    ``step``, ``measured`` (the trained loss) and ``predicted`` (by the frozen ``G_0``).
    """

    rule: str = "fa"  # "fa" or "bp", a name in fa.model.RULES

    scalars: ClassVar[dict[str, type]] = dict(second_min=float, first_min=float,
                                              first_norm=float, min=float, drift=float)
    curves: ClassVar[tuple[str, ...]] = ("step", "measured", "predicted")

    def config(self) -> RunConfig:
        """The training run: ``rule``, no penalty, the loss recorded at every step."""
        return RunConfig(**self._network(), rule=self.rule)

    def run(self, seeds: list[int]) -> list[dict]:
        """One record per seed (see the class docstring)."""
        X, y, r = self._train(seeds)                                 # (R, n, d), (R, n)
        act = model.activation(self.activation)
        records = []
        for i, seed in enumerate(seeds):
            W, beta, b = (a[0] for a in model.init([seed], self.d, self.width))
            e0 = act.psi_array(np, X[i] @ W.T) @ beta / np.sqrt(self.width) - y[i]   # (n,)
            second, first = kernel(X[i], W, beta, b, activation=self.activation,
                                   rule=self.rule)
            G0 = second + first                                      # (n, n)
            second_T, first_T = kernel(X[i], r.W[i], r.beta[i], r.b[i],
                                       activation=self.activation, rule=self.rule)
            mu_first = np.linalg.eigvalsh(first)                     # (n,)
            records.append(dict(
                second_min=np.linalg.eigvalsh(second)[0], first_min=mu_first[0],
                first_norm=np.abs(mu_first).max(), min=np.linalg.eigvalsh(G0)[0],
                drift=np.linalg.norm(second_T + first_T - G0, 2) / np.linalg.norm(G0, 2),
                step=np.arange(self.steps + 1), measured=r.loss[i],
                predicted=predicted_loss(G0, e0, self.lr, self.steps)))
        return records


@dataclass(frozen=True)
class AlignmentRun(_MechanismRun):
    """Statement 2 across widths: FA's final alignment and its two parts.

    An experiment of :mod:`fa.sweep` (no curves). Per seed, the record holds
    ``alignment`` (``cos(beta_T, b)`` from :func:`fa.train`), its ``initial`` and
    ``learned`` parts (:func:`decompose`), ``l_dot_b`` (``l . b``),
    ``learned_share`` (``|l| / |beta_T|``), ``growth`` (``|beta_T| / |beta_0|``) and
    the final ``loss``.
    """

    lam: float = 0.0  # L2 strength on beta, constant

    scalars: ClassVar[dict[str, type]] = dict(alignment=float, initial=float, learned=float,
                                              l_dot_b=float, learned_share=float,
                                              growth=float, loss=float)
    curves: ClassVar[tuple[str, ...]] = ()

    def config(self) -> RunConfig:
        """The training run: FA, constant ``lam``, only the end recorded."""
        return RunConfig(**self._network(), rule="fa", lam=self.lam, record_every=self.steps)

    def run(self, seeds: list[int]) -> list[dict]:
        """One record per seed (see the class docstring)."""
        _, _, r = self._train(seeds)
        c = lam_factor(self.lr, self.lam, self.steps)
        records = []
        for i, seed in enumerate(seeds):
            _, beta0, b = (a[0] for a in model.init([seed], self.d, self.width))
            beta = r.beta[i]
            l = beta - c * beta0                                     # (p,) the learned part of beta
            initial, learned = decompose(beta, beta0, b, c)
            records.append(dict(alignment=cosine(beta, r.b[i]), initial=initial,
                                learned=learned, l_dot_b=l @ b,
                                learned_share=np.linalg.norm(l) / np.linalg.norm(beta),
                                growth=np.linalg.norm(beta) / np.linalg.norm(beta0),
                                loss=r.loss[i, -1]))
        return records


@dataclass(frozen=True)
class DynamicsRun(_MechanismRun):
    """Statements 2 and 3 in time: FA's ``beta_t`` and its parts, by :func:`trajectory`.

    An experiment of :mod:`fa.sweep`. ``lam_schedule="constant"`` keeps ``lam`` on;
    ``"release"`` switches it off from step ``lam_until``. Per seed, the curves at
    every ``record_every``-th step (and the release and last steps): ``step``,
    ``loss``, ``alignment``, its ``initial`` and ``learned`` parts, and the shares of
    ``beta_t`` they come from, ``initial_share`` (``c_t |beta_0| / |beta_t|``) and
    ``learned_share`` (``|l_t| / |beta_t|``). The scalars are the largest relative
    differences between :func:`trajectory` and :func:`fa.train` (``beta_vs_train``:
    final beta; ``loss_vs_train``: the residual's norm ``sqrt(loss)`` along the run,
    relative to its start) and between ``c_t beta_0 + l_t`` (gradients accumulated)
    and ``beta_t`` (``decomposition``).
    """

    lam: float = 0.0                  # L2 strength on beta (until lam_until)
    lam_schedule: str = "constant"    # "constant" or "release"
    lam_until: int | None = None      # "release" only: first step without the penalty
    record_every: int = 1             # steps between kept beta_t

    scalars: ClassVar[dict[str, type]] = dict(beta_vs_train=float, loss_vs_train=float,
                                              decomposition=float)
    curves: ClassVar[tuple[str, ...]] = ("step", "loss", "alignment", "initial", "learned",
                                         "initial_share", "learned_share")

    def config(self) -> RunConfig:
        """The training run :func:`trajectory` is checked against."""
        return RunConfig(**self._network(), rule="fa", lam=self.lam,
                         lam_schedule=self.lam_schedule, lam_until=self.lam_until,
                         record_every=self.steps)

    def cost(self) -> int:
        """Work of one seed: the training run, and the reference loop, about as much again."""
        return 2 * self.config().cost()

    def run(self, seeds: list[int]) -> list[dict]:
        """One record per seed (see the class docstring)."""
        X, y, r = self._train(seeds)                                 # (R, n, d), (R, n)
        records = []
        for i, seed in enumerate(seeds):
            tr = trajectory(X[i], y[i], width=self.width, activation=self.activation,
                            lr=self.lr, steps=self.steps, lam=self.lam,
                            lam_until=self.lam_until, seed=seed, record_every=self.record_every)
            initial, learned = decompose(tr.beta, tr.beta0, tr.b, tr.c)
            norm = np.linalg.norm(tr.beta, axis=1)                   # (K,)
            records.append(dict(
                beta_vs_train=np.abs(tr.beta[-1] - r.beta[i]).max() / np.abs(r.beta[i]).max(),
                # On the residual's norm sqrt(loss), relative to its start: near round-off
                # a loss is only known to eps * |y| / |f - y| relatively, 1e-4 at 1e-22.
                loss_vs_train=np.max(np.abs(np.sqrt(tr.loss) - np.sqrt(r.loss[i])))
                / np.sqrt(r.loss[i][0]),
                decomposition=np.abs(tr.c[:, None] * tr.beta0 + tr.learned - tr.beta).max()
                / np.abs(tr.beta).max(),
                step=tr.record_steps, loss=tr.loss[tr.record_steps],
                alignment=cosine(tr.beta, np.broadcast_to(tr.b, tr.beta.shape)),
                initial=initial, learned=learned,
                initial_share=tr.c * np.linalg.norm(tr.beta0) / norm,
                learned_share=np.linalg.norm(tr.learned, axis=1) / norm))
        return records
