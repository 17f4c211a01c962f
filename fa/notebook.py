"""What a figure notebook runs first: its parameters, checked against the registry
(:func:`check_parameters`), and where it writes (:func:`output_folders`).

papermill passes a misspelt parameter (``-p widht 800``) on as a new variable, with only
a warning. So the cell after the parameters cell compares the names the parameters cell
and papermill's injected cell assigned with the names the figure accepts. Those names
come from the kernel's input history (IPython's ``In``), not the namespace, which also
holds every name the notebook's own cells made: the cells run just before the check that
papermill injected, or that assign a parameter the figure accepts and hold nothing but
assignments, imports and functions (an activation registered there does not hide a
misspelt name, nor does a cell of the user's between them and the check), however the
notebook is run (Run All, again in the same kernel, papermill, or rerunning the edited
parameters cell and those below). In plain Python,
without that history, every variable of the namespace is checked.

A papermill run with parameters of its own would write over the quick start's results in
``build/``: unless it chose its folders, :func:`output_folders` gives it
``runs/<notebook>-<its parameters>/`` there, and says so.
"""

from __future__ import annotations

import ast
import re
import types

from . import cache
from .figures import figure

#: Names IPython itself puts into a notebook's namespace.
_IPYTHON = {"In", "Out", "get_ipython", "exit", "quit", "open"}
#: Parameters that change where and how a run goes, never what it computes.
_PLACE = {"n_jobs", "scheduler", "results_dir", "figures_dir"}


#: What a parameters cell may hold besides assignments: imports and functions, say to
#: register an activation (docs/extending.md).
_DECLARATIONS = (ast.Import, ast.ImportFrom, ast.FunctionDef)


def _assigned(source: str) -> set[str] | None:
    """The names ``source`` assigns (``a = 1``, ``a: int = 1``, ``a, b = 1, 2``) if it holds
    only assignments and declarations, else ``None``: a cell that does anything else is
    not a parameters cell."""
    try:
        body = ast.parse(source).body
    except SyntaxError:
        return None
    names = set()
    for statement in body:
        if isinstance(statement, _DECLARATIONS):
            continue
        if not isinstance(statement, (ast.Assign, ast.AnnAssign)):
            return None
        for target in getattr(statement, "targets", [getattr(statement, "target", None)]):
            names.update(node.id for node in getattr(target, "elts", [target])
                         if isinstance(node, ast.Name))
    return names


def _parameter_cells(history: list[str], accepted) -> list[str]:
    """The consecutive cells that papermill injected or that assign one of the ``accepted``
    names (and only assign and declare, :func:`_assigned`), run last before the running
    one, newest first: this run's parameters cells. Cells run between them and the check
    (a cell of the user's, registering an activation) are passed over, but not a previous
    check: that is another run's, or another notebook's in the same kernel."""
    cells = []
    for source in reversed(history[:-1]):
        if not source.strip():      # IPython's placeholder In[0], an empty cell
            continue
        names = _assigned(source)
        if names is not None and (source.startswith("# Parameters") or names & set(accepted)):
            cells.append(source)
        elif cells or "check_parameters(" in source:
            break
    return cells


def parameter_names(history: list[str], accepted) -> set[str]:
    """The names assigned by the parameters cells run just before the last one.

    Parameters
    ----------
    history : list of str
        The sources of the cells run so far, oldest first, the running cell last
        (IPython's ``In``).
    accepted : collection of str
        The notebook's parameters: a cell that assigns one of them is a parameters cell.

    Returns
    -------
    set of str
        Every name assigned by the consecutive cells before the running one that
        papermill injected or that assign an accepted name (and only assign and declare).
    """
    return set().union(*map(_assigned, _parameter_cells(history, accepted)))


