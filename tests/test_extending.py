"""Every recipe of docs/extending.md, done as the document says: a learning rule added to
``fa.RULES`` runs through F1-F3, an activation registered in a notebook trains in worker
processes and keys the cache by its code, and a figure added to the registry is seen by
everything that reads it."""

import json
import math
import sys
import textwrap

import matplotlib
import nbformat
import numpy as np
import pandas as pd
import pytest
from array_api_compat import array_namespace
from nbclient import NotebookClient

import fa
from fa import estimate, figures, notebook, paths, reproduce
from fa.figures import alignment_dynamics, convergence, width_dependence

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


# --- Add a learning rule ------------------------------------------------------------------

def sign_symmetry(beta, b):
    """v = sign(beta): the forward weights' signs, magnitude 1."""
    return array_namespace(beta).sign(beta)


TINY = dict(activations=["tanh"], n_seeds=1, steps=200, n=10, d=20, record_every=20)
#: Per figure: its settings at a tiny size, and how plot and claims are called.
FIGURES = {
    "convergence": (convergence, dict(widths=[40], lambdas=[0.0, 0.01]),
                    lambda m, frame, s: m.plot(frame), lambda m, frame, s: m.claims(frame)),
    "alignment_dynamics": (alignment_dynamics,
                           dict(widths=[40], lambdas=[0.0, 0.01], dropout_rates=[0.0, 0.5]),
                           lambda m, frame, s: m.plot(frame, s),
                           lambda m, frame, s: m.claims(frame, s)),
    "width_dependence": (width_dependence,
                         dict(widths=[20, 40], lambdas=[0.0, 0.01], dropout_rates=[0.0, 0.5]),
                         lambda m, frame, s: m.plot(frame),
                         lambda m, frame, s: m.claims(frame, strict=False)),
}


def texts(fig) -> list[str]:
    """Every panel title and legend entry of ``fig``."""
    out = [ax.get_title() for ax in fig.axes]
    for ax in fig.axes:
        if ax.get_legend() is not None:
            out += [t.get_text() for t in ax.get_legend().get_texts()]
    return out


@pytest.mark.parametrize("name", FIGURES)
# F3 fits a power law to the sign rule's cos(beta, b) too, which can be negative.
@pytest.mark.filterwarnings("ignore:invalid value encountered in log")
def test_a_rule_added_to_RULES_runs_through_the_figure(name, monkeypatch, tmp_path):
    monkeypatch.setitem(fa.RULES, "sign", sign_symmetry)       # the one place, as documented
    module, sizes, plot, claims = FIGURES[name]
    s = fa.settings(name, "quick", **TINY, **sizes)
    rules = list(module.RULES) + ["sign"]
    configs = module.configs(s, rules=rules)
    assert {c.rule for c in configs} == set(rules)
    # The notebook's parameter reaches the plan the estimate and fa.reproduce --set use.
    planned, _ = module.sweep_plan("quick", rules=rules, **TINY, **sizes)
    assert planned == configs
    sweep = fa.run_sweep(configs, range(s.n_seeds), cache_dir=None, n_jobs=1, progress=False)
    frame = module.tidy(sweep, tmp_path)
    assert set(frame["rule"]) == set(rules)

    fig = plot(module, frame, s)
    shown = texts(fig)
    plt.close(fig)
    if module is convergence:     # a line of its own beside BP's, in every panel's legend
        assert shown.count("SIGN, λ = 0") == len(s.activations)
        assert shown.count("BP, λ = 0") == len(s.activations)
    else:                         # a column of panels of its own
        assert any(t.startswith("tanh · SIGN") for t in shown), shown
        assert any(t.startswith("tanh · FA") for t in shown), shown

    # The claims about FA and BP are the same with the extra rule in the data.
    with_sign = claims(module, frame, s)
    without = claims(module, frame[frame["rule"] != "sign"], s)
    assert [c for c in with_sign if not c.claim.startswith("SIGN")] == without
    assert any(c.holds is not None for c in without)
    if module is convergence:
        assert [c.claim for c in with_sign if c.claim.startswith("SIGN")] == [
            "SIGN, λ=0 converges too (≥ 3 orders)"]


