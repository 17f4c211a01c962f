"""The two-layer experiment: :class:`RunConfig`, one training configuration of a sweep.

:func:`fa.run_sweep` (:mod:`fa.sweep`) trains every (config, seed) pair with
:func:`fa.train` on :func:`fa.make_data` data, a chunk of seeds per stacked call, and
caches each run (:mod:`fa.cache`). The chunk size depends on the config only, never on
the workers, so a sweep gives the same numbers on one core or many.
"""

from __future__ import annotations

import dataclasses
from typing import ClassVar

import numpy as np

from .cache import cache_key, is_cached
from .constraints import validate
from .data import make_data
from .sweep import SweepResult, run_sweep
from .trainer import Stopping, max_replicas, train

__all__ = ["CHUNK_BUDGET_BYTES", "CHUNK_BUDGET_WORK", "MAX_CHUNK", "RunConfig",
           "SweepResult", "cache_key", "is_cached", "run_sweep"]

CHUNK_BUDGET_BYTES = 512 * 2**20  # memory one fa.train call may use
CHUNK_BUDGET_WORK = 4 * 10**12    # cost() one fa.train call may take (see chunk_size)
MAX_CHUNK = 8                     # seeds per fa.train call: small, so progress is saved often

_LABEL = {"label": True}          # a field for tables and legends, not in the cache key


