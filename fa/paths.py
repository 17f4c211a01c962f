"""Where things live, independent of the working directory."""

import os
from pathlib import Path

PROJ_ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS_DIR = PROJ_ROOT / "notebooks"
FIGURES_DIR = PROJ_ROOT / "figures"
RESULTS_DIR = PROJ_ROOT / "results"
BUILD_DIR = PROJ_ROOT / "build"
CACHE_DIR = RESULTS_DIR / "cache"


def output_root() -> Path:
    """Where relative output paths point: the project root, or ``$FA_OUTPUT_ROOT``.

    The test suite sets ``FA_OUTPUT_ROOT`` to a temporary folder so that
    executing the notebooks neither overwrites the committed figures nor reuses
    a local sweep cache.
    """
    root = os.environ.get("FA_OUTPUT_ROOT")
    return Path(root).resolve() if root else PROJ_ROOT


def resolve(path, default: Path) -> Path:
    """Return ``path`` as an absolute path; relative paths are taken from :func:`output_root`."""
    if path is None:
        path = default.relative_to(PROJ_ROOT)
    path = Path(path)
    return path if path.is_absolute() else output_root() / path