# --- Add an activation --------------------------------------------------------------------

SOFTPLUS = '''
ACTIVATIONS["softplus"] = Activation(
    psi=lambda h: {k}math.log1p(math.exp(-abs(h))) + {k}max(h, 0.0),   # stable for large |h|
    dpsi=lambda h: {k}1.0 / (1.0 + math.exp(-h)),
    psi_array=lambda xp, H: {k}xp.logaddexp(H, 0.0 * H),
    dpsi_array=lambda xp, H: {k}1.0 / (1.0 + xp.exp(-H)))
'''

NOTEBOOK = [
    # Workers started by spawn (macOS, Windows) never see what this kernel registered.
    '''import math, multiprocessing, json
import numpy as np
import pandas as pd
import fa
from fa.model import ACTIVATIONS, Activation
multiprocessing.set_start_method("spawn", force=True)
CACHE = {cache!r}''',
    SOFTPLUS.format(k=""),
    '''configs = [fa.RunConfig(activation="softplus", data="teacher", width=p, n=10, d=20,
                         lr=0.1, steps=100, record_every=50) for p in (20, 30)]
two = fa.run_sweep(configs, range(2), cache_dir=CACHE, n_jobs=2, progress=False, backend="numpy")
one = fa.run_sweep(configs, range(2), cache_dir=None, n_jobs=1, progress=False, backend="numpy")
pd.testing.assert_frame_equal(two.curves, one.curves)
keys = [fa.cache_key(c, 0, backend="numpy") for c in configs]''',
    SOFTPLUS.format(k="0.5 * "),       # the activation's code edited: half a softplus
    '''edited = fa.run_sweep(configs, range(2), cache_dir=CACHE, n_jobs=2, progress=False,
                      backend="numpy")
print(json.dumps(dict(
    same=[bool(np.allclose(a, b)) for a, b in zip(edited.runs["final_loss"], one.runs["final_loss"])],
    new_keys=[fa.cache_key(c, 0, backend="numpy") != k for c, k in zip(configs, keys)])))''',
]


def test_an_activation_registered_in_a_notebook_trains_in_workers_and_keys_the_cache(
        tmp_path, monkeypatch):
    monkeypatch.setenv("PYTHONPATH", str(paths.PACKAGE_DIR.parent))   # this checkout's fa
    nb = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_code_cell(source.format(cache=str(tmp_path / "cache")))
        for source in NOTEBOOK])
    NotebookClient(nb, timeout=120, kernel_name="python3",
                   resources={"metadata": {"path": str(tmp_path)}}).execute()
    result = json.loads(nb.cells[-1].outputs[-1]["text"])
    # The edited code is trained again: no run of the old code is reused.
    assert result == dict(same=[False] * 4, new_keys=[True, True])


def test_an_activation_without_its_protocol_row_is_refused_by_the_figures(monkeypatch):
    """The recipe's step 2 forgotten: said where the settings are read, not a KeyError
    deep in a figure module."""
    namespace = {"ACTIVATIONS": {}, "Activation": fa.model.Activation, "math": math}
    exec(SOFTPLUS.format(k=""), namespace)          # into a table of its own, then patched in
    monkeypatch.setitem(fa.ACTIVATIONS, "softplus", namespace["ACTIVATIONS"]["softplus"])
    for make in (lambda: fa.settings("width_dependence", activations=["relu", "softplus"]),
                 lambda: figures.BY_KEY["mechanisms"].load().settings(activation="softplus")):
        with pytest.raises(ValueError, match=r"'softplus' is in fa.ACTIVATIONS but has no row "
                                             r"in fa.presets.PROTOCOL"):
            make()


# --- Add a figure -------------------------------------------------------------------------

