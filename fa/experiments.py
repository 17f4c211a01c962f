"""The sweep engine: many seeded training runs, cached on disk, resumable, parallel.

A figure is a list of :class:`RunConfig` (one per curve or point) times a list of
seeds. :func:`run_sweep` trains every (config, seed) pair with :func:`fa.train` on
:func:`fa.make_data` data and returns tidy tables. Each finished pair is stored as
one small ``.npz`` file named by a hash of (config, seed, :data:`NUMERICS_VERSION`),
so an interrupted sweep resumes where it stopped and a repeated sweep trains nothing.

Seeds of one config are trained together, a chunk of replicas per ``fa.train`` call
(the trainer's stacked path). The chunk size comes from a memory budget and never
from ``n_jobs``, so a sweep gives the same numbers on one core or many.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import tempfile
import warnings
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

import numpy as np
import pandas as pd
from threadpoolctl import threadpool_limits
from tqdm import tqdm

from . import paths
from ._validation import check_float, check_int, check_option, check_seeds
from .activations import ACTIVATIONS
from .data import KINDS as DATA_KINDS
from .data import make_data
from .trainer import (CONVERGE_ON, DTYPES, LAM_SCHEDULES, RULES, DivergenceWarning,
                      max_replicas, train)

# Bump whenever fa.train / fa.make_data would produce different numbers for the same
# arguments: every cached run then misses and is recomputed.
NUMERICS_VERSION = 3   # 3: fused loops (fa._kernels); 2: H <- H - K M in the row-space path

CHUNK_BUDGET_BYTES = 512 * 2**20  # memory one fa.train call may use
MAX_CHUNK = 8                     # seeds per fa.train call: small, so progress is saved often

_CALLER = "RunConfig"


@dataclasses.dataclass(frozen=True)
class RunConfig:
    """One training configuration of a sweep; the seed is given separately.

    Every field except the two labels is passed on to :func:`fa.make_data` /
    :func:`fa.train` and enters the cache key. Values are validated (and numbers
    normalised to int / float) on construction.

    Examples
    --------
    >>> RunConfig(activation="relu", width=200, lr=1e-2, steps=5000, lam=0.05).regularizer
    'l2'
    """

    activation: str = "relu"          # psi: "linear", "relu", "tanh" or "sigmoid"
    width: int = 200                  # p, hidden units of the student (and of the teacher)
    rule: str = "fa"                  # "fa" (feedback through b) or "bp" (through beta)
    data: str = "teacher"             # "linear" (y = X theta) or "teacher" (random network)
    n: int = 50                       # samples
    d: int = 150                      # input dimension
    lr: float = 1e-2                  # eta, the step size
    steps: int = 5000                 # updates (the minimum when until_converged)
    lam: float = 0.0                  # L2 strength on beta (lambda_0 for a schedule)
    lam_schedule: str = "constant"    # "constant", "release" (off from lam_until), "decay"
    lam_until: int | None = None      # "release" only: first step without the penalty
    lam_gamma: float | None = None    # "decay" only: lam_t = lam * lam_gamma**t
    dropout: float = 0.0              # q, inverted-dropout rate on the hidden units
    until_converged: bool = False     # keep going after `steps` while the monitored value moves
    check_every: int = 1000           # steps between convergence checks
    tol: float = 1e-3                 # stop once a check moves the monitored value by < tol
    converge_on: str = "loss"         # monitored value: "loss" or "alignment"
    max_steps: int | None = None      # hard cap on updates when until_converged (None: no cap)
    record_every: int = 1             # record loss and cos(beta, b) every this many steps
    dtype: str = "float64"            # floating-point type of the computation
    regularizer: str | None = None    # label for tables/legends; None: derived from the fields
    strength: float | None = None     # label (lam or dropout rate); None: derived likewise

    def __post_init__(self):
        def put(name, value):  # frozen dataclass: normalise through object.__setattr__
            object.__setattr__(self, name, value)

        put("activation", check_option(self.activation, "activation", _CALLER, ACTIVATIONS))
        put("width", check_int(self.width, "width", _CALLER, low=1))
        put("rule", check_option(self.rule, "rule", _CALLER, RULES))
        put("data", check_option(self.data, "data", _CALLER, DATA_KINDS))
        put("n", check_int(self.n, "n", _CALLER, low=1))
        put("d", check_int(self.d, "d", _CALLER, low=1))
        put("lr", check_float(self.lr, "lr", _CALLER, low=0.0, low_open=True))
        put("steps", check_int(self.steps, "steps", _CALLER, low=1))
        put("lam", check_float(self.lam, "lam", _CALLER, low=0.0))
        put("lam_schedule", check_option(self.lam_schedule, "lam_schedule", _CALLER,
                                         LAM_SCHEDULES))
        # Each schedule parameter is required by its schedule and refused by the others,
        # so two configs that train identically cannot differ (and miss the cache).
        for name, schedule in (("lam_until", "release"), ("lam_gamma", "decay")):
            if self.lam_schedule == schedule:
                check = check_int if name == "lam_until" else check_float
                bounds = dict(low=0) if name == "lam_until" else \
                    dict(low=0.0, high=1.0, low_open=True)
                put(name, check(getattr(self, name), name, _CALLER, **bounds))
            elif getattr(self, name) is not None:
                raise ValueError(f"The '{name}' parameter of {_CALLER} is only used with "
                                 f"lam_schedule={schedule!r}. Got {name}="
                                 f"{getattr(self, name)!r} with lam_schedule="
                                 f"{self.lam_schedule!r} instead.")
        put("dropout", check_float(self.dropout, "dropout", _CALLER,
                                   low=0.0, high=1.0, high_open=True))
        if not isinstance(self.until_converged, (bool, np.bool_)):
            raise ValueError(f"The 'until_converged' parameter of {_CALLER} must be a bool. "
                             f"Got {self.until_converged!r} instead.")
        put("until_converged", bool(self.until_converged))
        put("check_every", check_int(self.check_every, "check_every", _CALLER, low=1))
        put("tol", check_float(self.tol, "tol", _CALLER, low=0.0, low_open=True))
        put("converge_on", check_option(self.converge_on, "converge_on", _CALLER, CONVERGE_ON))
        if self.max_steps is not None:
            put("max_steps", check_int(self.max_steps, "max_steps", _CALLER, low=self.steps))
        put("record_every", check_int(self.record_every, "record_every", _CALLER, low=1))
        put("dtype", check_option(self.dtype, "dtype", _CALLER, DTYPES))

        if self.regularizer is None:
            put("regularizer", "dropout" if self.dropout > 0 else
                "none" if self.lam == 0 else
                "l2" if self.lam_schedule == "constant" else self.lam_schedule)
        elif not isinstance(self.regularizer, str):
            raise ValueError(f"The 'regularizer' parameter of {_CALLER} must be a str or "
                             f"None. Got {self.regularizer!r} instead.")
        if self.strength is None:
            put("strength", self.dropout if self.dropout > 0 else self.lam)
        else:
            put("strength", check_float(self.strength, "strength", _CALLER))

    def train_kwargs(self) -> dict:
        """The keyword arguments of :func:`fa.train` (all but ``X, y, seed``)."""
        skip = {"data", "n", "d", "regularizer", "strength"}
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)
                if f.name not in skip}


def cache_key(config: RunConfig, seed: int) -> str:
    """Return the sha256 hex digest naming the cached result of ``(config, seed)``.

    The key covers every field that changes the numbers, the seed and
    :data:`NUMERICS_VERSION`; the labels ``regularizer`` and ``strength`` are left
    out, so relabelling a curve reuses its runs.
    """
    fields = dataclasses.asdict(config)
    del fields["regularizer"], fields["strength"]
    fields.update(seed=int(seed), numerics_version=NUMERICS_VERSION)
    text = json.dumps(fields, sort_keys=True)  # floats written with repr: exact
    return hashlib.sha256(text.encode()).hexdigest()


@dataclasses.dataclass
class SweepResult:
    """Tidy tables of a sweep.

    Attributes
    ----------
    runs : pandas.DataFrame
        One row per (config, seed), in config order then seed order: ``run`` (the
        config's position in the list), every :class:`RunConfig` field, ``seed``,
        ``steps_taken``, ``final_loss``, ``final_alignment``, ``diverged``.
    curves : pandas.DataFrame
        One row per (config, seed, recorded step): ``run``, every config field,
        ``seed``, ``step``, ``loss`` (training MSE after ``step`` updates) and
        ``alignment`` (cos(beta, b)). A diverged run stops at its last finite row.
        Its size is set by ``RunConfig.record_every``.
    """

    runs: pd.DataFrame
    curves: pd.DataFrame


def run_sweep(configs, seeds, *, cache_dir=paths.CACHE_DIR, n_jobs=1, progress=True,
              desc=None, chunk_size=None, train_fn=None) -> SweepResult:
    """Train every ``(config, seed)`` pair, reusing cached runs, and tabulate them.

    Parameters
    ----------
    configs : RunConfig or sequence of RunConfig
        The configurations, in the order the tables list them.
    seeds : int or sequence of int
        Seeds run for every config (an int is one seed: use ``range(50)`` for 50).
        Seed ``s`` draws the data
        (``fa.make_data(..., seed=s)``) and the network and ``b``
        (``fa.train(..., seed=s)``).
    cache_dir : path or None, default ``fa.paths.CACHE_DIR``
        Folder of the per-run ``.npz`` files (relative paths are taken from the
        project root); ``None`` caches nothing.
    n_jobs : int, default 1
        Worker processes; 1 trains in this process. Every chunk is trained on one
        BLAS thread, so the results do not depend on ``n_jobs``: to use more cores,
        raise ``n_jobs`` (up to the number of cores).
    progress : bool, default True
        Show a progress bar with an ETA, advancing by estimated cost
        (steps x n x width x d); cached runs count as done at once.
    desc : str, optional
        Label of the progress bar.
    chunk_size : int, optional
        Most seeds per ``fa.train`` call. Default: as many as fit in
        ``CHUNK_BUDGET_BYTES``, at most ``MAX_CHUNK``.
    train_fn : callable, optional
        Stand-in for :func:`fa.train` with the same signature (tests, benchmarks);
        it must be picklable when ``n_jobs > 1``.

    Returns
    -------
    SweepResult
        ``.runs`` (one row per run) and ``.curves`` (one row per recorded step).

    Warns
    -----
    fa.DivergenceWarning
        Once, if any run diverged (such runs are kept, with ``diverged=True``).

    Examples
    --------
    >>> cfgs = [RunConfig(activation="relu", width=200, lr=1e-2, steps=500, lam=lam)
    ...         for lam in (0.0, 0.05)]
    >>> res = run_sweep(cfgs, range(5), progress=False)  # doctest: +SKIP
    >>> res.runs.groupby("lam").final_alignment.mean()  # doctest: +SKIP
    """
    caller = "run_sweep"
    configs = [configs] if isinstance(configs, RunConfig) else list(configs)
    if not configs or not all(isinstance(c, RunConfig) for c in configs):
        raise ValueError(f"The 'configs' parameter of {caller} must be a RunConfig or a "
                         f"non-empty sequence of them. Got {configs!r} instead.")
    seeds, _ = check_seeds(seeds, "seeds", caller)
    if len(set(seeds)) != len(seeds):
        raise ValueError(f"The 'seeds' parameter of {caller} must not repeat a seed. "
                         f"Got {seeds!r} instead.")
    n_jobs = check_int(n_jobs, "n_jobs", caller, low=1)
    if chunk_size is not None:
        chunk_size = check_int(chunk_size, "chunk_size", caller, low=1)
    cache = None if cache_dir is None else paths.resolve(cache_dir, paths.CACHE_DIR)
    if cache is not None:
        cache.mkdir(parents=True, exist_ok=True)

    # Plan: load what is cached, and cut the rest into chunks of one config's seeds.
    # Chunks are cut from the full seed list, so a resumed sweep trains the same chunks.
    results = {}  # (config, seed) -> record dict
    todo = []     # (config, missing seeds of one chunk)
    for config in dict.fromkeys(configs):  # a repeated config is trained once
        size = chunk_size or _default_chunk_size(config)
        for start in range(0, len(seeds), size):
            missing = []
            for seed in seeds[start:start + size]:
                record = _load(cache, config, seed)
                if record is None:
                    missing.append(seed)
                else:
                    results[config, seed] = record
            if missing:
                todo.append((config, missing))

    total = sum(_cost(c) for c in configs) * len(seeds)
    done = total - sum(_cost(c) * len(s) for c, s in todo)
    bar = _progress_bar(progress, desc, total, done)
    try:
        for config, chunk_seeds, records in _train_all(todo, n_jobs, train_fn):
            for seed, record in zip(chunk_seeds, records):
                _save(cache, config, seed, record)
                results[config, seed] = record
            bar.update(_cost(config) * len(chunk_seeds))
    finally:
        bar.close()
    return _tabulate(configs, seeds, results)


def _train_all(todo, n_jobs, train_fn):
    """Yield ``(config, seeds, records)`` per chunk as each one finishes.

    If a chunk fails, the chunks already finished have been yielded (and saved by
    the caller) before the error is raised again.
    """
    if n_jobs == 1 or len(todo) <= 1:
        for config, seeds in todo:
            yield config, seeds, _train_chunk(config, seeds, train_fn)
        return
    # Largest chunks first, so no worker is left with a long one at the end.
    todo = sorted(todo, key=lambda job: -_cost(job[0]) * len(job[1]))
    pool = ProcessPoolExecutor(max_workers=min(n_jobs, len(todo)))
    try:
        futures = {pool.submit(_train_chunk, config, seeds, train_fn): (config, seeds)
                   for config, seeds in todo}
        error = None
        for future in as_completed(futures):
            if future.cancelled():
                continue
            if future.exception() is not None:
                if error is None:
                    error = future.exception()
                    for other in futures:  # running chunks still finish and are saved
                        other.cancel()
                continue
            yield (*futures[future], future.result())
        if error is not None:
            raise error
    finally:
        # Normally every chunk is done by now. After an interrupt (or the caller
        # stopping) do not wait for running chunks: nobody would save their results.
        pool.shutdown(wait=False, cancel_futures=True)


def _train_chunk(config: RunConfig, seeds: list[int], train_fn=None) -> list[dict]:
    """Train one chunk of seeds as stacked replicas; return one record per seed."""
    teacher = config.data == "teacher"
    X, y = make_data(config.data, config.n, config.d, seed=list(seeds),
                     width=config.width if teacher else None,
                     activation=config.activation if teacher else None)  # (R, n, d), (R, n)
    # One BLAS thread, in this process as in a worker: multithreaded BLAS rounds
    # differently (results would depend on n_jobs), and on the small batched products
    # of a chunk it is slower anyway, badly so when cores are shared. Use n_jobs.
    with threadpool_limits(limits=1), warnings.catch_warnings():
        # run_sweep warns once for the whole sweep instead of once per chunk.
        warnings.simplefilter("ignore", DivergenceWarning)
        result = (train_fn or train)(X, y, seed=list(seeds), **config.train_kwargs())
    return [_record(result, r) for r in range(len(seeds))]


def _record(result, r: int) -> dict:
    """The cached summary of replica ``r`` of a stacked ``TrainResult``."""
    steps = int(np.asarray(result.steps)[r])
    loss = np.asarray(result.loss, dtype=np.float64)[r]               # (T+1,)
    alignment = np.asarray(result.alignment, dtype=np.float64)[r]     # (K,)
    record_steps = np.asarray(result.record_steps, dtype=np.int64)   # (K,), shared
    reached = record_steps <= steps  # the NaN padding after this replica stopped
    step, alignment = record_steps[reached], alignment[reached]
    loss_at = loss[step]
    final_loss, final_alignment = loss[steps], alignment[-1]
    # NaN rows are padding (another replica's final step) or a diverged run's last
    # step: drop them, so a diverged run's curve ends where it blew up.
    finite = np.isfinite(loss_at) & np.isfinite(alignment)
    return dict(step=step[finite], loss=loss_at[finite], alignment=alignment[finite],
                steps_taken=steps, diverged=bool(np.asarray(result.diverged)[r]),
                final_loss=float(final_loss), final_alignment=float(final_alignment))


def _default_chunk_size(config: RunConfig) -> int:
    # The trainer's own memory estimate, for whichever formulation needs more, so the
    # chunk depends on the config only (never on n_jobs or on what is cached).
    fits = min(max_replicas(config.n, config.d, config.width, dtype=config.dtype,
                            method=method, memory_budget=CHUNK_BUDGET_BYTES)
               for method in ("rowspace", "direct"))
    return int(min(MAX_CHUNK, fits))


def _cost(config: RunConfig) -> int:
    # Each step is a few (n, d) x (d, p) products; the converged runs' extra steps
    # are unknown in advance, so the bar may finish a little unevenly for them.
    return config.steps * config.n * config.width * config.d or 1


def _progress_bar(progress, desc, total, done):
    # The plain text bar: it renders in a terminal, in Jupyter and in the executed
    # notebooks papermill saves (a widget bar needs ipywidgets and a live frontend).
    # Updates at most every 2 s keep the saved notebooks small.
    return tqdm(total=total, initial=done, desc=desc or "sweep", disable=not progress,
                mininterval=2.0,
                bar_format="{desc}: {percentage:3.0f}%|{bar}| [{elapsed}<{remaining}]")


# --- the cache: one .npz per (config, seed), written atomically ----------------------

def _path(cache: Path, config: RunConfig, seed: int) -> Path:
    return cache / f"{cache_key(config, seed)}.npz"


def is_cached(cache_dir, config: RunConfig, seed: int) -> bool:
    """Whether ``(config, seed)`` has a result file under ``cache_dir`` (not read)."""
    return _path(paths.resolve(cache_dir, paths.CACHE_DIR), config, seed).exists()


def _load(cache, config, seed):
    """Return the cached record of ``(config, seed)``, or None if absent or unreadable."""
    if cache is None:
        return None
    path = _path(cache, config, seed)
    try:
        with np.load(path, allow_pickle=False) as f:
            return dict(step=f["step"], loss=f["loss"], alignment=f["alignment"],
                        steps_taken=int(f["steps_taken"]), diverged=bool(f["diverged"]),
                        final_loss=float(f["final_loss"]),
                        final_alignment=float(f["final_alignment"]))
    except (OSError, KeyError, ValueError):  # absent, or damaged: train it again
        return None


def _save(cache, config, seed, record):
    """Write the record to a temporary file beside the target, then rename it.

    ``os.replace`` is atomic, so a reader (or a rerun after a kill) sees either the
    whole file or none: a crash can leave no half-written ``.npz``.
    """
    if cache is None:
        return
    # The full configuration goes along, so a cache file says what it holds.
    about = json.dumps(dict(dataclasses.asdict(config), seed=int(seed),
                            numerics_version=NUMERICS_VERSION), sort_keys=True)
    fd, tmp = tempfile.mkstemp(dir=cache, prefix=".tmp-", suffix=".npz")
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, config=np.array(about), **record)
        os.replace(tmp, _path(cache, config, seed))
    except BaseException:
        os.unlink(tmp)
        raise


# --- tidy tables -----------------------------------------------------------------------

def _tabulate(configs, seeds, results) -> SweepResult:
    field_names = [f.name for f in dataclasses.fields(RunConfig)]
    rows, lengths = [], []
    for i, config in enumerate(configs):
        for seed in seeds:
            record = results[config, seed]
            rows.append({"run": i, **{f: getattr(config, f) for f in field_names},
                         "seed": seed, **{k: record[k] for k in
                                          ("steps_taken", "final_loss",
                                           "final_alignment", "diverged")}})
            lengths.append(len(record["step"]))
    runs = pd.DataFrame(rows)

    curves = runs.loc[runs.index.repeat(lengths), ["run", *field_names, "seed"]]
    curves = curves.reset_index(drop=True)
    for column in ("step", "loss", "alignment"):
        curves[column] = np.concatenate(
            [results[c, s][column] for c in configs for s in seeds])

    n_diverged = int(runs["diverged"].sum())
    if n_diverged:
        which = runs.loc[runs["diverged"], "run"].unique().tolist()
        warnings.warn(f"{n_diverged} of {len(runs)} runs diverged (configs {which}); they "
                      "are kept with diverged=True and curves up to divergence. "
                      "Lower 'lr' for those configs.", DivergenceWarning, stacklevel=3)
    return SweepResult(runs=runs, curves=curves)
