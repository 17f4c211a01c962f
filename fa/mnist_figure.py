"""Figure F4: feedback alignment on MNIST, beyond two layers, as the authors ran it.

Claim: on real data, L2 regularisation of the layers above the input makes the error
signal FA sends down align with the true gradient (and ``B`` with the forward weights
above it), and this costs no accuracy. The network, the rules, the penalty (every layer
except the input one, as in the authors' code) and both alignments are defined in
:mod:`fa.deep`; the data in :mod:`fa.mnist` (full MNIST from a folder, the cache or a
download; the bundled 5000-image subset offline, and the figure says which).

Runs are paired as in the authors' code: within a seed, FA at every lambda and the BP
reference start from the same weights, use the same ``B`` and see the same mini-batches
(:func:`fa.deep.init_deep`), so their curves differ only by the rule and lambda.

Scales
------
``paper``: the authors' protocol: 784-1000-10, eta = 0.01, batch 600, 30000 steps (300
epochs of the 60000 training images), lambda in {0, 0.1, 0.3}, 10 seeds, full MNIST,
records every 100 steps; plus a BP reference at lambda = 0, and the two-hidden-layer
appendix network 784-1000-1000-10 (penalty on layers 2 and 3) for 150 epochs (15000
steps) with one seed. Every layer above the input divides by the square root of its
fan-in in both networks (the authors divided the deep network's logits by ``p``; see
the notebook).

``quick``: differences from the paper, each with its reason (see ``QUICK_CHANGES``).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import tempfile
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from . import _figure, plotting
from .claims import Claim

NAME = "mnist"
COLUMNS = ["depth", "rule", "lam", "seed", "step", "layer", "weight_alignment",
           "signal_alignment", "test_accuracy", "test_loss", "diverged", "source"]
CHANCE = 0.1


@dataclass(frozen=True)
class MnistSettings:
    """What F4's sweep runs. A notebook's parameters override these by name."""

    hidden: int                      # width of every hidden layer
    depths: tuple[int, ...]          # numbers of hidden layers: 1 (784-p-10) and/or 2 (784-p-p-10)
    lambdas: tuple[float, ...]       # L2 strengths lam on every layer above the input (FA runs)
    lr: float                        # SGD step size eta
    batch_size: int                  # mini-batch size m
    steps: int                       # SGD steps, one hidden layer
    n_seeds: int                     # seeds, one hidden layer; each: fresh W, B, batch order
    deep_steps: int                  # SGD steps, two hidden layers
    deep_n_seeds: int                # seeds, two hidden layers
    record_every: int                # steps between records
    dtype: str = "float32"           # "float64" or "float32" (the authors: PyTorch float32)
    subset: bool = False             # True: the bundled 5000-image subset (no files, no network)
    data_dir: str | None = None      # folder with the four MNIST IDX files; None: cache / download
    download: bool | None = None     # may the full set be downloaded? None: unless $FA_OFFLINE


PAPER = MnistSettings(hidden=1000, depths=(1, 2), lambdas=(0.0, 0.1, 0.3), lr=0.01,
                      batch_size=600, steps=30000, n_seeds=10, deep_steps=15000,
                      deep_n_seeds=1, record_every=100)

QUICK_CHANGES = dict(
    subset=True,       # offline and instant: the bundled 4000 train / 1000 test images,
                       # no 11 MB download, and a 10x cheaper test evaluation per record
    hidden=256,        # 4x cheaper per step than 1000, still 25x wider than K = 10
    batch_size=100,    # 6x cheaper per step; 40 batches per epoch of the 4000 images
    lr=0.05,           # 5x eta: 1000 steps then cover eta x steps = 50, the paper's
                       # first 5000 steps, well past the L2 time scale 1 / (eta lam)
                       # (67 steps at lam = 0.3, 200 at 0.1); 0.1 made lam = 0.3 noisy
    steps=1000,        # about 1 s a run: the whole notebook in well under a minute
    deep_steps=1000,   # as the one-hidden-layer runs (the paper's 150 epochs: 15000)
    deep_n_seeds=3,    # a +-1 sd band for the deep network too (the authors ran one seed)
    n_seeds=3,         # enough for a visible +-1 sd band and stable claims
    record_every=50,   # 21 points per curve
)

SCALES = ("quick", "paper")
_INTS = ("hidden", "batch_size", "steps", "record_every", "n_seeds", "deep_steps",
         "deep_n_seeds")


def settings(scale: str = "quick", **overrides) -> MnistSettings:
    """F4's settings at ``scale`` with ``overrides`` (``None`` keeps the scale's value).

    ``depth`` (1 or 2) may be given instead of ``depths``.
    """
    if scale not in SCALES:
        raise ValueError(f"The 'scale' setting must be one of {SCALES}. Got {scale!r} instead.")
    base = PAPER if scale == "paper" else dataclasses.replace(PAPER, **QUICK_CHANGES)
    if "depth" in overrides:
        depth = overrides.pop("depth")
        if depth is not None:
            overrides["depths"] = (depth,) if np.isscalar(depth) else tuple(depth)
    names = {f.name for f in dataclasses.fields(MnistSettings)}
    changes = {}
    for name, value in overrides.items():
        if name not in names:
            raise ValueError(f"Unknown setting {name!r}; accepted names: {', '.join(sorted(names))}.")
        if value is None:
            continue
        if name in ("lambdas", "depths"):
            if isinstance(value, (str, bytes)) or not hasattr(value, "__iter__") or not len(value):
                raise ValueError(f"The '{name}' setting must be a non-empty list. Got {value!r}.")
            value = tuple(float(v) for v in value) if name == "lambdas" else tuple(int(v) for v in value)
        elif name in _INTS:
            if isinstance(value, bool) or int(value) != value or value < 1:
                raise ValueError(f"The '{name}' setting must be an int >= 1. Got {value!r}.")
            value = int(value)
        elif name in ("subset", "download"):
            if not isinstance(value, bool):
                raise ValueError(f"The '{name}' setting must be True or False. Got {value!r}.")
        elif name == "lr":
            value = float(value)
        elif name in ("data_dir", "dtype"):
            value = str(value)
        changes[name] = value
    s = dataclasses.replace(base, **changes)
    if any(d not in (1, 2) for d in s.depths):
        raise ValueError(f"The 'depths' setting must contain only 1 and 2. Got {s.depths!r}.")
    if any(v < 0 for v in s.lambdas):
        raise ValueError(f"The 'lambdas' setting must be floats >= 0. Got {s.lambdas!r}.")
    if not s.lr > 0:
        raise ValueError(f"The 'lr' setting must be > 0. Got {s.lr!r}.")
    if s.subset and s.data_dir is not None:
        raise ValueError(f"The 'data_dir' setting must be None when subset is True. "
                         f"Got {s.data_dir!r}.")
    return s


@dataclass(frozen=True)
class MnistConfig:
    """One (depth, rule, lam) of the sweep: everything a run needs but the seed and data."""

    hidden: tuple[int, ...]          # hidden-layer widths p_1 .. p_L
    rule: str                        # "fa" or "bp"
    lam: float                       # L2 strength on the layers above the input
    lr: float                        # SGD step size eta
    batch_size: int                  # mini-batch size m
    steps: int                       # SGD steps
    record_every: int                # steps between records
    dtype: str                       # "float64" or "float32"
    penalize: str = "above_input"    # the authors' penalty (fa.deep)

    @property
    def depth(self) -> int:
        return len(self.hidden)


def configs(s: MnistSettings) -> list[MnistConfig]:
    """FA at every lambda and BP at lambda = 0, for every depth."""
    out = []
    for depth in s.depths:
        steps = s.steps if depth == 1 else s.deep_steps
        for rule, lam in [("fa", lam) for lam in s.lambdas] + [("bp", 0.0)]:
            out.append(MnistConfig(hidden=(s.hidden,) * depth, rule=rule, lam=float(lam),
                                 lr=s.lr, batch_size=s.batch_size, steps=steps,
                                 record_every=s.record_every, dtype=s.dtype))
    return out


def seeds(s: MnistSettings, config: MnistConfig) -> list[int]:
    """The seeds of ``config``: the same list for every rule and lambda of a depth."""
    return list(range(s.n_seeds if config.depth == 1 else s.deep_n_seeds))


def train_seeds(config: MnistConfig, seed_list, data) -> pd.DataFrame:
    """Train ``config`` once per seed on ``data``; the tidy records (``COLUMNS``)."""
    from . import deep

    frames = []
    for seed in seed_list:
        res = deep.train_deep(data, seed=seed, **dataclasses.asdict(config))
        frames.append(res.to_frame().assign(source=res.source)[COLUMNS])
    return pd.concat(frames, ignore_index=True)


def load_data(s: MnistSettings):
    """The data ``s`` asks for (:func:`fa.mnist.load_mnist`), and how workers reload
    exactly the same data (never a different choice made later, e.g. a new download)."""
    from .mnist import SUBSET_SOURCE, cache_dir, load_mnist

    if s.subset:
        data = load_mnist(subset=True, dtype=s.dtype)
    else:
        data = load_mnist(s.data_dir, download=s.download, dtype=s.dtype)
    if data.source.startswith(SUBSET_SOURCE):
        return data, dict(subset=True)
    return data, dict(data_dir=s.data_dir or str(cache_dir()))


_DATA = {}


def _data(spec: dict, dtype: str):
    from .mnist import load_mnist

    key = (json.dumps(spec, sort_keys=True), dtype)
    if key not in _DATA:
        _DATA[key] = load_mnist(**spec, dtype=dtype)
    return _DATA[key]


def _key(config: MnistConfig, seed: int, source: str) -> str:
    text = json.dumps(dict(dataclasses.asdict(config), seed=seed, source=source),
                      sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:24]


def _train_one(task):
    """Train one (config, seed) in a worker and write its CSV to ``path`` atomically."""
    config, seed, spec, path = task
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1):
        frame = train_seeds(config, [seed], _data(spec, config.dtype))
    _atomic_csv(frame, Path(path))
    return path


def _atomic_csv(frame: pd.DataFrame, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            frame.to_csv(f, index=False)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def run(s: MnistSettings, *, n_jobs: int = 1, results_dir=None, progress=True) -> pd.DataFrame:
    """Run (or load from the cache) every (depth, rule, lam, seed) and write ``results/mnist.csv``.

    Each finished run is one CSV under ``<results_dir>/cache/mnist/``, named by the
    sha256 of its :class:`MnistConfig`, seed and data source, so reruns train only what
    is missing. Returns the tidy records (``COLUMNS``; the ``source`` column, and
    ``frame.attrs["source"]``, name the data actually used).
    """
    data, spec = load_data(s)
    _DATA[(json.dumps(spec, sort_keys=True), s.dtype)] = data
    root = _figure.cache_dir(results_dir) / "mnist"
    tasks, paths = [], []
    for config in configs(s):
        for seed in seeds(s, config):
            path = root / f"{_key(config, seed, data.source)}.csv"
            paths.append(path)
            if not path.exists():
                tasks.append((config, seed, spec, str(path)))
    if tasks:
        bar = _progress(len(tasks), progress)
        if n_jobs > 1 and len(tasks) > 1:
            with ProcessPoolExecutor(max_workers=min(n_jobs, len(tasks))) as pool:
                for _ in pool.map(_train_one, tasks):
                    bar.update()
        else:
            for task in tasks:
                _train_one(task)
                bar.update()
        bar.close()
    frame = pd.concat([pd.read_csv(p) for p in paths], ignore_index=True)[COLUMNS]
    _figure.write_csv(frame, NAME, results_dir)
    frame.attrs["source"] = data.source
    return frame


def _progress(total, enabled):
    from tqdm import tqdm

    return tqdm(total=total, desc="F4 mnist", disable=not enabled, mininterval=2.0)


@dataclass(frozen=True)
class Provenance:
    """What the figure's manifest entry records: the settings and the data actually used."""

    settings: MnistSettings
    data: str

    @property
    def n_seeds(self) -> int:
        return self.settings.n_seeds


