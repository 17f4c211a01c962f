"""Figure F4: feedback alignment on MNIST, beyond two layers, as the authors ran it.

Claim: on real data, L2 on the layers above the input makes the error signal FA sends
down align with the true gradient (and ``B`` with the forward weights above it), at no
cost in accuracy. Network, rules, penalty and alignments: :mod:`fa.deep`; data:
:mod:`fa.mnist` (the full set, or offline the bundled subset, and the figure says which).

Each (depth, rule, lambda) is a :class:`MnistConfig`, an experiment of :mod:`fa.sweep`
run per seed as F1-F3's are. Runs are paired as in the authors' code: within a seed, FA
at every lambda and BP start from the same weights and ``B`` and see the same
mini-batches (:func:`fa.deep.init_deep`), so their curves differ only by rule and lambda.

``PAPER`` is the authors' protocol plus a BP reference at lambda = 0, with every layer
above the input divided by the square root of its fan-in (the authors divided the deep
network's logits by ``p``; see the notebook). ``QUICK_CHANGES`` gives the quick scale's
differences, each with its reason.
"""

from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np
import pandas as pd
from threadpoolctl import threadpool_info

from .. import plotting
from . import _common
from ..claims import Claim
from ..constraints import fail
from ..deep import check_hidden, train_deep
from ..mnist import load_mnist
from ..mnist_files import (SUBSET_SOURCE, cache_dir, describe, fingerprint, locate_mnist,
                           standard_files, standard_fingerprint)
from ..presets import resolve
from ..sweep import SweepResult

NAME = "mnist"
COLUMNS = ["depth", "rule", "lam", "seed", "step", "layer", "weight_alignment",
           "signal_alignment", "test_accuracy", "test_loss", "diverged", "data", "source"]
CHANCE = 0.1
SUBSET_TEST, FULL_TEST = 1000, 10000   # test images of the subset and of the full set


