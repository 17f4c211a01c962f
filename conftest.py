"""Test-wide setup.

- Ctrl-C works in the tests that send it, however the run was started.
- Executed notebooks write into a temporary folder: relative ``results_dir`` /
  ``figures_dir`` resolve against ``$FA_OUTPUT_ROOT`` (see ``fa.paths.output_root``), so
  the test run neither overwrites anything nor is served from a local sweep cache:
  every notebook really trains. Under pytest-xdist each worker has a folder of its own
  in it, so two workers never share a sweep cache or write the same figure.
- Every notebook nbval executes must show a figure: one more test item per notebook,
  run after its last cell, checks that some cell produced an image output.
- Under pytest-xdist (``-n``, see pyproject.toml) the items are dealt out by scope, a
  test module or a notebook, so a notebook's cells run in order in one kernel; the
  interactive tests go with nbval's run of the mechanisms notebook, which runs first,
  so that they redraw it from the sweep cache that run left instead of training it again.
"""

import os
import signal
import tempfile

import pytest

_IMAGES: dict[str, int] = {}


def pytest_configure(config):
    root = os.environ.setdefault("FA_OUTPUT_ROOT", tempfile.mkdtemp(prefix="fa-test-"))
    worker = getattr(config, "workerinput", {}).get("workerid")     # pytest-xdist: "gw0", ...
    if worker:     # the controller's folder (or the user's), one subfolder per worker
        os.environ["FA_OUTPUT_ROOT"] = tempfile.mkdtemp(prefix=f"{worker}-", dir=root)
    # The interrupt tests send Ctrl-C (SIGINT). A test run started in the background
    # (nohup, `cmd &`) inherits SIGINT ignored, and so would every process it starts;
    # give Ctrl-C its usual meaning here and in the children.
    if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    os.environ.setdefault("FA_OFFLINE", "1")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_call(item):
    yield
    outputs = getattr(item, "test_outputs", None)
    if outputs is not None and hasattr(item, "cell"):   # an nbval cell
        key = str(item.parent.path)
        images = sum("image/png" in out.get("data", {}) for out in outputs)
        _IMAGES[key] = _IMAGES.get(key, 0) + images


class ShowsFigure(pytest.Item):
    """Fails unless the notebook's executed cells displayed at least one image."""

    def runtest(self):
        shown = _IMAGES.get(str(self.parent.path), 0)
        assert shown >= 1, f"{self.parent.path.name} displayed no figure (no image output)"

    def reportinfo(self):
        return self.parent.path, None, f"{self.parent.path.name}: shows its figure"


#: The interactive tests run this notebook at its quick defaults (it has no ``rerun``
#: switch): in one worker with nbval's run of it, and after it, they find its runs cached.
INTERACTIVE = "tests/test_interactive.py"
SHARES_ITS_CACHE = "notebooks/05_mechanisms.ipynb"


def pytest_collection_modifyitems(session, config, items):
    last = {}
    for i, item in enumerate(items):
        if hasattr(item, "cell") and hasattr(item, "test_outputs"):
            last[item.parent] = i
    for parent, i in sorted(last.items(), key=lambda kv: -kv[1]):
        items.insert(i + 1, ShowsFigure.from_parent(parent, name="shows its figure"))
    # The same order in every xdist worker: a pure function of the collected items.
    shared = [item for item in items if item.nodeid.startswith(SHARES_ITS_CACHE + "::")]
    interactive = [i for i, item in enumerate(items) if item.nodeid.startswith(INTERACTIVE + "::")]
    if shared and interactive:
        rest = [item for item in items if item not in shared]
        first = rest.index(items[interactive[0]])
        items[:] = rest[:first] + shared + rest[first:]


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config, log):
    """``--dist loadscope``, with the interactive tests in the scope of the notebook
    whose cache they share (see :func:`pytest_collection_modifyitems`)."""
    if config.getvalue("dist") != "loadscope":
        return None
    from xdist.scheduler import LoadScopeScheduling

    class Scheduling(LoadScopeScheduling):
        def _split_scope(self, nodeid):
            if nodeid.startswith(INTERACTIVE + "::"):
                return SHARES_ITS_CACHE
            return super()._split_scope(nodeid)

    return Scheduling(config, log)
