"""fa: the reproducible companion to Song, Xu & Lafferty (NeurIPS 2021),
*Convergence and Alignment of Gradient Descent with Random Backpropagation Weights*.

Public API
----------
make_data
    Linear or teacher-network regression data, as in the paper's simulations.
train
    Full-batch gradient descent on a two-layer network, by backpropagation (BP)
    or feedback alignment (FA), with L2 / dropout regularisation.
"""

__version__ = "0.1.0"

from .activations import ACTIVATIONS
from .data import make_data
from .trainer import DivergenceWarning, TrainResult, cosine, train

__all__ = ["ACTIVATIONS", "DivergenceWarning", "TrainResult", "cosine", "make_data", "train"]
