"""One figure style for the whole project, and saving figures with their provenance."""

from __future__ import annotations

import dataclasses
import json
import subprocess
from datetime import datetime, timezone
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # figures are files; no screen is needed or assumed
import matplotlib.pyplot as plt  # noqa: E402
import seaborn as sns  # noqa: E402

from . import __version__, paths  # noqa: E402

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


def save_figure(fig, name: str, *, figures_dir=None, notebook: str, scale: str,
                settings) -> list[Path]:
    """Write ``fig`` as ``<name>.png`` and ``<name>.pdf`` and record it in MANIFEST.json.

    The manifest entry says which notebook made the figure, at which scale and
    settings (a :class:`fa.presets.FigureSettings` or any dataclass with
    ``n_seeds``), with which seeds, from which commit of this repository.
    """
    out = paths.resolve(figures_dir, paths.FIGURES_DIR)
    out.mkdir(parents=True, exist_ok=True)
    files = [out / f"{name}.png", out / f"{name}.pdf"]
    fig.savefig(files[0], bbox_inches="tight", metadata={"Software": None})
    fig.savefig(files[1], bbox_inches="tight", metadata={"CreationDate": None})
    manifest_path = out / "MANIFEST.json"
    manifest = json.loads(manifest_path.read_text()) if manifest_path.exists() else {}
    seeds = list(range(settings.n_seeds))
    manifest[name] = {
        "files": [f.name for f in files],
        "notebook": notebook,
        "scale": scale,
        "settings": dataclasses.asdict(settings),
        "seeds": f"{len(seeds)} seeds: {seeds[0]}..{seeds[-1]}" if len(seeds) > 3 else seeds,
        "commit": _commit(),
        "fa_version": __version__,
        "created": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
    }
    manifest_path.write_text(json.dumps(manifest, indent=2, sort_keys=True, default=str) + "\n")
    return files


def _commit() -> str:
    """The current commit, marked ``+dirty`` if the work tree has changes."""
    try:
        sha = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=paths.PROJ_ROOT,
                             capture_output=True, text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "fa", "notebooks"],
                               cwd=paths.PROJ_ROOT, capture_output=True, text=True,
                               check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown (not a git checkout)"
    return sha + ("+dirty" if dirty else "")


def subplots(n_panels: int, n_rows: int = 1, *, width=3.6, height=3.0, **kwargs):
    """A grid of ``n_rows`` x ``n_panels`` axes of a readable size."""
    fig, axes = plt.subplots(n_rows, n_panels, figsize=(width * n_panels, height * n_rows),
                             squeeze=False, **kwargs)
    return fig, axes
