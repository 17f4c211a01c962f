"""Multi-layer ReLU networks on MNIST, trained by backpropagation (BP) or feedback alignment (FA).

The networks of F4 (``docs/protocols.md``): ``L`` hidden ReLU layers of widths
``p_1 .. p_L``, input dimension ``d = p_0 = 784``, ``K = 10`` classes, no biases, every
weight i.i.d. N(0, 1)::

    H_0 = X                                       # (m, d)    standardised pixels
    H_1 = relu(H_0 W_1^T)                         # (m, p_1)  the input is not rescaled
    H_l = relu(H_{l-1} W_l^T / sqrt(p_{l-1}))     # (m, p_l)  l = 2 .. L
    Z   = H_L W_{L+1}^T / sqrt(p_L)               # (m, K)    logits
    loss = mean_i cross_entropy(softmax(Z_i), y_i)

For 784-1000-10 this is the authors' ``Z = W2 relu(W1 x) / sqrt(1000)`` (their
two-hidden-layer run divided the logits by ``p``; see :mod:`fa.figures.mnist`).
``scale_input=True`` also divides the first layer by ``sqrt(784)``: by relu's positive
homogeneity, the paper's network with its logits divided by 28 (hence ``lr`` of order 1-10).

Learning rules. With ``E = dloss/dZ = (softmax(Z) - onehot(y)) / m`` and
``Delta_{L+1} = E``, going down ``l = L+1 .. 1`` (read ``sqrt(p_0)`` as 1 unless
``scale_input=True``)::

    G_l     = Delta_l^T H_{l-1} / sqrt(p_{l-1}) + lam_l W_l  # (p_l, p_{l-1})  update direction
    S_{l-1} = Delta_l M_l / sqrt(p_{l-1})                    # (m, p_{l-1})   error sent to layer l-1
    Delta_{l-1} = S_{l-1} * 1[H_{l-1} > 0]                   # through relu'

with ``M_l = W_l`` for BP (the exact gradient of ``loss + sum_l lam_l/2 |W_l|_F^2``)
and ``M_l = B_{l-1}`` for FA, a fixed random N(0, 1) matrix of the shape of ``W_l``.
That is the only difference, so FA with ``B_l = W_{l+1}`` is BP. Updates are
mini-batch SGD, ``W_l <- W_l - eta G_l``, with no other weight decay.

The L2 penalty as the authors' code applies it: ``lam_l = lam`` for ``l = 2 .. L+1``, and
``lam_1 = 0`` (the input layer) unless ``penalize="all"`` (see :func:`train_deep`).

Measurements, per hidden layer ``l = 1 .. L`` (``layer`` in the results), whose
feedback matrix ``B_l`` takes the place of ``W_{l+1}``:

- weight alignment ``<B_l, W_{l+1}>_F / (|B_l|_F |W_{l+1}|_F)``;
- error-signal alignment: the mean over the mini-batch of ``cos(S_l^FA[i], S_l^BP[i])``,
  both from the same forward pass: the error FA sends to layer ``l`` (through
  ``B_L, ..., B_l``) and the exact gradient of the loss with respect to ``H_l``
  (through ``W_{L+1}, ..., W_{l+1}``). For the top hidden layer this is the paper's
  ``cos(e_i B, e_i W2)``; lower layers include the errors of the layers above.
  Examples where either vector is zero are left out (NaN if none is left).

BP runs record both too, with feedback matrices drawn as for FA and left unused: the
chance baseline.
"""

from __future__ import annotations

import math
import numbers
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np

from fa import model
from fa.constraints import check, check_array, check_float, check_int, check_option, fail
from fa.loop import DivergenceWarning

RULES = ("bp", "fa")
# Which layers lam acts on: every layer except the input one (the authors' code), or all.
PENALTIES = ("above_input", "all")
# A run counts as diverged once its mini-batch loss is not finite or exceeds this many
# times max(initial loss, log K) (log K: the loss of a uniform guess).
DIVERGENCE_FACTOR = 100.0


