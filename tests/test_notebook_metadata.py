"""Committed notebooks open in JupyterLab without being rewritten.

On opening a notebook, JupyterLab sets its ``kernelspec`` and ``language_info`` metadata
from the kernel it starts, and saves the notebook if either differs from what the file
holds (it compares the values, not their order). So the committed notebooks carry what
the installed ipykernel gives: its kernel spec and its kernel-info reply.
``language_info.version`` is the Python the kernel runs; the notebooks carry the
project environment's, the same in every committed notebook.
"""

import json

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
