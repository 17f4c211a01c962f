"""Every example in a docstring of ``fa`` runs and shows what it says.

The examples are written for a session that has done ``from fa import *`` (as numpy's
assume ``import numpy as np``), so they run here with ``fa``'s public names in scope.
Each takes a second or less.
"""

import doctest
import importlib
from pathlib import Path

import pytest

import fa

PACKAGE = Path(fa.__file__).parent
#: Modules with at least one example, as "fa.trainer", "fa.figures.mnist", ...
WITH_EXAMPLES = sorted(".".join(("fa", *p.relative_to(PACKAGE).with_suffix("").parts))
                       for p in PACKAGE.rglob("*.py") if ">>>" in p.read_text())


def test_the_examples_are_found():
    assert {"fa.trainer", "fa.data", "fa.experiments"} <= set(WITH_EXAMPLES)


@pytest.mark.parametrize("name", WITH_EXAMPLES)
def test_docstring_examples_run(name):
    module = importlib.import_module(name)
    names = {public: getattr(fa, public) for public in fa.__all__}
    result = doctest.testmod(module, extraglobs=names, report=True,
                             optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0
    assert result.failed == 0, f"{result.failed} example(s) of {name} failed (printed above)"
