"""One figure style for the whole project, and saving figures with their provenance."""

from __future__ import annotations

import dataclasses
import json
import subprocess
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path

# No backend is chosen here: Jupyter shows figures inline, and with no display
# matplotlib falls back to a non-interactive backend by itself.
import matplotlib.pyplot as plt
import seaborn as sns
from matplotlib.ticker import FuncFormatter, MaxNLocator

from . import paths
from ._io import atomic_write

#: Panel titles, as the paper names the activations.
TITLES = {"linear": "linear", "relu": "ReLU", "tanh": "tanh", "sigmoid": "sigmoid"}


def use_style() -> None:
    """Apply the project's seaborn style (readable at print size)."""
    sns.set_theme(context="paper", style="whitegrid", font_scale=1.25,
                  rc={"axes.titleweight": "bold", "legend.frameon": True,
                      "savefig.dpi": 150, "figure.dpi": 100})


def palette(n: int):
    """Colours for ``n`` ordered strengths (0 first, darkest last)."""
    return sns.color_palette("viridis_r", n_colors=max(n, 2))[:n]


def band(ax, x, mean, low, high, *, label, color, **kwargs):
    """Draw a line with a shaded band from ``low`` to ``high``."""
    ax.plot(x, mean, label=label, color=color, lw=1.8, **kwargs)
    ax.fill_between(x, low, high, color=color, alpha=0.2, lw=0)


def bands(ax, stats, column: str, label) -> dict:
    """One :func:`band` per value of ``column`` of ``stats`` (``step``, ``mean``, ``low``,
    ``high``), coloured by :func:`palette` in increasing order; returns value -> colour."""
    values = sorted(stats[column].unique())
    colors = dict(zip(values, palette(len(values))))
    for value, color in colors.items():
        g = stats[stats[column] == value]
        band(ax, g["step"], g["mean"], g["low"], g["high"], label=label(value), color=color)
    return colors


#: Line colours of the rules a figure compares with FA, in order (BP first).
OTHER_RULE_COLORS = ("crimson", "darkorange", "teal", "purple", "saddlebrown")


def legend_below(ax, title: str) -> None:
    """A two-column legend under ``ax``."""
    ax.legend(title=title, fontsize="small", title_fontsize="small", ncol=2,
              loc="upper center", bbox_to_anchor=(0.5, -0.2))


def panel_title(activation: str, rule: str, n_rules: int) -> str:
    """The activation's title, and the rule's name when the figure has several."""
    return TITLES.get(activation, activation) + (f" · {rule.upper()}" if n_rules > 1 else "")


