"""Test-wide setup.

- Ctrl-C works in the tests that send it, however the run was started.
- Executed notebooks write into a temporary folder: relative ``results_dir`` /
  ``figures_dir`` resolve against ``$FA_OUTPUT_ROOT`` (see ``fa.paths.output_root``), so
  the test run neither overwrites anything nor is served from a local sweep cache:
  every notebook really trains, except for the runs that the quick start too takes
  from an earlier notebook's cache (below). Under pytest-xdist each worker has a folder
  of its own in it, so two workers never share a sweep cache or write the same figure.
- Every notebook nbval executes must show a figure: one more test item per notebook,
  run after its last cell, checks that some cell produced an image output.
- Under pytest-xdist (``-n``, see pyproject.toml) the items are dealt out by scope, a
  test module or a notebook, so a notebook's cells run in order in one kernel. Two
  scopes go with the scope whose sweep cache they share, in its worker and after it
  (:data:`SHARES_A_CACHE`): notebook 02 finds F1's constant-L2 runs in notebook 01's
  cache, as in the quick start, and the interactive tests redraw the mechanisms notebook
  from its nbval run's cache instead of training it again.
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


#: A scope -> the scope that runs before it in the same worker and leaves the runs it
#: needs in the sweep cache. The interactive tests run notebook 05 at its quick defaults
#: (it has no ``rerun`` switch); notebook 02 trains F1's L2 networks again.
SHARES_A_CACHE = {"notebooks/02_alignment_dynamics.ipynb": "notebooks/01_convergence.ipynb",
                  "tests/test_interactive.py": "notebooks/05_mechanisms.ipynb"}


def pytest_collection_modifyitems(session, config, items):
    last = {}
    for i, item in enumerate(items):
        if hasattr(item, "cell") and hasattr(item, "test_outputs"):
            last[item.parent] = i
    for parent, i in sorted(last.items(), key=lambda kv: -kv[1]):
        items.insert(i + 1, ShowsFigure.from_parent(parent, name="shows its figure"))
    # Each cache's owner just before the first item that uses it, in the same order in
    # every xdist worker: a pure function of the collected items.
    for user, owner in SHARES_A_CACHE.items():
        owned = [item for item in items if _scope(item.nodeid) == owner]
        users = [item for item in items if _scope(item.nodeid) == user]
        if owned and users:
            rest = [item for item in items if item not in owned]
            first = rest.index(users[0])
            items[:] = rest[:first] + owned + rest[first:]


def _scope(nodeid: str) -> str:
    return nodeid.split("::", 1)[0]


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config, log):
    """``--dist loadscope``, with each scope of :data:`SHARES_A_CACHE` in the scope
    whose cache it shares (see :func:`pytest_collection_modifyitems`)."""
    if config.getvalue("dist") != "loadscope":
        return None
    from xdist.scheduler import LoadScopeScheduling

    class Scheduling(LoadScopeScheduling):
        def _split_scope(self, nodeid):
            return SHARES_A_CACHE.get(_scope(nodeid)) or super()._split_scope(nodeid)

    return Scheduling(config, log)
