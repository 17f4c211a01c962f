"""fa: the reproducible companion to Song, Xu & Lafferty (NeurIPS 2021),
*Convergence and Alignment of Gradient Descent with Random Backpropagation Weights*.

Public API
----------
make_data, train
    The paper's regression data; full-batch gradient descent on two-layer networks by
    backpropagation (BP) or feedback alignment (FA), on the fused CPU path or any array
    library (``backend=``).
model, ACTIVATIONS, RULES, cosine
    The paper's model in one file (the oracle of every fast path), its tables of
    activations and learning rules, and the alignment.
run_sweep, RunConfig
    Many runs, cached on disk, resumable, on local processes or a Dask cluster.
settings
    The protocol of F1-F3 at "quick" or "paper" scale (F4 and the mechanisms notebook:
    ``fa.figures.mnist.settings``, ``fa.figures.mechanisms.settings``).
train_deep, load_mnist
    Deeper ReLU networks by BP or FA on MNIST (downloaded once, or the bundled subset).
figures, gallery
    Every figure declared once, in ``fa/figures/`` (docs/extending.md); the data behind
    each committed figure.
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

__all__ = ["ACTIVATIONS", "RULES", "Activation", "Stopping", "DeepResult", "DivergenceWarning",
           "MnistData", "RunConfig", "SweepResult", "TrainResult", "cache_key", "cosine",
           "init_deep", "load_mnist", "make_data", "read_idx", "run_sweep", "settings", "train",
           "train_deep"]