@dataclass(frozen=True, eq=False)
class DeepResult:
    """Recorded history of one :func:`train_deep` run.

    Record ``k`` is taken after ``step[k]`` SGD updates: test-set quantities, and the
    alignment and loss on the mini-batch that the next update uses.

    Attributes
    ----------
    rule, hidden, lam, penalize, lr, batch_size, steps, seed, dtype, scale_input
        The run's settings (``steps`` as requested).
    source : str
        Where the data came from (``MnistData.source``, or ``"arrays"``).
    step : ndarray of shape (k,)
        Steps at which records were taken: 0, record_every, ..., and the last step.
    test_accuracy, test_loss : ndarray of shape (k,)
        Accuracy and mean cross-entropy (no L2 term) on the test set.
    train_loss : ndarray of shape (k,)
        Mean cross-entropy (no L2 term) on the mini-batch.
    weight_alignment, signal_alignment : ndarray of shape (k, L)
        Column ``l - 1`` for hidden layer ``l`` (see the module docstring).
    weights : tuple of ndarray
        Forward weights ``W_1 .. W_{L+1}`` when the run stopped.
    feedback : tuple of ndarray
        Feedback matrices ``B_1 .. B_L`` (``B_l`` has the shape of ``W_{l+1}``).
    diverged : bool
        The run was stopped early because the loss blew up: records stop at the last
        finite one, and ``weights`` are not meaningful.
    diverged_at : int or None
        The step at which divergence was detected.
    """

    rule: str
    hidden: tuple[int, ...]
    lam: float
    penalize: str
    lr: float
    batch_size: int
    steps: int
    seed: int
    dtype: str
    scale_input: bool
    source: str
    step: np.ndarray = field(repr=False)
    test_accuracy: np.ndarray = field(repr=False)
    test_loss: np.ndarray = field(repr=False)
    train_loss: np.ndarray = field(repr=False)
    weight_alignment: np.ndarray = field(repr=False)
    signal_alignment: np.ndarray = field(repr=False)
    weights: tuple[np.ndarray, ...] = field(repr=False)
    feedback: tuple[np.ndarray, ...] = field(repr=False)
    diverged: bool = False
    diverged_at: int | None = None

    @property
    def depth(self) -> int:
        """Number of hidden layers ``L``."""
        return len(self.hidden)

    def curves(self) -> dict[str, np.ndarray]:
        """The history, one entry per (step, layer): ``step``, ``layer``, the alignments and,
        repeated for each layer, ``test_accuracy``, ``test_loss``, ``train_loss``."""
        k, L = len(self.step), self.depth
        return dict(step=np.repeat(self.step, L), layer=np.tile(np.arange(1, L + 1), k),
                    weight_alignment=self.weight_alignment.reshape(-1),     # (k L,)
                    signal_alignment=self.signal_alignment.reshape(-1),     # (k L,)
                    test_accuracy=np.repeat(self.test_accuracy, L),
                    test_loss=np.repeat(self.test_loss, L),
                    train_loss=np.repeat(self.train_loss, L))

    def to_frame(self):
        """A tidy DataFrame, a row per (step, layer): rule, depth, lam, seed, curves, diverged."""
        import pandas as pd

        return pd.DataFrame(dict(rule=self.rule, depth=self.depth, lam=self.lam,
                                 seed=self.seed, **self.curves(), diverged=self.diverged))


