"""Test-wide setup: executed notebooks write into a temporary folder.

The notebooks resolve their relative ``results_dir`` / ``figures_dir``
against ``$FA_OUTPUT_ROOT`` (see ``fa.paths.output_root``). Pointing it at a
fresh temporary folder means the test run neither overwrites the committed
figures nor is served from a local sweep cache: every notebook really trains.
"""

import os
import tempfile


def pytest_configure(config):
    os.environ.setdefault("FA_OUTPUT_ROOT", tempfile.mkdtemp(prefix="fa-test-"))
