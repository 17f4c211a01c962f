"""Committed notebooks open without being rewritten, and open elsewhere (Binder, or where
``fa`` is not installed) with a way to install it.

On opening a notebook, JupyterLab sets its ``kernelspec`` and ``language_info`` metadata
from the kernel it starts, and saves the notebook if either differs from what the file
holds (it compares the values, not their order). So the committed notebooks carry what
the installed ipykernel gives: its kernel spec and its kernel-info reply.
``language_info.version`` is the Python the kernel runs; the notebooks carry the
project environment's, the same in every committed notebook.
"""

import json
import re

import pytest
from ipykernel.ipkernel import IPythonKernel
from ipykernel.kernelspec import KERNEL_NAME, get_kernel_dict

from fa import paths

COMMITTED = sorted(paths.NOTEBOOKS_DIR.glob("*.ipynb")) + sorted(
    (paths.CHECKOUT / "gallery").glob("*.ipynb"))


def metadata(path):
    return json.loads(path.read_text())["metadata"]


def test_there_are_committed_notebooks():
    assert len(COMMITTED) >= 10


@pytest.mark.parametrize("path", COMMITTED, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_metadata_is_what_jupyterlab_would_write(path):
    spec = get_kernel_dict()
    assert metadata(path)["kernelspec"] == {"name": KERNEL_NAME, "display_name": spec["display_name"],
                                            "language": spec["language"]}
    info = dict(metadata(path)["language_info"])
    expected = dict(IPythonKernel.language_info)
    assert info.pop("version") == metadata(COMMITTED[0])["language_info"]["version"]
    expected.pop("version")
    assert info == expected


@pytest.mark.parametrize("path", sorted(paths.NOTEBOOKS_DIR.glob("*.ipynb")), ids=lambda p: p.stem)
def test_the_first_cell_says_how_to_install_fa(path):
    """Opened where ``fa`` is not installed, a notebook says how to get it before any code."""
    first = json.loads(path.read_text())["cells"][0]
    assert first["cell_type"] == "markdown" and 'pip install -e ".[notebooks]"' in "".join(first["source"])


def test_environment_yml_installs_the_package_and_its_dependencies():
    """repo2docker (Binder) and conda read environment.yml: it must install ``fa`` itself
    (``-e .``, which repo2docker runs with the repository in place) and what it needs to
    run the notebooks and the README's test command (pytest-xdist, for its -n 2)."""
    yaml = pytest.importorskip("yaml")
    tomllib = pytest.importorskip("tomllib")
    env = yaml.safe_load((paths.CHECKOUT / "environment.yml").read_text())
    conda = {re.split(r"[<>=\[ ]", d)[0] for d in env["dependencies"] if isinstance(d, str)}
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    assert "-e ." in pip
    project = tomllib.loads((paths.CHECKOUT / "pyproject.toml").read_text())["project"]
    extras = project["optional-dependencies"]
    needed = project["dependencies"] + extras["notebooks"] + extras["test"]
    missing = {re.split(r"[<>=\[ ]", d)[0] for d in needed} - conda
    assert not missing, f"environment.yml lacks {sorted(missing)}"