def provenance(s: MnistSettings, frame: pd.DataFrame) -> Provenance:
    """``settings=`` for :func:`fa.plotting.save_figure`: ``s`` plus the data source."""
    return Provenance(settings=s, data=frame.attrs.get("source") or frame["source"].iloc[0])


def plot(frame: pd.DataFrame, source: str | None = None):
    """One row per depth: (a) error-signal alignment, the paper's panel, (b) weight
    alignment, (c) test accuracy (BP dashed, chance dotted), each vs SGD step, one line
    per lambda, mean +- sd over seeds. For two hidden layers the top layer's alignment
    (solid) is the authors' curve; the lower layer's (dotted) is this project's addition.
    """
    from .mnist import SUBSET_SOURCE

    plotting.use_style()
    source = source or frame.attrs.get("source") or frame["source"].iloc[0]
    depths = sorted(frame["depth"].unique())
    fig, axes = plotting.subplots(3, n_rows=len(depths), width=5.0, height=3.9)
    lams = sorted(frame.loc[frame["rule"] == "fa", "lam"].unique())
    colors = dict(zip(lams, plotting.palette(len(lams))))
    letters = iter("abcdefghi")
    for row, depth in zip(axes, depths):
        here = frame[frame["depth"] == depth]
        net = "1 hidden layer" if depth == 1 else f"{depth} hidden layers"
        for ax, col, label in ((row[0], "signal_alignment", "error-signal alignment"),
                               (row[1], "weight_alignment", "weight alignment")):
            stats = _figure.mean_sd(here[here["rule"] == "fa"], ["lam", "layer", "step"], col)
            for lam in lams:
                for layer in range(depth, 0, -1):
                    g = stats[(stats["lam"] == lam) & (stats["layer"] == layer)]
                    top = layer == depth
                    plotting.band(ax, g["step"], g["mean"], g["low"], g["high"],
                                  label=f"FA, λ = {lam:g}" if top else "_nolegend_",
                                  color=colors[lam], ls="-" if top else ":")
            if depth > 1:       # line styles: which curve reproduces the authors
                ax.plot([], [], color="grey", label=f"layer {depth} (top; as the authors)")
                ax.plot([], [], color="grey", ls=":", label="layer 1 (this project's addition)")
            ax.set_title(f"({next(letters)}) {label}, {net}")
            ax.set_ylabel(label)
        ax = row[2]
        stats = _figure.mean_sd(here[here["layer"] == depth], ["rule", "lam", "step"],
                                "test_accuracy")
        for lam in lams:
            g = stats[(stats["rule"] == "fa") & (stats["lam"] == lam)]
            plotting.band(ax, g["step"], g["mean"], g["low"], g["high"],
                          label=f"FA, λ = {lam:g}", color=colors[lam])
        g = stats[stats["rule"] == "bp"]
        if len(g):
            plotting.band(ax, g["step"], g["mean"], g["low"], g["high"], label="BP, λ = 0",
                          color="crimson", ls="--")
        ax.axhline(CHANCE, color="grey", lw=0.8, ls=":")
        ax.set_title(f"({next(letters)}) test accuracy, {net}")
        ax.set_ylabel("test accuracy")
        ax.legend(fontsize="small", loc="lower right")
        for ax in row:
            ax.set_xlabel("SGD step")
        if depth == 1:
            row[0].legend(fontsize="small", loc="upper left")
        else:                   # below the panel: the deep curves fill it
            row[0].legend(fontsize="small", loc="upper left", bbox_to_anchor=(0.0, -0.2),
                          ncol=2)
    note = " (not the paper's full MNIST)" if source.startswith(SUBSET_SOURCE) else ""
    fig.suptitle(f"F4 · FA on MNIST, mean ± sd over seeds\ndata: {source}{note}")
    fig.tight_layout()
    return fig


