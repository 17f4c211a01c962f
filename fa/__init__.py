"""fa: the reproducible companion to Song, Xu & Lafferty (NeurIPS 2021),
*Convergence and Alignment of Gradient Descent with Random Backpropagation Weights*.

Public API
----------
make_data
    Linear or teacher-network regression data, as in the paper's simulations.
train
    Full-batch gradient descent on a two-layer network, by backpropagation (BP)
    or feedback alignment (FA), with L2 / dropout regularisation, on the fused
    CPU path or any array library (``backend=``).
model
    The paper's model in one file: activations, the two rules, the initial draws and
    one training step as the paper writes it (the oracle of every fast path).
ACTIVATIONS, RULES, cosine
    The activations (psi, psi') and the learning rules, one table each; the alignment.
run_sweep, RunConfig
    Many runs, cached on disk, resumable, on local processes or a Dask cluster
    (``cluster.connect``).
settings
    The protocol of F1-F3 at "quick" or "paper" scale (F4 and the mechanisms
    notebook: ``fa.figures.mnist.settings`` and ``fa.figures.mechanisms.settings``).
train_deep, load_mnist
    Deeper ReLU networks by BP or FA on MNIST (the full set, downloaded once and
    verified, or the bundled subset offline).
figures, gallery
    Every figure declared once (``fa.figures.FIGURES``); the data behind each
    committed figure.

The figure modules live in ``fa/figures/``, one a figure
(``from fa.figures import convergence``): ``convergence`` (F1), ``alignment_dynamics``
(F2), ``width_dependence`` (F3, F3-dropout), ``mnist`` (F4) and ``mechanisms`` (why it
happens); each has ``sweep_plan``, ``plot`` and ``claims``, and builds its experiments
with ``configs``; see docs/extending.md.
"""

__version__ = "0.1.0"

from .model import ACTIVATIONS, RULES, Activation, cosine
from .data import make_data
from .loop import DivergenceWarning, Stopping, TrainResult
from .trainer import train
from .experiments import RunConfig, SweepResult, cache_key, run_sweep
from .presets import settings
from .deep import DeepResult, init_deep, train_deep
from .mnist import MnistData, load_mnist, read_idx
from . import claims, cluster, constraints, figures, gallery, loop, model, notebook, paths

__all__ = ["ACTIVATIONS", "RULES", "Activation", "Stopping", "DeepResult", "DivergenceWarning", "MnistData",
           "RunConfig", "SweepResult", "TrainResult", "cache_key", "cosine", "init_deep",
           "load_mnist", "make_data", "read_idx", "run_sweep", "settings", "train",
           "train_deep"]
