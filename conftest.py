"""Test-wide setup.

- Ctrl-C works in the tests that send it, however the run was started.
- Executed notebooks write into a temporary folder: relative ``results_dir`` /
  ``figures_dir`` resolve against ``$FA_OUTPUT_ROOT`` (see ``fa.paths.output_root``), so
  the test run neither overwrites anything nor is served from a local sweep cache:
  every notebook really trains.
- Every notebook nbval executes must show a figure: one more test item per notebook,
  run after its last cell, checks that some cell produced an image output.
"""

import os
import signal
import tempfile

import pytest

_IMAGES: dict[str, int] = {}


def pytest_configure(config):
    os.environ.setdefault("FA_OUTPUT_ROOT", tempfile.mkdtemp(prefix="fa-test-"))
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


def pytest_collection_modifyitems(session, config, items):
    last = {}
    for i, item in enumerate(items):
        if hasattr(item, "cell") and hasattr(item, "test_outputs"):
            last[item.parent] = i
    for parent, i in sorted(last.items(), key=lambda kv: -kv[1]):
        items.insert(i + 1, ShowsFigure.from_parent(parent, name="shows its figure"))
