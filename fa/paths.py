"""Where things live, independent of the working directory."""

from pathlib import Path

PROJ_ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS_DIR = PROJ_ROOT / "notebooks"
FIGURES_DIR = PROJ_ROOT / "figures"
RESULTS_DIR = PROJ_ROOT / "results"
BUILD_DIR = PROJ_ROOT / "build"
CACHE_DIR = RESULTS_DIR / "cache"


def resolve(path, default: Path) -> Path:
    """Return ``path`` as an absolute path; relative paths are taken from the project root."""
    if path is None:
        return default
    path = Path(path)
    return path if path.is_absolute() else PROJ_ROOT / path