@dataclass(frozen=True)
class MnistConfig:
    """One (depth, rule, lam) of F4 on one data set; the seed is given separately.

    An experiment of :mod:`fa.sweep`, trained by :func:`fa.deep.train_deep`. ``data``
    names the data set (``"subset"`` or the files' :func:`fa.mnist_files.fingerprint`) and
    enters the cache key, so runs on different data never share a result; ``data_dir``,
    where a worker reads the files, is a label. :func:`configs` fills both in. The code in
    the key is that of ``numerics_modules``: the trainer and the arrays it trains on.
    """

    hidden: tuple[int, ...]          # hidden-layer widths p_1 .. p_L
    rule: str                        # "fa" or "bp"
    lam: float                       # L2 strength on the layers above the input
    lr: float                        # SGD step size eta
    batch_size: int                  # mini-batch size m
    steps: int                       # SGD steps
    record_every: int                # steps between records
    dtype: str                       # "float64" or "float32"
    penalize: str = "above_input"    # the authors' penalty (fa.deep)
    data: str = "subset"             # "subset" or fa.mnist_files.fingerprint of the IDX files
    data_dir: str | None = dataclasses.field(default=None, metadata={"label": True, "local": True})
    # ^ the folder of the IDX files (None for the subset, or for runs trained elsewhere,
    #   which can be redrawn but not run): a label, not in the cache key, and this
    #   machine's, so not in the committed data (fa.gallery.save)

    # The experiment protocol of fa.sweep (class attributes, not fields).
    numerics_modules: ClassVar[tuple[str, ...]] = ("fa.model", "fa.deep", "fa.mnist")
    scalars: ClassVar[dict[str, type]] = dict(n_train=int, n_test=int, diverged=bool)
    curves: ClassVar[tuple[str, ...]] = ("step", "layer", "weight_alignment",
                                         "signal_alignment", "test_accuracy", "test_loss",
                                         "train_loss")

    def __post_init__(self):
        object.__setattr__(self, "hidden", check_hidden(self.hidden, "MnistConfig"))
        if self.data != "subset" and not self.data.startswith("idx-"):
            raise fail("data", "MnistConfig", "'subset' or a fingerprint 'idx-...' of the IDX "
                       "files (see fa.figures.mnist.configs)", self.data)

    @property
    def depth(self) -> int:
        """Number of hidden layers ``L``."""
        return len(self.hidden)

    def run(self, seeds: list[int], **options) -> list[dict]:
        """Train every seed with :func:`fa.deep.train_deep`; one record per seed: the
        scalars ``n_train``, ``n_test``, ``diverged`` and the run's ``curves()``."""
        if options:
            raise ValueError(f"MnistConfig runs on NumPy only: the sweep options "
                             f"{', '.join(sorted(options))} do not apply to it.")
        data = _load(self.data, self.data_dir, self.dtype)    # once per process
        runs = (train_deep(data, seed=seed, **self.train_kwargs()) for seed in seeds)
        return [dict(n_train=data.n_train, n_test=data.n_test, diverged=res.diverged,
                     **res.curves()) for res in runs]

    def train_kwargs(self) -> dict:
        """The keyword arguments of :func:`fa.deep.train_deep` (all but ``data, seed``)."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)
                if f.name not in ("data", "data_dir")}

    def cost(self) -> float:
        """Work of one seed, in multiply-adds: each SGD step is a forward and a backward
        pass over the batch (about 3 m products with every weight), each record a
        forward pass over the test set and two error passes over the batch."""
        sizes = (784, *self.hidden, 10)
        weights = sum(a * b for a, b in zip(sizes, sizes[1:]))
        n_test = SUBSET_TEST if self.data == "subset" else FULL_TEST
        records = -(-self.steps // self.record_every) + 1
        return float(weights * (3 * self.batch_size * self.steps
                                + records * (n_test + 2 * self.batch_size)))

    def chunk_size(self) -> int:
        """One seed per chunk: a run takes seconds to hours, and progress is saved per run."""
        return 1


#: The experiment of this figure's sweeps, for :func:`fa.gallery.load`.
EXPERIMENT = MnistConfig


@functools.lru_cache(maxsize=2)
def _load(data: str, data_dir: str | None, dtype: str):
    """The data of a config, checked against its name."""
    if data == "subset":
        return load_mnist(subset=True, dtype=dtype)
    if data_dir is None:
        raise ValueError(f"Runs on the MNIST files {data} need data_dir, the folder that "
                         "holds them: build the configs with fa.figures.mnist.configs.")
    found = fingerprint(data_dir)
    if found != data:
        raise ValueError(f"The MNIST files in {data_dir} are not the data these runs were "
                         f"planned on (fingerprint {found}, expected {data}); rebuild the "
                         "configs with fa.figures.mnist.configs.")
    return load_mnist(data_dir, dtype=dtype)


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


def settings(scale: str = "quick", **overrides) -> MnistSettings:
    """F4's settings at ``scale`` with ``overrides`` (``None`` keeps the scale's value), by
    :func:`fa.presets.resolve`, every figure's one settings mechanism.

    ``depth`` (1 or 2, the notebook's parameter) may be given instead of ``depths``.
    """
    depth = overrides.pop("depth", None)
    if depth is not None:
        depths = [depth] if np.isscalar(depth) else list(depth)
        if not depths or any(isinstance(d, bool) or d not in (1, 2) for d in depths):
            raise fail("depth", "04_mnist", "1 or 2 (None: both)", depth)
        overrides["depths"] = depths
    return resolve(PAPER, QUICK_CHANGES, scale, overrides, caller="04_mnist", rules=_rules)


def _rules(s: MnistSettings):
    yield "depths", bool(s.depths) and set(s.depths) <= {1, 2}, "a non-empty list of 1 and 2"
    yield "lambdas", bool(s.lambdas) and min(s.lambdas) >= 0, "a non-empty list of floats >= 0"
    yield "lr", s.lr > 0, "a float > 0"
    for name in ("hidden", "batch_size", "steps", "record_every", "n_seeds", "deep_steps",
                 "deep_n_seeds"):
        yield name, getattr(s, name) >= 1, "an int >= 1"
    yield "dtype", s.dtype in ("float64", "float32"), "'float64' or 'float32'"
    yield "data_dir", not (s.subset and s.data_dir is not None), "None when subset is True"


def data_choice(s: MnistSettings, *, fetch: bool = True) -> tuple[str, str | None]:
    """The ``(data, data_dir)`` fields of the configs of ``s``.

    With ``fetch`` (a run), the choice of :func:`fa.mnist_files.locate_mnist`:
    ``data_dir``, else the per-user cache, downloaded if needed and allowed, else (with a
    warning) the subset. Without (an estimate), nothing is downloaded: the per-user cache
    counts as holding the standard files.
    """
    if s.subset:
        return "subset", None
    if fetch:
        folder = locate_mnist(s.data_dir, download=s.download)
        return ("subset", None) if folder is None else (fingerprint(folder), str(folder))
    if s.data_dir is not None:
        return fingerprint(s.data_dir), str(Path(s.data_dir).expanduser().resolve())
    return standard_fingerprint(), str(cache_dir())


def trained_on(sweeps) -> tuple[str, None]:
    """The ``(data, data_dir)`` fields of the configs behind finished ``sweeps`` (a
    redraw, :func:`fa.gallery.load`): the data their runs were trained on, in no folder."""
    sweeps = [sweeps] if isinstance(sweeps, SweepResult) else list(sweeps)
    names = {name for sweep in sweeps for name in sweep.runs["data"]}
    if len(names) != 1:
        raise ValueError(f"The sweeps were trained on {len(names)} data sets "
                         f"({sorted(names)}), expected one.")
    return names.pop(), None


def configs(s: MnistSettings, data: tuple[str, str | None] | None = None) -> list[MnistConfig]:
    """FA at every lambda and BP at lambda = 0, for every depth.

    ``data`` is ``(data, data_dir)`` (:func:`data_choice`); by default it is chosen
    now, which may download the full set.
    """
    data, data_dir = data_choice(s) if data is None else data
    out = []
    for depth in s.depths:
        steps = s.steps if depth == 1 else s.deep_steps
        for rule, lam in [("fa", lam) for lam in s.lambdas] + [("bp", 0.0)]:
            out.append(MnistConfig(hidden=(s.hidden,) * depth, rule=rule, lam=float(lam),
                                   lr=s.lr, batch_size=s.batch_size, steps=steps,
                                   record_every=s.record_every, dtype=s.dtype, data=data,
                                   data_dir=data_dir))
    return out


def seeds(s: MnistSettings) -> dict[int, list[int]]:
    """The seeds of each depth, the same for every rule and lambda of that depth."""
    return {depth: list(range(s.n_seeds if depth == 1 else s.deep_n_seeds))
            for depth in s.depths}


def sweep_plan(scale: str = "paper", **overrides) -> tuple[list[MnistConfig], dict]:
    """The configs and the seeds of each (a dict) the notebook runs at ``scale`` with its
    parameters ``overrides``, without loading or downloading any data (for estimates)."""
    s = settings(scale, **_common.settings_overrides(MnistSettings, overrides, extra=("depth",)))
    by_depth = seeds(s)
    planned = configs(s, data=data_choice(s, fetch=False))
    return planned, {c: by_depth[c.depth] for c in planned}


def tidy(sweeps, results_dir=None) -> pd.DataFrame:
    """The figure's table from the sweeps of :func:`configs` (one per depth, or one);
    also written to ``<results_dir>/mnist.csv``.

    Returns one row per (run, step, layer) with ``COLUMNS``; ``source`` (and
    ``frame.attrs["source"]``) names the data the runs actually used. Diverged runs are
    left out, and named (:func:`fa.figures._common.noted`).
    """
    sweeps = [sweeps] if isinstance(sweeps, SweepResult) else list(sweeps)
    frames, diverged = [], []
    for sweep in sweeps:
        runs = sweep.runs
        runs = runs.assign(source=[describe(n_train, n_test, data=data) for n_train, n_test, data
                                   in zip(runs["n_train"], runs["n_test"], runs["data"])])
        curves = sweep.curves.merge(runs[["run", "seed", "diverged", "source"]],
                                    on=["run", "seed"], validate="many_to_one")
        curves, lines = _common.finished(curves, runs, MnistConfig)
        depth = len(runs["hidden"].iloc[0])
        diverged += [f"{depth} hidden layer{'s' * (depth > 1)}, {line}" for line in lines]
        frames.append(curves.assign(depth=curves["hidden"].map(len))[COLUMNS])
    frame = _common.noted(pd.concat(frames, ignore_index=True), diverged,
                          sum(len(sweep.runs) for sweep in sweeps))
    _common.write_csv(frame, NAME, results_dir)
    frame.attrs["source"] = frame["source"].iloc[0]
    return frame


@dataclass(frozen=True)
class Provenance:
    """What the figure's manifest entry records: the settings (but the folder the files
    were read from, a place on one machine), the data actually used, named by the MD5
    checksum of each file's uncompressed contents, and the BLAS kernels of the machine
    that drew it. The numbers are the same bits on every rerun on one machine; another
    CPU's kernels round float32 products differently, and that moves the curves in the
    fifth decimal (measured: 2e-5 after 300 steps)."""

    settings: MnistSettings
    data: str
    files: dict[str, str]            # file -> MD5 of the standard files' contents; else empty
                                     # (the subset, or other files: named in data)
    blas: str

    @property
    def n_seeds(self) -> int:
        return self.settings.n_seeds


def provenance(s: MnistSettings, frame: pd.DataFrame) -> Provenance:
    """``settings=`` for :func:`fa.plotting.save_figure`: ``s``, the data source, the BLAS."""
    blas = "; ".join(sorted(f"{lib['internal_api']} {lib['version']} ({lib.get('architecture')})"
                            for lib in threadpool_info() if lib["user_api"] == "blas"))
    return Provenance(settings=dataclasses.replace(s, data_dir=None),
                      data=frame["source"].iloc[0], files=standard_files(frame["data"].iloc[0]),
                      blas=blas)


def caption(s: MnistSettings) -> str:
    """The line under F4's title (:func:`fa.plotting.save_figure`): the width, and the
    seeds and steps of each depth."""
    deep = (f" (two hidden layers: {s.deep_n_seeds} seed{'s' * (s.deep_n_seeds > 1)}, "
            f"{s.deep_steps} steps)") if 2 in s.depths else ""
    return f"hidden width {s.hidden} · " + plotting.run_caption(s, f"{s.steps} steps{deep}")


def plot(frame: pd.DataFrame, source: str | None = None):
    """One row per depth: (a) error-signal alignment, the paper's panel, (b) weight
    alignment, (c) test accuracy (BP dashed, chance dotted), each vs SGD step, one line
    per lambda, mean +- sd over seeds. For two hidden layers the top layer's alignment
    (solid) is the authors' curve; the lower layer's (dotted) is this project's addition.
    """
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
            stats = _common.mean_sd(here[here["rule"] == "fa"], ["lam", "layer", "step"], col)
            for lam in lams:
                for layer in range(depth, 0, -1):
                    g = stats[(stats["lam"] == lam) & (stats["layer"] == layer)]
                    top = layer == depth
                    plotting.band(ax, g["step"], g["mean"], g["low"], g["high"],
                                  label=f"FA, λ = {lam:g}" if top else "_nolegend_",
                                  color=colors[lam], ls="-" if top else ":")
            if depth > 1:       # line styles: which curve is the quantity the authors plot
                ax.plot([], [], color="grey",
                        label=f"layer {depth} (top; the one the authors plot)")
                ax.plot([], [], color="grey", ls=":", label="layer 1 (this project's addition)")
            ax.set_title(f"({next(letters)}) {label}, {net}")
            ax.set_ylabel(label)
        ax = row[2]
        stats = _common.mean_sd(here[here["layer"] == depth], ["rule", "lam", "step"],
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
            plotting.step_axis(ax, "SGD step")
        if depth == 1:
            row[0].legend(fontsize="small", loc="upper left")
        else:                   # below the panel: the deep curves fill it
            row[0].legend(fontsize="small", loc="upper left", bbox_to_anchor=(0.0, -0.2),
                          ncol=2)
    note = " (not the paper's full MNIST)" if source.startswith(SUBSET_SOURCE) else ""
    seeds = frame.groupby("depth")["seed"].nunique()
    over = ", ".join(f"{n} seed{'s' * (n > 1)}"
                     + (f" ({d} hidden layer{'s' * (d > 1)})" if len(seeds) > 1 else "")
                     for d, n in seeds.items())
    fig.suptitle(f"F4 · FA on MNIST, mean ± sd over {over}\ndata: {source}{note}")
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

    3. It learns at every lambda: the final test accuracy is above ``deep_accuracy``,
       and it did not collapse (final accuracy at most ``max_drop`` below the best
       recorded along the way).

    First of all, no run diverged (those that did are not in ``frame``).
    """
    out = [_common.diverged_claim("F4", frame)]
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
        for lam, g in curve.groupby("lam"):   # each group in step order
            rows.append((lam, g["test_accuracy"].iloc[-1], g["test_accuracy"].max()))
        text = ", ".join(f"λ={lam:g}: {end:.3f} (best {best:.3f})" for lam, end, best in rows)
        out.append(Claim(tag, f"learns at every λ: final accuracy above {deep_accuracy:g}, "
                         f"at most {max_drop:g} below its best", text,
                         all(end > deep_accuracy and best - end <= max_drop
                             for _, end, best in rows)))
    if len(out) == 1:
        out.append(Claim("F4", "runs to judge (FA at λ=0 and another λ)", "none", False))
    return out