def final(frame: pd.DataFrame) -> pd.DataFrame:
    """The last record of every run."""
    last = frame.groupby(["depth", "rule", "lam", "seed"])["step"].transform("max")
    return frame[frame["step"] == last]


def summary(frame: pd.DataFrame) -> pd.DataFrame:
    """Final alignments and accuracy per (depth, rule, lam, layer): mean and sd over seeds."""
    return (final(frame).groupby(["depth", "rule", "lam", "layer"])
            .agg(steps=("step", "max"), n_seeds=("seed", "nunique"),
                 signal_alignment=("signal_alignment", "mean"),
                 signal_alignment_sd=("signal_alignment", "std"),
                 weight_alignment=("weight_alignment", "mean"),
                 weight_alignment_sd=("weight_alignment", "std"),
                 test_accuracy=("test_accuracy", "mean"),
                 test_accuracy_sd=("test_accuracy", "std"))
            .reset_index())


def claims(frame: pd.DataFrame, *, min_rise: float = 0.1, min_accuracy: float = 0.7,
           max_cost: float = 0.05, deep_accuracy: float = 0.5,
           max_drop: float = 0.1) -> list[Claim]:
    """F4's expected properties, from the final records (means over seeds) of FA runs.

    One hidden layer (the paper's network):

    1. The error-signal alignment is ordered by lambda (strictly increasing) and the
       largest lambda's exceeds lambda = 0's by at least ``min_rise``.
    2. Regularisation costs no accuracy: FA's test accuracy is above ``min_accuracy``
       at every lambda, and no lambda > 0 is more than ``max_cost`` below lambda = 0.

    Two hidden layers (the appendix network):

    3. It learns at every lambda: no run diverged, the final test accuracy is above
       ``deep_accuracy``, and it did not collapse (final accuracy at most ``max_drop``
       below the best recorded along the way).
    """
    out = []
    fa_ = frame[(frame["rule"] == "fa") & (frame["layer"] == frame["depth"])]
    last = summary(frame)
    if 1 in set(fa_["depth"]):
        tag = "F4 1 hidden layer"
        one = last[(last["rule"] == "fa") & (last["depth"] == 1)].set_index("lam")
        if 0.0 in one.index and len(one) > 1:
            sig = one["signal_alignment"]
            text = ", ".join(f"λ={k:g}: {v:.3f}" for k, v in sig.items())
            out.append(Claim(tag, "error-signal alignment at the end is ordered by λ "
                             "(increasing)", text, bool(np.all(np.diff(sig.to_numpy()) > 0))))
            big = sig.index.max()
            out.append(Claim(tag, f"error-signal alignment: λ={big:g} at least {min_rise:g} "
                             f"above λ=0", f"{sig[big]:.3f} vs {sig[0.0]:.3f}",
                             bool(sig[big] - sig[0.0] >= min_rise)))
            acc = one["test_accuracy"]
            text = ", ".join(f"λ={k:g}: {v:.3f}" for k, v in acc.items())
            out.append(Claim(tag, f"FA test accuracy above {min_accuracy:g} at every λ", text,
                             bool((acc > min_accuracy).all())))
            out.append(Claim(tag, f"regularisation costs no accuracy: no λ > 0 more than "
                             f"{max_cost:g} below λ=0", text,
                             bool((acc[0.0] - acc.drop(0.0) <= max_cost).all())))
    if 2 in set(fa_["depth"]):
        tag = "F4 2 hidden layers"
        two = fa_[fa_["depth"] == 2]
        curve = two.groupby(["lam", "step"])["test_accuracy"].mean().reset_index()
        rows = []
        for lam, g in curve.groupby("lam"):
            g = g.sort_values("step")
            rows.append((lam, g["test_accuracy"].iloc[-1], g["test_accuracy"].max(),
                         bool(two.loc[two["lam"] == lam, "diverged"].any())))
        text = ", ".join(f"λ={lam:g}: {end:.3f} (best {best:.3f})" for lam, end, best, _ in rows)
        out.append(Claim(tag, f"learns at every λ: no divergence, final accuracy above "
                         f"{deep_accuracy:g}, at most {max_drop:g} below its best", text,
                         all(end > deep_accuracy and best - end <= max_drop and not div
                             for _, end, best, div in rows)))
    if not out:
        out.append(Claim("F4", "runs to judge (FA at λ=0 and another λ)", "none", False))
    return out