def check_parameters(namespace: dict, notebook: str) -> None:
    """Raise ``ValueError`` if the parameters of ``notebook`` include a name it does not accept.

    Parameters
    ----------
    namespace : dict
        The notebook's ``globals()``, in the cell right after its parameters cell. The
        names checked are those the parameters cells assigned (read from ``In``, see the
        module's docstring); without ``In``, every variable of ``namespace``.
    notebook : str
        The notebook's name, e.g. ``"03_width_dependence"`` (see :mod:`fa.figures`).

    Raises
    ------
    ValueError
        Naming each unknown parameter and listing the accepted ones. With
        ``rerun = False`` (a redraw of the committed figure), the figure's parameters
        that were set are printed as not used.
    """
    accepted = figure(notebook).accepted
    if isinstance(namespace.get("In"), list) and namespace["In"]:
        candidates = parameter_names(namespace["In"], accepted)
    else:
        candidates = {name for name, value in namespace.items()
                      if not name.startswith("_") and name not in _IPYTHON
                      and not isinstance(value, types.ModuleType) and not callable(value)}
    unknown = sorted(candidates - set(accepted))
    if unknown:
        raise ValueError(f"Unknown parameter{'s' if len(unknown) > 1 else ''} "
                         f"{', '.join(map(repr, unknown))} for notebook {notebook}; "
                         f"accepted names: {', '.join(accepted)}.")
    if namespace.get("rerun") is False:
        # A redraw takes the committed run's settings: say so rather than ignore them quietly.
        unused = [n for n in (*figure(notebook).parameters, "n_seeds")
                  if n not in ("rerun", "backend", "device") and namespace.get(n) is not None]
        if unused:
            print(f"rerun = False redraws the committed figure at the settings it ran with; "
                  f"not used here: {', '.join(unused)}.")


def changed(namespace: dict, notebook: str) -> list[str]:
    """The parameters by which this run of ``notebook`` leaves its scale's protocol.

    Parameters
    ----------
    namespace : dict
        The notebook's ``globals()``.
    notebook : str
        The notebook's name, e.g. ``"05_mechanisms"``.

    Returns
    -------
    list of str
        Each figure parameter set here (not None) that makes the sweep's runs other than
        those of the scale's protocol: the cache keys of its ``sweep_plan`` with it differ
        from those without it (so ``n_seeds``, ``backend``, a value equal to the scale's
        and anything in a redraw, ``rerun = False``, do not count). For
        :func:`fa.claims.check`: the claims are checked at the protocol.
    """
    if namespace.get("rerun") is False:
        return []
    entry = figure(notebook)
    module, scale = entry.load(), namespace.get("scale", "quick")

    def runs(**parameters) -> set[str] | None:
        try:
            return {cache.cache_key(e, 0) for e in module.sweep_plan(scale, **parameters)[0]}
        except ValueError:          # valid only beside another one given here (F4's data_dir)
            return None

    protocol = runs()
    given = {name: namespace[name] for name in entry.parameters
             if namespace.get(name) is not None}
    if runs(**given) == protocol:
        return []
    return [name for name, value in given.items() if runs(**{name: value}) != protocol]


def output_folders(namespace: dict, notebook: str) -> tuple[str, str]:
    """The ``results_dir`` and ``figures_dir`` this run of ``notebook`` writes to.

    Parameters
    ----------
    namespace : dict
        The notebook's ``globals()``, in the cell right after its parameters cell (as
        for :func:`check_parameters`): only a papermill cell run just before counts.
    notebook : str
        The notebook's name, e.g. ``"01_convergence"``.

    Returns
    -------
    results_dir, figures_dir : str
        The notebook's own, except for a papermill run that injected parameters of its
        own (anything but ``n_jobs``, ``scheduler`` and the two folders) and no folders:
        then ``runs/<notebook>-<name=value...>/results`` and ``.../figures``, so it does
        not overwrite the quick start's results.
    """
    given = namespace["results_dir"], namespace["figures_dir"]
    # Only this run's injected cell: one run earlier in the same kernel does not count.
    injected = next((source for source in _parameter_cells(namespace.get("In") or [],
                                                           figure(notebook).accepted)
                     if source.startswith("# Parameters")), None)
    assigned = _assigned(injected) if injected is not None else None
    if not assigned or {"results_dir", "figures_dir"} & assigned:
        return given
    own = sorted(assigned - _PLACE)
    if not own:
        return given
    tag = "-".join(f"{name}={namespace[name]}" for name in own)
    folder = f"runs/{notebook}-{re.sub(r'[^A-Za-z0-9=.,_-]+', '', tag)[:120]}"
    print(f"Parameters of its own ({', '.join(own)}): this run writes to {folder}/ in the "
          "output folder, beside the quick start's results/ and figures/.")
    return f"{folder}/results", f"{folder}/figures"
