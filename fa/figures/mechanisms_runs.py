"""The numerics of notebook 05: the mechanisms' algebra and the experiments measuring it.

Notation of ``docs/model.md``: ``H = X W^T``, ``A = psi(H)``, ``D = psi'(H)``,
``e = f(X) - y``, ``K = X X^T``, ``v = RULES[rule](beta, b)``. This code keys the
experiments' cache, so it holds only what computes numbers; settings, tables, figures
and claims are in :mod:`fa.figures.mechanisms`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
from threadpoolctl import threadpool_limits

from .. import model
from ..constraints import check_option, validate
from ..experiments import RunConfig
from ..loop import lam_at
from ..model import RULES, cosine
from ..trainer import train

__all__ = ["AlignmentRun", "DynamicsRun", "KernelRun", "Trajectory", "decompose", "kernel",
           "lam_factor", "predicted_loss", "trajectory"]


# --- the algebra ------------------------------------------------------------------------

def kernel(X, W, beta, b, *, activation: str, rule: str):
    """The two terms of the step kernel ``G = second + first`` at ``(W, beta)``.

    ``X`` is (n, d), ``W`` (p, d), ``beta`` and ``b`` (p,); ``activation`` and ``rule`` are
    names in :data:`fa.ACTIVATIONS` and :data:`fa.RULES`.

    Returns
    -------
    second : ndarray (n, n)
        ``A A^T / p``, from the second-layer update: PSD in every rule.
    first : ndarray (n, n)
        ``((D diag(beta * v) D^T) * K) / p``, from the first-layer update: PSD for BP
        (a Schur product of PSD matrices), sign-indefinite for FA.
    """
    rule = check_option(rule, "rule", "kernel", RULES)
    act = model.activation(activation)
    H = X @ W.T                                         # (n, p)
    A, D = act.psi_array(np, H), act.dpsi_array(np, H)  # (n, p)
    v = RULES[rule](beta, b)                            # (p,)
    return A @ A.T / W.shape[0], ((D * (beta * v)) @ D.T) * (X @ X.T) / W.shape[0]


def predicted_loss(G, e0, lr: float, steps: int) -> np.ndarray:
    """Loss of ``e_{t+1} = (I - (2 eta / n) G) e_t``, ``t = 0..steps`` (G symmetric).

    With ``G = Q diag(mu) Q^T``, ``e_t = Q diag((1 - 2 eta mu / n)^t) Q^T e_0``.
    """
    mu, Q = np.linalg.eigh(G)                                        # (n,), (n, n)
    decay = (1.0 - 2.0 * lr * mu / e0.size)[None, :] ** np.arange(steps + 1)[:, None]
    return np.sum((decay * (Q.T @ e0)) ** 2, axis=1) / e0.size       # (steps + 1,)


def lam_factor(lr: float, lam: float, t, lam_until: int | None = None):
    """``c_t = prod_{s<t} (1 - eta lam_s)``: what is left of ``beta_0`` in ``beta_t``.

    ``lam_s = lam`` for ``s < lam_until`` (all ``s`` if ``lam_until`` is None), then 0.
    """
    t = np.asarray(t)
    return (1.0 - lr * lam) ** (t if lam_until is None else np.minimum(t, lam_until))


def decompose(beta, beta0, b, c):
    """Split ``cos(beta, b)`` exactly into the initial and the learned part.

    ``beta = c beta_0 + l``; the parts are ``c beta_0 . b / (|beta| |b|)`` and
    ``l . b / (|beta| |b|)`` and sum to ``cos(beta, b)``. Leading axes broadcast.
    """
    beta, beta0, b = np.asarray(beta), np.asarray(beta0), np.asarray(b)
    c = np.asarray(c)[..., None]
    norm = np.linalg.norm(beta, axis=-1) * np.linalg.norm(b, axis=-1)
    return (np.sum(c * beta0 * b, axis=-1) / norm,
            np.sum((beta - c * beta0) * b, axis=-1) / norm)


@dataclass
class Trajectory:
    """What :func:`trajectory` records."""

    loss: np.ndarray          # (T + 1,) loss after t updates
    record_steps: np.ndarray  # (K,) steps at which beta was kept
    beta: np.ndarray          # (K, p) beta_t at record_steps
    beta0: np.ndarray         # (p,)
    b: np.ndarray             # (p,)
    c: np.ndarray             # (K,) c_t at record_steps (lam_factor)
    learned: np.ndarray       # (K, p) l_t, accumulated step by step


def trajectory(X, y, *, width: int, activation: str, rule: str = "fa", lr: float,
               steps: int, lam: float = 0.0, lam_until: int | None = None, seed: int = 0,
               record_every: int = 1) -> Trajectory:
    """The descent of :func:`fa.train`, one :func:`fa.model.step_rowspace` at a time.

    Parameters
    ----------
    X : ndarray (n, d)
    y : ndarray (n,)
    width, activation, rule, lr, steps, lam, seed
        As for :func:`fa.train` (``seed`` draws ``W``, ``beta`` and ``b``).
    lam_until : int, optional
        First step without the penalty ("release"); None keeps it on.
    record_every : int, default 1
        Steps between kept ``beta_t`` (``lam_until`` and the last step are kept too).

    Returns
    -------
    Trajectory
        The loss at every step, and ``beta_t`` and its learned part ``l_t`` at the kept
        steps. ``l_t`` is accumulated from the updates with the factor ``1 - eta lam_t`` of
        the trainer's penalty schedule, so ``beta_t = c_t beta_0 + l_t`` with
        :func:`lam_factor`'s ``c_t`` holds to round-off only if the two schedules agree.
    """
    rule = check_option(rule, "rule", "trajectory", RULES)
    W, beta, b = model.init([seed], X.shape[1], width)            # (1, p, d), (1, p), (1, p)
    K, H, y = (X @ X.T)[None], (X @ W[0].T)[None], y[None]        # (1, n, n), (1, n, p), (1, n)
    beta0, learned = beta[0].copy(), np.zeros(width)
    loss, kept = np.empty(steps + 1), []
    schedule = "constant" if lam_until is None else "release"
    # One BLAS thread: the products are small and threads cost more than they give
    # (10x slower on a busy 2-core machine).
    with threadpool_limits(limits=1, user_api="blas"):
        for t in range(steps + 1):
            if t % record_every == 0 or t in (steps, lam_until):
                kept.append((t, beta[0].copy(), learned.copy()))
            lam_t = lam_at(t, lam, schedule, lam_until, None)
            # The step returns the loss before it: a last step of size 0 gives the final loss.
            eta = lr if t < steps else 0.0
            H, new, L = model.step_rowspace(K, H, y, beta, b, activation=activation, rule=rule,
                                            eta=eta, lam=lam_t)
            loss[t] = L[0]
            # beta_{t+1} = (1 - eta lam_t) beta_t - eta g_t: the data term joins l.
            learned = (1.0 - eta * lam_t) * (learned - beta[0]) + new[0]
            beta = new
    record_steps, kept_beta, kept_learned = (np.array(x) for x in zip(*kept))
    return Trajectory(loss=loss, record_steps=record_steps, beta=kept_beta, beta0=beta0,
                      b=b[0], c=lam_factor(lr, lam, record_steps, lam_until),
                      learned=kept_learned)


# --- the experiments (the protocol of fa.sweep) -----------------------------------------

@dataclass(frozen=True)
class _Run:
    """What the three experiments share; each trains by :meth:`config` and measures."""

    activation: str   # psi: a name in fa.ACTIVATIONS
    width: int        # p, hidden units of the student (and of the teacher)
    data: str         # "linear" or "teacher", as fa.make_data
    n: int            # samples
    d: int            # input dimension
    lr: float         # eta, the step size
    steps: int        # updates

    numerics_modules: ClassVar[tuple[str, ...]] = (__name__, *RunConfig.numerics_modules)

    def __post_init__(self):
        # The table of constraints fa.RunConfig and fa.train use; errors name the field.
        values = validate(dataclasses.asdict(self), type(self).__name__)
        for name, value in values.items():   # frozen: normalise through object.__setattr__
            object.__setattr__(self, name, value)

    def config(self) -> RunConfig:
        """The training run: the fields :class:`fa.RunConfig` shares (its defaults for the
        rest, FA among them), recording ``cos(beta, b)`` only at the end."""
        shared = {f.name for f in dataclasses.fields(RunConfig)} - {"record_every"}
        return RunConfig(**{k: v for k, v in dataclasses.asdict(self).items() if k in shared},
                         record_every=self.steps)

    def cost(self) -> int:
        """Work of one seed: that of its training run."""
        return self.config().cost()

    def chunk_size(self) -> int:
        """Seeds per ``fa.train`` call, as for the training run's :class:`fa.RunConfig`."""
        return self.config().chunk_size()

    def _train(self, seeds: list[int]):
        """Data ``X`` (R, n, d), ``y`` (R, n), the :func:`fa.train` result and the initial
        ``W, beta, b`` of ``seeds`` (:func:`fa.model.init`, the draws ``fa.train`` makes)."""
        config = self.config()
        X, y = config.draw_data(seeds)
        result = train(X, y, seed=seeds, **config.train_kwargs())
        if np.any(result.diverged):
            # The algebra below would run on a blown-up network: stop, and say where.
            raise FloatingPointError(f"{self!r} diverged for some of the seeds {seeds}; "
                                     "its step size is too large for this network.")
        return X, y, result, model.init(seeds, self.d, self.width)


