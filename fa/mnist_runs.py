"""The F4 experiment: :class:`MnistConfig`, one (depth, rule, lam) of the MNIST figure.

Kept apart from the figure (:mod:`fa.figures.mnist`: settings, plot, claims) because
its source enters the cache key of every MNIST run (``numerics_modules``): restyling
the figure must not retrain an hour of runs, while a change to how a run is trained
or recorded must.
"""

from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from .constraints import fail
from .deep import train_deep
from .mnist import fingerprint, load_mnist

__all__ = ["MnistConfig"]


@dataclass(frozen=True)
class MnistConfig:
    """One (depth, rule, lam) of F4 on one data set; the seed is given separately.

    An experiment of :mod:`fa.sweep`: :func:`fa.run_sweep` trains it with
    :func:`fa.deep.train_deep`, caches each (config, seed) and tabulates the records.
    ``data`` names the data set (the bundled subset, or the four IDX files by their
    checksums, see :func:`fa.mnist.fingerprint`) and enters the cache key, so runs
    on different data never share a result; ``data_dir``, where a worker reads the
    files, is a label. :func:`configs` fills both in from the settings.
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
    data: str = "subset"             # "subset" or fa.mnist.fingerprint of the IDX files
    data_dir: str | None = dataclasses.field(default=None, metadata={"label": True})
    # ^ the folder of the IDX files (None for the subset); a label, not in the cache key

    # The experiment protocol of fa.sweep (class attributes, not fields).
    numerics_modules: ClassVar[tuple[str, ...]] = ("fa.model", "fa.deep", "fa.mnist")
    scalars: ClassVar[dict[str, type]] = dict(n_train=int, n_test=int, diverged=bool)
    curves: ClassVar[tuple[str, ...]] = ("step", "layer", "weight_alignment",
                                         "signal_alignment", "test_accuracy", "test_loss",
                                         "train_loss")

    def __post_init__(self):
        caller = "MnistConfig"
        hidden = self.hidden
        if isinstance(hidden, (str, bytes)) or not hasattr(hidden, "__iter__") or not len(hidden):
            raise fail("hidden", caller, "a non-empty sequence of positive ints", hidden)
        object.__setattr__(self, "hidden", tuple(int(p) for p in hidden))  # hashable
        if self.data != "subset" and (not self.data.startswith("idx-") or self.data_dir is None):
            raise fail("data", caller, "'subset', or a fingerprint 'idx-...' of the IDX files "
                        "in data_dir (see fa.figures.mnist.configs)",
                        (self.data, self.data_dir))

    @property
    def depth(self) -> int:
        """Number of hidden layers ``L``."""
        return len(self.hidden)

    def run(self, seeds: list[int], **options) -> list[dict]:
        """Train every seed with :func:`fa.deep.train_deep`; one record per seed.

        The data are loaded once per process. A record holds the scalars ``n_train``,
        ``n_test``, ``diverged`` and, flattened one entry per (step, layer), the
        curves ``step``, ``layer``, the two alignments (per layer) and
        ``test_accuracy``, ``test_loss``, ``train_loss`` (per step, repeated).
        """
        if options:
            raise ValueError(f"MnistConfig runs on NumPy only: the sweep options "
                             f"{', '.join(sorted(options))} do not apply to it.")
        data = _load(self.data, self.data_dir, self.dtype)
        return [_record(train_deep(data, seed=seed, **self.train_kwargs()), data)
                for seed in seeds]

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


SUBSET_TEST, FULL_TEST = 1000, 10000   # test images of the subset and of the full set


@functools.lru_cache(maxsize=2)
def _load(data: str, data_dir: str | None, dtype: str):
    """The data of a config, loaded once per (worker) process and checked against its name."""
    if data == "subset":
        return load_mnist(subset=True, dtype=dtype)
    found = fingerprint(data_dir)
    if found != data:
        raise ValueError(f"The MNIST files in {data_dir} are not the data these runs were "
                         f"planned on (fingerprint {found}, expected {data}); rebuild the "
                         "configs with fa.figures.mnist.configs.")
    return load_mnist(data_dir, dtype=dtype)


def _record(res, data) -> dict:
    """The cached summary of one run: its history flattened to one entry per (step, layer)."""
    k, L = len(res.step), res.depth
    return dict(n_train=len(data.y_train), n_test=len(data.y_test), diverged=res.diverged,
                step=np.repeat(res.step, L), layer=np.tile(np.arange(1, L + 1), k),
                weight_alignment=res.weight_alignment.reshape(-1),     # (k L,)
                signal_alignment=res.signal_alignment.reshape(-1),     # (k L,)
                test_accuracy=np.repeat(res.test_accuracy, L),
                test_loss=np.repeat(res.test_loss, L),
                train_loss=np.repeat(res.train_loss, L))