def init_deep(hidden=(1000,), *, n_in: int = 784, n_out: int = 10, seed: int = 0,
              dtype="float64") -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Draw the initial forward weights and the feedback matrices, as :func:`train_deep` does.

    Parameters
    ----------
    hidden : sequence of int, default (1000,)
        Hidden-layer widths ``p_1 .. p_L``.
    n_in, n_out : int, default 784, 10
        Input dimension ``d`` and number of classes ``K``.
    seed : int, default 0
        The run's seed: weights, feedback matrices and batch order come from its streams
        ``INIT``, ``FEEDBACK`` and ``BATCHES`` of :func:`fa.model.rng`, so runs with one
        seed start from the same weights and see the same batches, whatever the rule.
    dtype : {"float64", "float32"}, default "float64"
        Drawn in float64 and rounded: float32 runs start from the float64 weights.

    Returns
    -------
    weights : list of ndarray
        ``W_1 .. W_{L+1}``, ``W_l`` of shape ``(p_l, p_{l-1})``, entries N(0, 1).
    feedback : list of ndarray
        ``B_1 .. B_L``, ``B_l`` of the shape of ``W_{l+1}``, entries N(0, 1).
    """
    caller = "init_deep"
    hidden = check_hidden(hidden, caller)
    n_in = check_int(n_in, "n_in", caller, low=1)
    n_out = check_int(n_out, "n_out", caller, low=2)
    seed = check_int(seed, "seed", caller, low=0)
    dtype = np.dtype(check("dtype", dtype, caller))
    return _draw(hidden, n_in, n_out, seed, dtype)


def train_deep(data, *, hidden=(1000,), rule: str = "fa", lam: float = 0.0,
               penalize: str = "above_input", lr: float = 0.01, batch_size: int = 600,
               steps: int = 1000, seed: int = 0, record_every: int = 100, dtype="float64",
               scale_input: bool = False, feedback=None) -> DeepResult:
    """Train a ReLU network on MNIST by mini-batch SGD with BP or FA (the paper's F4).

    The model, the rules and the measurements are those of the module docstring.

    Parameters
    ----------
    data : MnistData or tuple (X_train, y_train, X_test, y_test)
        Inputs as rows (already standardised), integer labels ``0 .. K-1``;
        ``K`` is the largest training label + 1 (a larger test label is refused).
    hidden : sequence of int, default (1000,)
        Hidden-layer widths; ``(1000,)`` is the paper's 784-1000-10 network,
        ``(1000, 1000)`` its two-hidden-layer variant.
    rule : {"fa", "bp"}, default "fa"
        Feedback alignment or backpropagation.
    lam : float, default 0.0
        L2 strength: the update direction of a penalised layer is the batch-mean
        gradient plus ``lam * W`` (the paper: 0, 0.1, 0.3).
    penalize : {"above_input", "all"}, default "above_input"
        Which layers ``lam`` acts on: ``W_2 .. W_{L+1}``, as the authors' code does, or
        ``W_1`` too (not the paper's protocol: it shrinks the input layer, costing accuracy).
    lr : float, default 0.01
        Step size ``eta`` (the paper's value; see ``scale_input``).
    batch_size : int, default 600
        Mini-batch size ``m``, at most ``n_train``. Each epoch is a fresh permutation
        cut into ``n_train // batch_size`` batches; the rest (others each epoch) is skipped.
    steps : int, default 1000
        Number of SGD updates (the paper: 300 epochs of 60000 at batch 600 = 30000);
        0 measures the initial network only.
    seed : int, default 0
        Seed of the weights, the feedback matrices and the batch order (:func:`init_deep`).
    record_every : int, default 100
        Record at steps 0, record_every, 2 record_every, ... and at the last step.
    dtype : {"float64", "float32"}, default "float64"
        Arithmetic precision; float32 is about twice as fast.
    scale_input : bool, default False
        Divide the first layer's pre-activations by ``sqrt(d)`` too; it then needs ``lr``
        of order 1-10 (and a smaller ``lam``). False is the paper's network.
    feedback : sequence of arrays, optional
        Use these feedback matrices ``B_1 .. B_L`` (shapes of ``W_2 .. W_{L+1}``)
        instead of drawing them; copied, never modified. Passing the initial
        forward weights ``init_deep(...)[0][1:]`` makes the first FA step a BP step.

    Returns
    -------
    DeepResult
        The history (``.to_frame()`` for a tidy table) and the final weights.

    Warns
    -----
    fa.DivergenceWarning
        Once, if the loss is not finite or exceeds ``DIVERGENCE_FACTOR`` times
        max(initial loss, log K): the run stops there and is marked ``diverged``.

    Examples
    --------
    The paper's network with its lambda = 0.3, on the bundled 5000-image subset
    (a few seconds in float32):

    >>> from fa.mnist import load_mnist
    >>> res = train_deep(load_mnist(subset=True), rule="fa", lam=0.3, lr=0.01, steps=500,
    ...                  dtype="float32")                           # doctest: +SKIP
    >>> res.signal_alignment[-1], res.test_accuracy[-1]            # doctest: +SKIP
    """
    caller = "train_deep"
    dtype = np.dtype(check("dtype", dtype, caller))
    X_train, y_train, X_test, y_test, source = _check_data(data, caller, dtype)
    hidden = check_hidden(hidden, caller)
    rule = check_option(rule, "rule", caller, RULES)
    lam = check_float(lam, "lam", caller, low=0.0)
    penalize = check_option(penalize, "penalize", caller, PENALTIES)
    lr = check_float(lr, "lr", caller, low=0.0, low_open=True)
    batch_size = check_int(batch_size, "batch_size", caller, low=1, high=len(y_train))
    steps = check_int(steps, "steps", caller, low=0)
    seed = check_int(seed, "seed", caller, low=0)
    record_every = check_int(record_every, "record_every", caller, low=1)
    if not isinstance(scale_input, (bool, np.bool_)):
        raise fail("scale_input", caller, "a bool", scale_input)
    n_out = int(y_train.max()) + 1

    W, B = _draw(hidden, X_train.shape[1], n_out, seed, dtype)
    if feedback is not None:
        B = _check_feedback(feedback, [w.shape for w in W[1:]], caller, dtype)
    c = _scales(W, scale_input)                # 1 / sqrt(fan-in) of each layer, shared by BP and FA
    lams = _penalties(lam, penalize, len(W))   # lam_l per layer: lam_1 = 0 unless penalize="all"
    batches = _batches(len(y_train), batch_size, model.rng(seed, model.BATCHES))

    # The one line where the rules differ: the matrices that carry the error down.
    M = W[1:] if rule == "bp" else B           # BP: forward weights (updated in place); FA: fixed B

    records, diverged_at, limit = [], None, math.inf
    with np.errstate(over="ignore", invalid="ignore", divide="ignore", under="ignore"):
        for t in range(steps + 1):
            idx = next(batches)
            X, y = X_train[idx], y_train[idx]  # (m, d), (m,)
            H, Z = _forward(W, X, c)           # H = [X, H_1 .. H_L], Z: (m, K)
            loss, E = _cross_entropy(Z, y)     # E = dloss/dZ: (m, K)
            if t == 0:
                limit = DIVERGENCE_FACTOR * max(loss, math.log(n_out))
            if not loss <= limit:              # also catches NaN
                diverged_at = t
                break
            if t % record_every == 0 or t == steps:
                record = _measure(t, W, B, c, H, E, loss, X_test, y_test)
                if not (np.isfinite(record[1]) and np.isfinite(record[2])):
                    diverged_at = t
                    break
                records.append(record)
            if t == steps:
                break
            G, _ = _backward(W, M, c, H, E, lams)
            for W_l, G_l in zip(W, G):
                G_l *= lr
                W_l -= G_l                     # W_l <- W_l - eta (grad + lam_l W_l)

    if diverged_at is not None:   # the message form of fa.train's
        warnings.warn(
            f"1 of 1 runs diverged (first: seed {seed} at step {diverged_at}) with lr={lr}; "
            "they were stopped and marked in result.diverged. Lower 'lr'.",
            DivergenceWarning, stacklevel=2)

    L = len(hidden)
    cols = list(zip(*records)) if records else [()] * 6
    return DeepResult(
        rule=rule, hidden=hidden, lam=lam, penalize=penalize, lr=lr, batch_size=batch_size,
        steps=steps, seed=seed, dtype=dtype.name, scale_input=bool(scale_input), source=source,
        step=np.array(cols[0], dtype=np.int64),
        test_accuracy=np.array(cols[1], dtype=np.float64),
        test_loss=np.array(cols[2], dtype=np.float64),
        train_loss=np.array(cols[3], dtype=np.float64),
        weight_alignment=np.array(cols[4], dtype=np.float64).reshape(-1, L),
        signal_alignment=np.array(cols[5], dtype=np.float64).reshape(-1, L),
        weights=tuple(W), feedback=tuple(B),
        diverged=diverged_at is not None, diverged_at=diverged_at,
    )


# --------------------------------------------------------------------------- the math

def _scales(W, scale_input: bool) -> list[float]:
    """``c[l] = 1 / sqrt(fan-in of W[l])``; ``c[0] = 1`` without input scaling."""
    c = [1.0 / math.sqrt(W_l.shape[1]) for W_l in W]
    if not scale_input:
        c[0] = 1.0
    return c


def _penalties(lam: float, penalize: str, n_layers: int) -> list[float]:
    """``lam_l`` for ``W_1 .. W_{L+1}``: the input layer is penalised only with ``"all"``."""
    return [lam if (l > 0 or penalize == "all") else 0.0 for l in range(n_layers)]


def _forward(W, X, c):
    """Hidden activations ``H = [X, H_1 .. H_L]`` and logits ``Z`` (see the module docstring)."""
    H = [X]
    for W_l, c_l in zip(W[:-1], c):
        A = H[-1] @ W_l.T                           # (m, p_l)
        A *= c_l                                    # / sqrt(p_{l-1}), the fan-in
        H.append(np.maximum(A, 0.0, out=A))         # relu
    Z = H[-1] @ W[-1].T                             # (m, K)
    Z *= c[-1]                                      # / sqrt(p_L)
    return H, Z


def _cross_entropy(Z, y):
    """Mean softmax cross-entropy and ``E = dloss/dZ = (softmax(Z) - onehot(y)) / m``."""
    m, rows = len(y), np.arange(len(y))
    Z = Z - Z.max(axis=1, keepdims=True)            # (m, K) shift: exp cannot overflow
    P = np.exp(Z)                                   # (m, K)
    total = P.sum(axis=1, keepdims=True)            # (m, 1)
    loss = float(np.mean(np.log(total[:, 0]) - Z[rows, y]))
    P /= total                                      # softmax
    P[rows, y] -= 1.0
    P /= m
    return loss, P


def _backward(W, M, c, H, E, lams, *, grads=True):
    """Update directions ``G_l`` and error signals ``S_l`` sent to each hidden layer.

    ``M[l]`` carries the error from layer ``l + 2`` down to hidden layer ``l + 1``
    (0-based lists): ``M = W[1:]`` gives BP, ``M = B`` gives FA. ``lams[l]`` is the
    L2 strength of ``W[l]``. With ``grads=False`` only the signals are computed.
    """
    G, S = [None] * len(W), [None] * (len(W) - 1)
    Delta = E                                       # (m, K) error at the logits
    for l in range(len(W) - 1, -1, -1):             # W[l] maps H[l] up to layer l + 1
        if grads:
            G[l] = Delta.T @ H[l]                   # (p_{l+1}, p_l)
            G[l] *= c[l]                            # the forward pass's 1 / sqrt(fan-in)
            if lams[l]:
                G[l] += lams[l] * W[l]
        if l > 0:
            S[l - 1] = Delta @ M[l - 1]             # (m, p_l)  BP: W[l], FA: B[l-1]
            S[l - 1] *= c[l]
            Delta = S[l - 1] * (H[l] > 0)           # (m, p_l)  through relu'
    return G, S


def _measure(t, W, B, c, H, E, loss, X_test, y_test):
    """One record: step, test accuracy, test loss, batch loss, alignments per hidden layer."""
    _, Z_test = _forward(W, X_test, c)
    test_loss, _ = _cross_entropy(Z_test, y_test)
    test_accuracy = float(np.mean(np.argmax(Z_test, axis=1) == y_test))
    _, S_bp = _backward(W, W[1:], c, H, E, None, grads=False)
    _, S_fa = _backward(W, B, c, H, E, None, grads=False)
    weight_alignment = [float(model.cosine(B_l.astype(np.float64).ravel(),
                                           W_l.astype(np.float64).ravel()))
                        for B_l, W_l in zip(B, W[1:])]
    signal_alignment = [_mean_row_cosine(s_fa, s_bp) for s_fa, s_bp in zip(S_fa, S_bp)]
    return t, test_accuracy, test_loss, loss, weight_alignment, signal_alignment


def _mean_row_cosine(A, C) -> float:
    """Mean over rows of cos(A[i], C[i]), leaving out rows where either is zero."""
    A, C = A.astype(np.float64, copy=False), C.astype(np.float64, copy=False)
    norms = np.linalg.norm(A, axis=1) * np.linalg.norm(C, axis=1)   # (m,)
    ok = norms > 0
    if not ok.any():
        return math.nan
    return float(np.mean(np.einsum("ij,ij->i", A[ok], C[ok]) / norms[ok]))


# --------------------------------------------------------------------------- randomness

def _draw(hidden, n_in, n_out, seed, dtype):
    sizes = (n_in, *hidden, n_out)                  # p_0 .. p_{L+1}
    rng_w, rng_b = model.rng(seed, model.INIT), model.rng(seed, model.FEEDBACK)
    W = [rng_w.standard_normal((sizes[l + 1], sizes[l])).astype(dtype, copy=False)
         for l in range(len(sizes) - 1)]            # W_l: (p_l, p_{l-1})
    B = [rng_b.standard_normal(w.shape).astype(dtype, copy=False) for w in W[1:]]
    return W, B


def _batches(n: int, batch_size: int, rng: np.random.Generator) -> Iterator[np.ndarray]:
    """Endless mini-batch indices: each epoch a fresh permutation, cut into full batches."""
    per_epoch = n // batch_size
    while True:
        perm = rng.permutation(n)
        for k in range(per_epoch):
            yield perm[k * batch_size:(k + 1) * batch_size]


# --------------------------------------------------------------------------- validation

def check_hidden(hidden, caller: str) -> tuple[int, ...]:
    """``hidden`` as a tuple of layer widths, or the project's ValueError naming ``caller``."""
    expected = "a non-empty sequence of positive ints (hidden-layer widths)"
    if isinstance(hidden, (str, bytes)) or not isinstance(hidden, Sequence) or not hidden:
        raise fail("hidden", caller, expected, hidden)
    for p in hidden:
        if isinstance(p, bool) or not isinstance(p, numbers.Integral) or p < 1:
            raise fail("hidden", caller, expected, hidden)
    return tuple(int(p) for p in hidden)


def _check_data(data, caller: str, dtype):
    """The four arrays of ``data`` as ``dtype`` inputs and integer labels, and its source."""
    source = getattr(data, "source", "arrays")
    try:
        X_train, y_train, X_test, y_test = data
    except (TypeError, ValueError):
        raise fail("data", caller, "an MnistData or a tuple (X_train, y_train, X_test, y_test)",
                   type(data).__name__) from None
    # Each array is named as data's fields (MnistData's attributes), so a message says which.
    X_train = check_array(X_train, "X_train", caller, ndim=(2,), dtype=dtype)
    X_test = check_array(X_test, "X_test", caller, ndim=(2,), dtype=dtype)
    if X_train.shape[1] != X_test.shape[1]:
        raise fail("data", caller, "train and test inputs with the same number of columns",
                   f"{X_train.shape[1]} and {X_test.shape[1]}")
    y_train = _check_labels(y_train, "y_train", len(X_train), caller)
    y_test = _check_labels(y_test, "y_test", len(X_test), caller)
    if y_train.max() < 1:                       # one class: nothing to learn, cosines 0/0
        raise fail("y_train", caller, "labels of at least two classes", "only the label 0")
    # The classes are the training labels': a test label beyond them is a mistake, not
    # a reason for another output unit.
    if y_test.max() > y_train.max():
        raise fail("y_test", caller, f"labels among the training labels 0 .. {y_train.max()}",
                   f"labels up to {y_test.max()}")
    return X_train, y_train, X_test, y_test, source


def _check_labels(y, name: str, n: int, caller: str) -> np.ndarray:
    y = np.asarray(y)
    expected = f"labels as a 1-d array of {n} non-negative ints (one per input row)"
    if y.ndim != 1 or len(y) != n or not np.issubdtype(y.dtype, np.integer):
        raise fail(name, caller, expected, f"an array of shape {y.shape} and dtype {y.dtype}")
    if y.min() < 0:
        raise fail(name, caller, expected, f"labels down to {y.min()}")
    return y.astype(np.intp, copy=False)


def _check_feedback(feedback, shapes, caller: str, dtype) -> list[np.ndarray]:
    expected = f"a sequence of {len(shapes)} arrays of shapes {shapes}"
    if isinstance(feedback, np.ndarray) or not isinstance(feedback, Sequence) \
            or len(feedback) != len(shapes):
        raise fail("feedback", caller, expected, type(feedback).__name__)
    B = []
    for B_l, shape in zip(feedback, shapes):
        B_l = check_array(B_l, "feedback", caller, ndim=(2,), dtype=dtype)
        if B_l.shape != shape:
            raise fail("feedback", caller, expected, f"an array of shape {B_l.shape}")
        B.append(B_l.copy())
    return B