@dataclasses.dataclass(frozen=True)
class RunConfig:
    """One training configuration of a sweep (an experiment of :mod:`fa.sweep`).

    Every field except the two labels goes to :func:`fa.make_data` / :func:`fa.train`
    and into the cache key. Values are validated (numbers normalised) on construction.

    Parameters
    ----------
    activation : str, default "relu"
        ``psi``: a name in :data:`fa.ACTIVATIONS` ("linear", "relu", "tanh", "sigmoid", ...).
    width : int, default 200
        ``p``, hidden units of the student (and of the teacher that makes the data).
    rule : str, default "fa"
        "fa" (the error sent back through the fixed random ``b``) or "bp" (through ``beta``).
    data : str, default "teacher"
        "linear" (``y = X theta``) or "teacher" (a random two-layer network).
    n, d : int, default 50 and 150
        Samples and input dimension.
    lr : float, default 1e-2
        ``eta``, the step size.
    steps : int, default 5000
        Updates; with ``until_converged``, the minimum number ``T(p)``.
    lam : float, default 0.0
        L2 strength on ``beta`` (``lambda_0`` of a schedule).
    lam_schedule : {"constant", "release", "decay"}, default "constant"
        "release": ``lam`` until step ``lam_until``, then 0; "decay": ``lam * lam_gamma**t``.
    lam_until, lam_gamma : int, float, optional
        "release" only: the first step without the penalty; "decay" only: the factor.
    dropout : float, default 0.0
        ``q``, the inverted-dropout rate on the hidden units.
    until_converged : bool, default False
        The authors' stopping rule (:class:`fa.Stopping`): at least ``steps`` updates,
        then on until a check finds the monitored value quiet.
    check_every, tol, converge_on : int, float, str, default 1000, 1e-3 and "loss"
        Steps between checks, the change below which a check latches "converged", and
        the monitored value ("loss" or "alignment").
    max_steps : int, optional
        Cap on the updates with ``until_converged`` (None: ``10 * steps``).
    record_every : int, default 1
        Record the loss and ``cos(beta, b)`` every this many steps.
    dtype : {"float64", "float32"}, default "float64"
        Floating-point type of the computation.
    regularizer, strength : optional
        Labels for tables and legends, not in the cache key; None: "none", "l2" or the
        schedule's name, "dropout", or "dropout+" the penalty's with both, and the
        dropout rate (if any) or ``lam``.

    Examples
    --------
    >>> RunConfig(activation="relu", width=200, lr=1e-2, steps=5000, lam=0.05).regularizer
    'l2'
    """

    activation: str = "relu"
    width: int = 200
    rule: str = "fa"
    data: str = "teacher"
    n: int = 50
    d: int = 150
    lr: float = 1e-2
    steps: int = 5000
    lam: float = 0.0
    lam_schedule: str = "constant"
    lam_until: int | None = None
    lam_gamma: float | None = None
    dropout: float = 0.0
    until_converged: bool = False
    check_every: int = 1000
    tol: float = 1e-3
    converge_on: str = "loss"
    max_steps: int | None = None
    record_every: int = 1
    dtype: str = "float64"
    regularizer: str | None = dataclasses.field(default=None, metadata=_LABEL)
    strength: float | None = dataclasses.field(default=None, metadata=_LABEL)

    # The experiment protocol of fa.sweep (class attributes, not fields). The code that
    # computes a run's numbers; fa.train's checks, chunking and messages are left out.
    numerics_modules: ClassVar[tuple[str, ...]] = ("fa.model", "fa.loop", "fa._kernels",
                                                   "fa.data")
    scalars: ClassVar[dict[str, type]] = dict(steps_taken=int, final_loss=float,
                                              final_alignment=float, diverged=bool)
    curves: ClassVar[tuple[str, ...]] = ("step", "loss", "alignment")

    def __post_init__(self):
        # One table of constraints (fa.constraints) for RunConfig and fa.train alike.
        values = validate({f.name: getattr(self, f.name) for f in dataclasses.fields(self)},
                          "RunConfig")
        if values["regularizer"] is None:
            lam, schedule = values["lam"], values["lam_schedule"]
            penalty = "none" if lam == 0 else "l2" if schedule == "constant" else schedule
            values["regularizer"] = penalty if values["dropout"] == 0 else \
                "dropout" if lam == 0 else f"dropout+{penalty}"
        if values["strength"] is None:
            values["strength"] = values["dropout"] if values["dropout"] > 0 else values["lam"]
        for name, value in values.items():   # frozen: normalise through object.__setattr__
            object.__setattr__(self, name, value)

    def train_kwargs(self) -> dict:
        """The keyword arguments of :func:`fa.train` (all but ``X, y, seed``)."""
        skip = {"data", "n", "d", "regularizer", "strength"}
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)
                if f.name not in skip}

    def draw_data(self, seeds: list[int]):
        """``X`` (R, n, d) and ``y`` (R, n) of ``seeds``, a teacher (if any) of this
        config's width and activation."""
        teacher = self.data == "teacher"
        return make_data(self.data, self.n, self.d, seed=seeds,
                         width=self.width if teacher else None,
                         activation=self.activation if teacher else None)

    def run(self, seeds: list[int], *, train_fn=None, **options) -> list[dict]:
        """Train the seeds as stacked replicas on their own data; one record per seed
        (:attr:`scalars`, ``capped`` if reported, :attr:`curves`). ``options``
        (``backend``, ``device``) go to :func:`fa.train`; ``train_fn`` replaces it."""
        X, y = self.draw_data(seeds)
        result = (train_fn or train)(X, y, seed=seeds, **self.train_kwargs(), **options)
        return [_record(result, r) for r in range(len(seeds))]

    def cost(self) -> int:
        """Work of one seed: each step is a few (n, d) x (d, p) products (the extra steps
        of ``until_converged`` are unknown in advance)."""
        return self.steps * self.n * self.width * self.d

    def max_cost(self) -> int:
        """Work of one seed that trains until its cap under ``until_converged``;
        ``cost()`` otherwise."""
        cap = Stopping(0, steps=self.steps, until_converged=self.until_converged,
                       cap=self.max_steps).cap
        return cap * self.n * self.width * self.d

    def chunk_size(self) -> int:
        """Seeds per ``fa.train`` call: as many as fit in ``CHUNK_BUDGET_BYTES`` and in
        ``CHUNK_BUDGET_WORK``, at most ``MAX_CHUNK`` (and at least one)."""
        # The trainer's memory estimate for the formulation that needs more, so the
        # chunk depends on the config only (never on the executor or the cache).
        fits = min(max_replicas(self.n, self.d, self.width, dtype=self.dtype, method=method,
                                memory_budget=CHUNK_BUDGET_BYTES)
                   for method in ("rowspace", "direct"))
        # A stopped sweep loses the chunks running at the time. The work budget keeps
        # that to one run of the longest: the paper's width-12 800 runs (T(p) = 40 406
        # steps) go one seed per call, width 3200 still eight.
        affordable = max(1, CHUNK_BUDGET_WORK // self.cost())
        return int(min(MAX_CHUNK, fits, affordable))


def _record(result, r: int) -> dict:
    """The cached summary of replica ``r`` of a stacked ``TrainResult``."""
    steps = int(np.asarray(result.steps)[r])
    loss = np.asarray(result.loss, dtype=np.float64)[r]               # (T+1,)
    alignment = np.asarray(result.alignment, dtype=np.float64)[r]     # (K,)
    record_steps = np.asarray(result.record_steps, dtype=np.int64)   # (K,), shared
    reached = record_steps <= steps                                   # drop the padding
    step, alignment = record_steps[reached], alignment[reached]
    loss_at = loss[step]
    # NaN rows are padding (another replica's final step) or a diverged run's last
    # step: drop them, so a diverged run's curve ends where it blew up.
    finite = np.isfinite(loss_at) & np.isfinite(alignment)
    record = dict(steps_taken=steps, final_loss=float(loss[steps]),
                  final_alignment=float(alignment[-1]),
                  diverged=bool(np.asarray(result.diverged)[r]),
                  step=step[finite], loss=loss_at[finite], alignment=alignment[finite])
    if hasattr(result, "capped"):   # the run hit max_steps before converging
        record["capped"] = bool(np.asarray(result.capped)[r])
    return record
