"""Every figure declared once: the reproduce command, the estimate, the notebooks'
parameter checks, the layout tests and the README table all read this table.

A figure is a module (``configs / plot / summary / claims``; sweeps not of
:class:`fa.RunConfig` name their class ``EXPERIMENT``), a notebook and a :class:`Figure`.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from dataclasses import dataclass

from ..constraints import check_option

#: Parameters every figure notebook takes.
RUN_PARAMETERS = ("scale", "n_seeds", "n_jobs", "scheduler", "results_dir", "figures_dir")


@dataclass(frozen=True)
class Figure:
    """One figure of the paper and what regenerates it."""

    key: str                      # settings name and file stem: figures/<key>.png
    notebook: str                 # notebooks/<notebook>.ipynb
    paper: str                    # where it is in the paper
    title: str                    # one line for listings
    module: str                   # the figure module: configs / plot / summary / claims
    parameters: tuple[str, ...]   # the notebook's parameters, besides RUN_PARAMETERS
    # Whether the gallery commits its runs (figures/data/runs/<key>.zip): for a sweep of
    # many hours whose records are small, so that no clone has to train it again.
    archived: bool = False

    def load(self):
        """The figure module."""
        return importlib.import_module(self.module)

    @property
    def accepted(self) -> tuple[str, ...]:
        """Every name the notebook's parameters cell defines."""
        return RUN_PARAMETERS + self.parameters


_TWO_LAYER = ("activations", "widths", "lambdas", "rules", "steps", "backend", "device",
              "rerun")

FIGURES = (
    Figure("convergence", "01_convergence", "Fig. 1", "F1 convergence (loss curves)",
           "fa.figures.convergence", _TWO_LAYER),
    Figure("alignment_dynamics", "02_alignment_dynamics", "Fig. 2",
           "F2 alignment with and without regularisation", "fa.figures.alignment_dynamics",
           _TWO_LAYER + ("dropout_rates",)),
    Figure("width_dependence", "03_width_dependence", "Fig. 3 and appendix",
           "F3 width dependence (and F3-dropout)", "fa.figures.width_dependence",
           _TWO_LAYER + ("dropout_rates", "dropout_widths", "until_converged", "dtype"),
           archived=True),
    Figure("mnist", "04_mnist", "Fig. 4 and appendix", "F4 MNIST, beyond two layers",
           "fa.figures.mnist", ("steps", "deep_n_seeds", "deep_steps", "hidden", "depth",
                               "batch_size", "lr", "lambdas", "subset", "data_dir",
                               "download", "rerun"),
           archived=True),
    Figure("mechanisms", "05_mechanisms", "Sections 3-4 (the proofs' mechanisms)",
           "Why it happens: the mechanisms, measured", "fa.figures.mechanisms",
           ("widths", "activation")),
)
BY_NOTEBOOK = {f.notebook: f for f in FIGURES}
BY_KEY = {f.key: f for f in FIGURES}


def figure(notebook: str) -> Figure:
    """The entry of ``notebook`` (e.g. ``"03_width_dependence"``)."""
    return BY_NOTEBOOK[check_option(notebook, "notebook", "figure", BY_NOTEBOOK)]


def planned_runs(experiments, seeds) -> list[tuple]:
    """The ``(experiment, seed)`` pairs of a figure module's ``sweep_plan``, whose ``seeds``
    are one list for every experiment or a dict giving each its own (F4's depths); a
    repeated experiment counts once."""
    return [(e, s) for e in dict.fromkeys(experiments)
            for s in (seeds[e] if isinstance(seeds, Mapping) else seeds)]
