"""Where things live, independent of the working directory.

Inputs
    The figure notebooks: ``notebooks/`` of a checkout, or the copies shipped inside an
    installed package (its ``fa.notebooks`` folder).
Outputs
    Everything a run writes goes under the *output root* (:func:`output_root`); relative
    output paths are taken from there. An installed package never writes into its folder.
The gallery (a checkout only)
    The committed figures (``figures/``), their data (``figures/data/``, the runs of the
    longest sweeps in ``figures/data/runs/``) and executed notebooks (``gallery/``),
    written only by ``python -m fa.reproduce --gallery`` (and ``--archive``).
"""

import os
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent


def _checkout() -> Path | None:
    root = PACKAGE_DIR.parent
    return root if (root / "pyproject.toml").is_file() and (root / "notebooks").is_dir() else None


#: The repository this package runs from, or None when it is installed without one.
CHECKOUT = _checkout()
NOTEBOOKS_DIR = CHECKOUT / "notebooks" if CHECKOUT else PACKAGE_DIR / "notebooks"
GALLERY_FIGURES_DIR = CHECKOUT / "figures" if CHECKOUT else None
GALLERY_DATA_DIR = CHECKOUT / "figures" / "data" if CHECKOUT else None
#: The committed runs of the figures whose sweeps take longest (``fa.cache.pack``).
GALLERY_RUNS_DIR = CHECKOUT / "figures" / "data" / "runs" if CHECKOUT else None
GALLERY_NOTEBOOKS_DIR = CHECKOUT / "gallery" if CHECKOUT else None

#: Default output folders, relative to :func:`output_root`.
FIGURES_DIR = "figures"
RESULTS_DIR = "results"
CACHE_DIR = "results/cache"
NOTEBOOKS_OUT_DIR = "notebooks"


class InsidePackage(RuntimeError):
    """Outputs would be written into an installed package (see :func:`output_root`)."""


def output_root() -> Path:
    """The folder relative output paths are taken from.

    ``$FA_OUTPUT_ROOT`` if set (the test suite points it at a temporary folder),
    else ``build/`` of the checkout, else ``build/`` in the current directory.

    Raises
    ------
    InsidePackage
        If the current directory is inside an installed package (a notebook it ships,
        opened where it lies): its outputs would be written into the package.
    """
    root = os.environ.get("FA_OUTPUT_ROOT")
    if root:
        return Path(root).resolve()
    if CHECKOUT:
        return CHECKOUT / "build"
    here = Path.cwd().resolve()
    if here == PACKAGE_DIR or PACKAGE_DIR in here.parents:
        raise InsidePackage(
            f"This runs inside the installed package ({here}), which is no place for its "
            f"outputs. Copy the notebooks ({NOTEBOOKS_DIR}) to a folder of your own and open "
            "them there, or set the environment variable FA_OUTPUT_ROOT to a folder.")
    return here / "build"


def resolve(path, default: str) -> Path:
    """``path`` as an absolute path; ``None`` means ``default``; relative paths are
    taken from :func:`output_root`."""
    path = Path(default if path is None else path).expanduser()
    return path if path.is_absolute() else output_root() / path