def save_figure(fig, name: str, *, figures_dir=None, notebook: str, scale: str,
                settings, caption: str | None = None, about: dict | None = None) -> list[Path]:
    """Write ``fig`` as ``<name>.png`` and ``<name>.pdf``, with its manifest ``<name>.json``.

    The manifest says which notebook made the figure, at which scale, settings and seeds,
    from which commit, plus ``about``. Each file is written atomically, and each figure has
    its own manifest, so an interrupted or concurrent save never leaves a partial one.

    Parameters
    ----------
    fig : matplotlib.figure.Figure
    name : str
        File stem, e.g. ``"convergence"``.
    figures_dir : path, optional
        Output folder; relative paths are taken from :func:`fa.paths.output_root`.
        Default ``figures`` there (``build/figures`` in a checkout).
    notebook, scale : str
        Provenance recorded in the manifest.
    settings : dataclass
        The run's settings, with ``n_seeds`` (e.g. :class:`fa.presets.FigureSettings`),
        recorded in full (and, for figure settings, each activation's precision as
        ``dtypes``).
    caption : str, optional
        The line under the title (widths, seeds, steps). Default :func:`run_caption` of
        ``settings``; F3's runs need their own (``width_dependence.caption``).
    about : dict, optional
        More JSON-able facts for the manifest (e.g. the data set used).

    Returns
    -------
    list of Path
        The PNG, PDF and manifest files.
    """
    out = paths.resolve(figures_dir, paths.FIGURES_DIR)
    out.mkdir(parents=True, exist_ok=True)
    # The figure says at which scale, widths, seeds and steps it ran, so a PNG alone
    # cannot be taken for another run of the same figure.
    caption = run_caption(settings) if caption is None else caption
    fig.suptitle(f"{fig.get_suptitle()}\n{scale} scale: {caption}",
                 fontsize="medium")
    fig.tight_layout()                  # room for the longer title
    seeds = list(range(settings.n_seeds))
    manifest = {
        "files": [f"{name}.png", f"{name}.pdf"],
        "notebook": notebook,
        "scale": scale,
        "settings": dataclasses.asdict(settings),
        **({"dtypes": {a: settings.dtype_for(a) for a in settings.activations}}
           if hasattr(settings, "dtype_for") else {}),
        "seeds": f"{len(seeds)} seeds: {seeds[0]}..{seeds[-1]}" if len(seeds) > 3 else seeds,
        "commit": COMMIT,
        "fa_version": _version(),
        "created": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        **(about or {}),
    }
    files = [out / f"{name}.png", out / f"{name}.pdf", out / f"{name}.json"]
    atomic_write(files[0], lambda f: fig.savefig(f, format="png", bbox_inches="tight",
                                            metadata={"Software": None}))
    atomic_write(files[1], lambda f: fig.savefig(f, format="pdf", bbox_inches="tight",
                                            metadata={"CreationDate": None}))
    text = json.dumps(manifest, indent=2, sort_keys=True, default=str) + "\n"
    atomic_write(files[2], lambda f: f.write(text.encode()))
    return files


def run_caption(settings, steps: str | None = None) -> str:
    """One line of what a figure's run was: the widths ``p``, seeds and steps of its
    ``settings``, those it has; ``steps`` says how long the runs trained instead of
    ``settings.steps``."""
    parts = []
    if getattr(settings, "widths", None):
        parts.append(f"p = {', '.join(f'{w:g}' for w in settings.widths)}")
    parts.append(f"{settings.n_seeds} seed{'s' * (settings.n_seeds > 1)}")
    if steps or hasattr(settings, "steps"):
        parts.append(steps or f"{settings.steps} steps")
    return " · ".join(parts)


def _version() -> str | None:
    """The installed fa's version (None when run from a checkout that is not installed)."""
    try:
        return metadata.version("fa")
    except metadata.PackageNotFoundError:
        return None


def _commit() -> str:
    """The current commit, marked ``+dirty`` if the package or notebooks have changes."""
    if paths.CHECKOUT is None:
        return "unknown (installed package, not a git checkout)"
    try:
        sha = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=paths.CHECKOUT,
                             capture_output=True, text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "fa", "notebooks"],
                               cwd=paths.CHECKOUT, capture_output=True, text=True,
                               check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown (not a git checkout)"
    return sha + ("+dirty" if dirty else "")


#: The commit when this module was imported, in a notebook's setup cell: a manifest names
#: the code that ran, even if the checkout moves on during a run of hours.
COMMIT = _commit()


def step_axis(ax, label: str = "step t") -> None:
    """Label ``ax``'s x axis as a step count, with ticks such as 0, 10k, 20k.

    Full numbers such as 25000 run into each other on a panel a few inches wide.
    """
    ax.xaxis.set_major_locator(MaxNLocator(nbins=4, integer=True))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda x, _: f"{x / 1000:g}k" if x else "0"))
    ax.set_xlabel(label)


def subplots(n_panels: int, n_rows: int = 1, *, width=3.6, height=3.0, **kwargs):
    """A grid of ``n_rows`` x ``n_panels`` axes of a readable size."""
    return plt.subplots(n_rows, n_panels, figsize=(width * n_panels, height * n_rows),
                        squeeze=False, **kwargs)