@dataclass(frozen=True)
class KernelRun(_Run):
    """Statement 1 for one rule (``lam = 0``): the kernel at initialisation and the loss it
    predicts. Per seed: the smallest eigenvalue of ``A A^T / p`` (``second_min``), of the
    rule's first-layer term (``first_min``) and of ``G_0`` (``min``), the term's spectral
    norm (``first_norm``), ``drift = |G_T - G_0|_2 / |G_0|_2``, and the curves ``measured``
    (:func:`fa.train`) and ``predicted`` (by the frozen ``G_0``) loss."""

    rule: str = "fa"  # a name in fa.RULES

    scalars: ClassVar[dict[str, type]] = dict(second_min=float, first_min=float,
                                              first_norm=float, min=float, drift=float)
    curves: ClassVar[tuple[str, ...]] = ("step", "measured", "predicted")

    def run(self, seeds: list[int]) -> list[dict]:
        """One record per seed (see the class docstring)."""
        X, y, r, (W, beta, b) = self._train(seeds)                   # X (R, n, d), y (R, n)
        kw = dict(activation=self.activation, rule=self.rule)
        records = []
        for i in range(len(seeds)):
            e0 = model.psi(self.activation, X[i] @ W[i].T) @ beta[i] / np.sqrt(self.width) - y[i]
            second, first = kernel(X[i], W[i], beta[i], b[i], **kw)  # (n, n) each
            G0, mu_first = second + first, np.linalg.eigvalsh(first)
            G_T = sum(kernel(X[i], r.W[i], r.beta[i], r.b[i], **kw))  # second + first
            records.append(dict(
                second_min=np.linalg.eigvalsh(second)[0], first_min=mu_first[0],
                first_norm=np.abs(mu_first).max(), min=np.linalg.eigvalsh(G0)[0],
                drift=np.linalg.norm(G_T - G0, 2) / np.linalg.norm(G0, 2),
                step=np.arange(self.steps + 1), measured=r.loss[i],
                predicted=predicted_loss(G0, e0, self.lr, self.steps)))
        return records


