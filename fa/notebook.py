"""What a figure notebook runs first: its parameters, checked against the registry.

papermill passes a misspelt parameter (``-p widht 800``) on as a new variable, with
only a warning, and the notebook would silently run its defaults. The cell after the
parameters calls :func:`check_parameters`, which compares every variable the
parameters (and papermill's injected cell) defined with the names the figure accepts.
"""

from __future__ import annotations

import types

from .registry import figure

#: Names IPython itself puts into a notebook's namespace.
_IPYTHON = {"In", "Out", "get_ipython", "exit", "quit", "open"}


def check_parameters(namespace: dict, notebook: str) -> None:
    """Raise ``ValueError`` if ``namespace`` defines a name ``notebook`` does not accept.

    Parameters
    ----------
    namespace : dict
        The notebook's ``globals()``, right after its parameters cell.
    notebook : str
        The notebook's name, e.g. ``"03_width_dependence"`` (see :mod:`fa.registry`).

    Raises
    ------
    ValueError
        Naming each unknown parameter and listing the accepted ones.
    """
    accepted = figure(notebook).accepted
    unknown = sorted(name for name, value in namespace.items()
                     if not name.startswith("_") and name not in _IPYTHON
                     and not isinstance(value, types.ModuleType) and not callable(value)
                     and name not in accepted)
    if unknown:
        raise ValueError(f"Unknown parameter{'s' if len(unknown) > 1 else ''} "
                         f"{', '.join(map(repr, unknown))} for notebook {notebook}; "
                         f"accepted names: {', '.join(accepted)}.")