TOY = '''
"""A toy figure: FA's final loss at one width."""
from dataclasses import dataclass

import numpy as np

import fa
from fa.claims import Claim
from fa.figures import _common
from fa.presets import resolve

NAME = "toy"


@dataclass(frozen=True)
class ToySettings:
    n_seeds: int    # seeds per run
    steps: int      # gradient steps


PAPER = ToySettings(n_seeds=2, steps=50)
QUICK = dict(steps=20)   # shorter: a test


def settings(scale="quick", **overrides):
    return resolve(PAPER, QUICK, scale, overrides, caller="99_toy")


def configs(s):
    return [fa.RunConfig(activation="relu", data="teacher", width=20, n=10, d=20, lr=1e-2,
                         steps=s.steps, record_every=s.steps)]


def sweep_plan(scale="paper", **parameters):
    s = settings(scale, **_common.settings_overrides(ToySettings, parameters))
    return configs(s), list(range(s.n_seeds))


def tidy(sweep, results_dir=None):
    runs = sweep.runs[["seed", "final_loss"]]
    _common.write_csv(runs, NAME, results_dir)
    return runs


def plot(runs):
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots()
    ax.plot(runs["seed"], runs["final_loss"], "o")
    return fig


def summary(runs):
    return runs.describe()


def claims(runs):
    return [Claim("toy", "the loss is finite", f"{runs['final_loss'].max():.2e}",
                  bool(np.isfinite(runs["final_loss"]).all()))]
'''


@pytest.fixture
def toy(tmp_path, monkeypatch):
    """The toy figure registered with one Figure entry, as an edit of fa/figures/__init__.py
    would: every module that imported the registry sees it; its notebook in the folder of
    notebooks."""
    (tmp_path / "toy_figure.py").write_text(TOY)
    monkeypatch.syspath_prepend(str(tmp_path))
    entry = figures.Figure("toy", "99_toy", "nowhere", "a toy figure", "toy_figure",
                           ("steps",))
    old = figures.FIGURES
    for module in list(sys.modules.values()):
        if getattr(module, "FIGURES", None) is old:
            monkeypatch.setattr(module, "FIGURES", old + (entry,))
    monkeypatch.setitem(figures.BY_NOTEBOOK, entry.notebook, entry)
    (tmp_path / "notebooks").mkdir()
    nbformat.write(nbformat.v4.new_notebook(), tmp_path / "notebooks" / "99_toy.ipynb")
    monkeypatch.setattr(paths, "NOTEBOOKS_DIR", tmp_path / "notebooks")
    monkeypatch.setenv("FA_OUTPUT_ROOT", str(tmp_path / "out"))
    return entry


def test_a_figure_added_to_the_registry_is_seen_by_what_reads_it(toy, tmp_path, capsys):
    module = toy.load()
    experiments, seeds = module.sweep_plan("quick")
    runs = module.tidy(fa.run_sweep(experiments, seeds, cache_dir=None, progress=False),
                       tmp_path)
    plt.close(module.plot(runs))
    fa.claims.check(module.claims(runs))
    # The notebooks' parameter check.
    notebook.check_parameters({"scale": "quick", "steps": 30}, "99_toy")
    with pytest.raises(ValueError, match="'widths' for notebook 99_toy; accepted names: "
                                         "scale, .*, steps"):
        notebook.check_parameters({"widths": [20]}, "99_toy")
    # The estimate, and fa.reproduce: its listing, --set and --estimate.
    assert "99_toy" in estimate.report(["99_toy"], n_jobs=1, rates={})
    assert reproduce.available() == {"99_toy": "a toy figure"}
    assert reproduce.main(["--only", "99", "--scale", "paper", "--estimate", "--jobs", "1",
                           "--set", "steps=40"]) == 0
    out = capsys.readouterr().out
    assert "99_toy" in out and "(2 runs, 0 cached" in out, out
    with pytest.raises(SystemExit):
        reproduce.main(["--only", "99", "--dry-run", "--set", "widths=[20]"])
    assert "not a parameter of 99_toy" in capsys.readouterr().err