@dataclass(frozen=True)
class AlignmentRun(_Run):
    """Statement 2 across widths: FA's final alignment and its parts, no curves. Per seed:
    ``alignment`` (``cos(beta_T, b)``), its ``initial`` and ``learned`` parts
    (:func:`decompose`), ``l_dot_b`` (``l . b``), ``learned_share`` (``|l| / |beta_T|``),
    ``growth`` (``|beta_T| / |beta_0|``) and the final ``loss``."""

    lam: float = 0.0  # L2 strength on beta, constant

    scalars: ClassVar[dict[str, type]] = dict(alignment=float, initial=float, learned=float,
                                              l_dot_b=float, learned_share=float,
                                              growth=float, loss=float)
    curves: ClassVar[tuple[str, ...]] = ()

    def run(self, seeds: list[int]) -> list[dict]:
        """One record per seed (see the class docstring)."""
        _, _, r, (_, beta0, b) = self._train(seeds)                  # beta0, b: (R, p)
        c = lam_factor(self.lr, self.lam, self.steps)
        l = r.beta - c * beta0                                       # (R, p) the learned part
        initial, learned = decompose(r.beta, beta0, b, c)
        norm = np.linalg.norm(r.beta, axis=1)                        # (R,)
        columns = dict(alignment=cosine(r.beta, r.b), initial=initial, learned=learned,
                       l_dot_b=np.sum(l * b, axis=1),
                       learned_share=np.linalg.norm(l, axis=1) / norm,
                       growth=norm / np.linalg.norm(beta0, axis=1), loss=r.loss[:, -1])
        return [dict(zip(columns, row)) for row in zip(*columns.values())]


@dataclass(frozen=True)
class DynamicsRun(_Run):
    """Statements 2 and 3 in time: FA's ``beta_t`` and its parts, by :func:`trajectory`.

    ``lam_schedule="release"`` switches ``lam`` off from step ``lam_until``. Per seed, the
    curves at every ``record_every``-th step (and the release and last steps): ``step``,
    ``loss``, ``alignment``, its ``initial`` and ``learned`` parts, and the shares of
    ``beta_t`` they come from, ``initial_share`` (``c_t |beta_0| / |beta_t|``) and
    ``learned_share`` (``|l_t| / |beta_t|``). The scalars are the largest relative
    differences from :func:`fa.train` of the final beta (``beta_vs_train``) and of the
    residual's norm ``sqrt(loss)`` (``loss_vs_train``, relative to its start), and of
    ``c_t beta_0 + l_t`` from ``beta_t`` (``decomposition``).
    """

    lam: float = 0.0                  # L2 strength on beta (until lam_until)
    lam_schedule: str = "constant"    # "constant" or "release"
    lam_until: int | None = None      # "release" only: first step without the penalty
    record_every: int = 1             # steps between kept beta_t

    scalars: ClassVar[dict[str, type]] = dict(beta_vs_train=float, loss_vs_train=float,
                                              decomposition=float)
    curves: ClassVar[tuple[str, ...]] = ("step", "loss", "alignment", "initial", "learned",
                                         "initial_share", "learned_share")

    def cost(self) -> int:
        """Work of one seed: the training run, and the reference loop, about as much again."""
        return 2 * self.config().cost()

    def run(self, seeds: list[int]) -> list[dict]:
        """One record per seed (see the class docstring)."""
        X, y, r, _ = self._train(seeds)                              # (R, n, d), (R, n)
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