def estimate_seconds(s: MnistSettings, *, n_jobs: int = 1, results_dir=None,
                     probe_steps: int = 10) -> tuple[float, int, int]:
    """Measured estimate of the time :func:`run` still needs on this machine.

    Times, for each depth, runs of ``probe_steps`` and ``2 probe_steps`` SGD steps,
    each recorded at its start and end (two test-set passes), with one BLAS thread as
    the workers run; their difference gives the cost of a step, the rest that of a
    record. Scales to the steps and records of every run not yet cached. Returns
    ``(seconds, runs, cached)``.
    """
    import time

    from threadpoolctl import threadpool_limits

    data, _ = load_data(s)
    root = _figure.cache_dir(results_dir) / "mnist"
    cost = {}
    seconds, runs, cached = 0.0, 0, 0
    for config in configs(s):
        if config.depth not in cost:
            times = []
            for steps in (probe_steps, 2 * probe_steps):
                probe = dataclasses.replace(config, steps=steps, record_every=2 * probe_steps)
                with threadpool_limits(1):
                    start = time.perf_counter()
                    train_seeds(probe, [0], data)
                times.append(time.perf_counter() - start)
            per_step = max(times[1] - times[0], 0.0) / probe_steps
            per_record = max(times[0] - probe_steps * per_step, 0.0) / 2
            cost[config.depth] = (per_step, per_record)
        per_step, per_record = cost[config.depth]
        n_records = config.steps // config.record_every + 1
        for seed in seeds(s, config):
            runs += 1
            if (root / f"{_key(config, seed, data.source)}.csv").exists():
                cached += 1
            else:
                seconds += per_step * config.steps + per_record * n_records
    return seconds / n_jobs, runs, cached
