"""The paper's synthetic regression data: ``linear`` and ``teacher``."""

from __future__ import annotations

import numpy as np
from threadpoolctl import threadpool_limits

from . import model
from .constraints import DATA_KINDS, check_int, check_option, check_seeds
from .model import ACTIVATIONS, psi


def make_data(kind: str, n: int, d: int, *, width: int | None = None,
              activation: str | None = None, seed=0):
    """Draw a regression data set ``(X, y)`` as in the paper's simulations.

    ``X`` has i.i.d. N(0, 1) entries (not rescaled by ``1/sqrt(d)``). For
    ``kind="linear"``, ``y = X theta`` with ``theta ~ N(0, I_d)`` and no noise. For
    ``kind="teacher"``, ``y_i = (1/sqrt(width)) * sum_r alpha_r psi(v_r . x_i)``, a random
    two-layer teacher of the student's form with N(0, 1) weights ``V`` and ``alpha``.

    Parameters
    ----------
    kind : {"linear", "teacher"}
        The data generator.
    n, d : int
        Number of samples and input dimension.
    width : int, optional
        Teacher width (the paper uses the student's ``p``); required for
        ``kind="teacher"``, ignored (but checked) for ``kind="linear"``.
    activation : {"linear", "relu", "tanh", "sigmoid"}, optional
        Teacher activation; required for ``kind="teacher"``, ignored (but checked)
        for ``kind="linear"``.
    seed : int or sequence of int, default 0
        A sequence of ``R`` seeds gives ``R`` independent data sets stacked along a
        leading axis.

    Returns
    -------
    X : ndarray of shape (n, d) or (R, n, d)
    y : ndarray of shape (n,) or (R, n)

    Examples
    --------
    >>> X, y = make_data("teacher", 50, 150, width=200, activation="relu", seed=0)
    >>> X.shape, y.shape
    ((50, 150), (50,))
    """
    caller = "make_data"
    kind = check_option(kind, "kind", caller, DATA_KINDS)
    n = check_int(n, "n", caller, low=1)
    d = check_int(d, "d", caller, low=1)
    if kind == "teacher":
        if width is None or activation is None:
            raise ValueError(
                "make_data(kind='teacher') needs the teacher's 'width' (an int >= 1) and "
                f"'activation' (one of {', '.join(map(repr, ACTIVATIONS))}). "
                f"Got width={width!r}, activation={activation!r} instead."
            )
    # Checked whenever given: a bad value is a mistake even where the linear data ignore it.
    if width is not None:
        width = check_int(width, "width", caller, low=1)
    if activation is not None:
        activation = check_option(activation, "activation", caller, ACTIVATIONS)
    seeds, stacked = check_seeds(seed, "seed", caller)

    Xs, ys = [], []
    # One BLAS thread, as in fa.train and the sweeps: threads split the sums of the
    # products below and round differently, so the data would depend on the machine.
    with threadpool_limits(limits=1, user_api="blas"):
        for s in seeds:
            rng = model.rng(s, model.DATA)
            X = rng.standard_normal((n, d))
            if kind == "linear":
                theta = rng.standard_normal(d)
                y = X @ theta
            else:
                V = rng.standard_normal((width, d))
                alpha = rng.standard_normal(width)
                y = psi(activation, X @ V.T) @ alpha / np.sqrt(width)
            Xs.append(X)
            ys.append(y)
    if stacked:
        return np.stack(Xs), np.stack(ys)
    return Xs[0], ys[0]
