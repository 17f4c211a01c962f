"""The activations psi of the paper, defined once.

:data:`ACTIVATIONS` maps a name to an :class:`Activation`: ``psi`` and its
derivative ``dpsi``, each written twice side by side,

* as a scalar function of one float ``h`` (plain Python arithmetic, so that numba
  compiles it into the trainer's fused loops, :mod:`fa._kernels`), and
* as an array function ``(xp, H) -> array`` written against the Python array API
  standard (``xp`` is the array's namespace: numpy, torch, cupy, ...), used by
  the reference step (:mod:`fa.reference`), the array-API backends and the data
  generator.

A new activation is one more entry, e.g.::

    ACTIVATIONS["softplus"] = Activation(
        psi=lambda h: math.log1p(math.exp(-abs(h))) + max(h, 0.0),
        dpsi=lambda h: 1.0 / (1.0 + math.exp(-h)),
        psi_array=lambda xp, H: xp.log1p(xp.exp(-xp.abs(H))) + xp.maximum(H, 0.0),
        dpsi_array=lambda xp, H: 1.0 / (1.0 + xp.exp(-H)))

after which every function of the package accepts ``activation="softplus"``; the
fused loops compile it from its scalar pair (which must be self-contained
arithmetic and ``math`` calls, no calls to other Python functions). ``dpsi_of_psi`` is an optional shortcut for activations
whose derivative is cheap given ``a = psi(h)`` (tanh, sigmoid): the fused loops
then read ``A = psi(H)``, computed by the vectorised array function, instead of
evaluating the scalar ``psi`` (numba's ``tanh`` is slower than numpy's).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable


@dataclass(frozen=True)
class Activation:
    """An activation ``psi`` and its derivative, as scalar and as array functions.

    Attributes
    ----------
    psi, dpsi : callable float -> float
        ``psi(h)`` and ``psi'(h)``, in arithmetic numba can compile.
    psi_array, dpsi_array : callable (xp, H) -> array
        The same elementwise on an array ``H``, with ``xp`` its array-API namespace.
    dpsi_of_psi : callable float -> float, optional
        ``psi'(h)`` as a function of ``a = psi(h)``.
    unit_slope : bool, default False
        ``psi'(h) = 1`` everywhere (the linear network). Without dropout the first-layer
        step ``eta G_W = eta c (e v^T)^T X`` is then rank one, and the fused loops move
        ``H`` by that outer product in the pass that reads it (:mod:`fa._kernels`).
    """

    psi: Callable[[float], float]
    dpsi: Callable[[float], float]
    psi_array: Callable
    dpsi_array: Callable
    dpsi_of_psi: Callable[[float], float] | None = None
    unit_slope: bool = False


# sigmoid(h) = (1 + tanh(h/2)) / 2, so no overflow for large |h|, and
# sigmoid'(h) = (1 - tanh(h/2)^2) / 4. Scalar functions stay self-contained (no calls
# to other Python functions), so that numba compiles them.
def _sigmoid_array(xp, H):
    return (xp.tanh(H * 0.5) + 1.0) * 0.5


ACTIVATIONS: dict[str, Activation] = {
    "linear": Activation(
        psi=lambda h: h, dpsi=lambda h: 1.0,
        psi_array=lambda xp, H: H, dpsi_array=lambda xp, H: xp.ones_like(H), unit_slope=True),
    "relu": Activation(
        psi=lambda h: max(h, 0.0), dpsi=lambda h: 1.0 if h > 0.0 else 0.0,
        psi_array=lambda xp, H: xp.maximum(H, 0.0),
        dpsi_array=lambda xp, H: xp.astype(H > 0.0, H.dtype)),
    "tanh": Activation(
        psi=math.tanh, dpsi=lambda h: 1.0 - math.tanh(h) ** 2,
        psi_array=lambda xp, H: xp.tanh(H),
        dpsi_array=lambda xp, H: 1.0 - xp.tanh(H) ** 2,
        dpsi_of_psi=lambda a: 1.0 - a * a),
    "sigmoid": Activation(
        psi=lambda h: (math.tanh(h * 0.5) + 1.0) * 0.5,
        dpsi=lambda h: 0.25 * (1.0 - math.tanh(h * 0.5) ** 2),
        psi_array=_sigmoid_array,
        dpsi_array=lambda xp, H: 0.25 * (1.0 - xp.tanh(H * 0.5) ** 2),
        dpsi_of_psi=lambda a: a * (1.0 - a)),
}


def get(name) -> Activation:
    """The :class:`Activation` called ``name``; ValueError listing the names if unknown."""
    if not isinstance(name, str) or name not in ACTIVATIONS:
        listed = ", ".join(repr(k) for k in ACTIVATIONS)
        raise ValueError(f"The 'activation' parameter must be one of {listed}. "
                         f"Got {name!r} instead.")
    return ACTIVATIONS[name]


def psi(name: str, H):
    """Return ``psi(H)`` for the activation ``name`` (any array-API array)."""
    from array_api_compat import array_namespace
    return get(name).psi_array(array_namespace(H), H)
