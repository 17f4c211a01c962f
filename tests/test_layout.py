"""The project's layout promises: the registry, the notebooks' parameters, the README's
table, the protocol."""

import json
import re

import numpy as np
import pytest

import fa
from fa import figures, paths, presets
from fa.figures import width_dependence


def parameters(name):
    nb = json.loads((paths.NOTEBOOKS_DIR / f"{name}.ipynb").read_text())
    cells = [c for c in nb["cells"] if "parameters" in c["metadata"].get("tags", [])]
    assert len(cells) == 1, f"{name}: exactly one cell tagged 'parameters'"
    source = "".join(cells[0]["source"])
    return set(re.findall(r"^(\w+)\s*=", source, flags=re.M)), nb


@pytest.mark.parametrize("figure", figures.FIGURES, ids=lambda f: f.notebook)
def test_every_registered_notebook_defines_exactly_its_accepted_parameters(figure):
    names, nb = parameters(figure.notebook)
    assert names == set(figure.accepted)
    code = ["".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "code"]
    assert any(f'check_parameters(globals(), "{figure.notebook}")' in c for c in code), \
        "the notebook checks its parameters right after the parameters cell"
    assert any(f'results_dir, figures_dir = fa.notebook.output_folders(globals(), '
               f'"{figure.notebook}")' in c for c in code), "and then chooses its folders"
    assert all(not c.get("outputs") for c in nb["cells"] if c["cell_type"] == "code"), \
        "source notebooks are committed without outputs"
    assert hasattr(figure.load(), "claims") and hasattr(figure.load(), "plot")


def test_every_notebook_is_registered_or_a_course_notebook():
    on_disk = {p.stem for p in paths.NOTEBOOKS_DIR.glob("[0-9][0-9]_*.ipynb")}
    assert set(figures.BY_NOTEBOOK) <= on_disk
    for name in on_disk - set(figures.BY_NOTEBOOK):   # exercises, no figure, no parameters
        tags = [c["metadata"].get("tags", []) for c in json.loads(
            (paths.NOTEBOOKS_DIR / f"{name}.ipynb").read_text())["cells"]]
        assert any("solution" in t for t in tags) and not any("parameters" in t for t in tags), name
        assert f"notebooks/{name}.ipynb" in (paths.CHECKOUT / "README.md").read_text()


def test_readme_table_lists_every_registered_figure():
    readme = (paths.CHECKOUT / "README.md").read_text()
    for f in figures.FIGURES:
        assert f"notebooks/{f.notebook}.ipynb" in readme
        assert f"figures/{f.key}" in readme


def test_check_parameters_names_the_unknown_and_lists_the_accepted():
    ok = {"scale": "quick", "widths": [200], "np": np, "In": [], "_": None}
    fa.notebook.check_parameters(ok, "03_width_dependence")
    with pytest.raises(ValueError, match=r"Unknown parameter 'widht'.*accepted names: scale, "):
        fa.notebook.check_parameters({**ok, "widht": 800}, "03_width_dependence")
    with pytest.raises(ValueError, match="'notebook' parameter of figure"):
        fa.notebook.check_parameters(ok, "99_nothing")


def test_paper_scale_is_papers_protocol():
    for act, lr, lams in (("linear", 1e-3, (0, .2, .3, .5)), ("relu", 1e-2, (0, .02, .05, .2)),
                          ("tanh", 1e-1, (0, .001, .002, .005)),
                          ("sigmoid", 1e-1, (0, .001, .003, .01))):
        assert presets.PROTOCOL[act].lr == lr and presets.PROTOCOL[act].lambdas == lams
    f1 = fa.settings("convergence", "paper")
    assert (f1.widths, f1.steps, f1.n_seeds, f1.n, f1.d) == ((3200,), 5000, 50, 50, 150)
    f3 = fa.settings("width_dependence", "paper")
    assert f3.widths == (200, 400, 800, 1600, 3200, 6400, 12800)
    assert f3.n_seeds == 50 and f3.until_converged
    assert presets.DROPOUT_WIDTHS["paper"] == (200, 800, 3200, 12800)


def test_width_sweep_steps_follow_the_authors_formula():
    s = fa.settings("width_dependence", "paper", widths=[200, 12800], n_seeds=2)
    configs = width_dependence.configs(s)
    for c in configs:
        T = int(np.rint(5000 * np.sqrt(c.width) // np.rint(np.sqrt(200))))
        assert c.steps == T and c.until_converged and c.check_every == 1000
        assert (c.converge_on, c.tol) == (("loss", 1e-3) if c.regularizer == "l2" else ("alignment", 1e-4))
    assert {c.steps for c in configs} == {5050, 40406}


def test_settings_reject_unknown_names_and_wrong_types():
    with pytest.raises(ValueError, match="Unknown parameter 'width' for 01_convergence"):
        fa.settings("convergence", "quick", width=[100])
    # A list passed as text (papermill's -p) says how to pass a list.
    with pytest.raises(ValueError, match="'lambdas' parameter of 01_convergence must be a list"
                                         ".* goes through -y"):
        fa.settings("convergence", "quick", lambdas="[0, 0.1]")
    with pytest.raises(ValueError, match="'n_seeds'"):
        fa.settings("convergence", "quick", n_seeds=2.5)
    with pytest.raises(ValueError, match="'activations'"):
        fa.settings("convergence", "quick", activations=["gelu"])
    with pytest.raises(ValueError, match="'scale'"):
        fa.settings("convergence", "huge")
    with pytest.raises(ValueError, match="'lambdas'"):
        fa.settings("convergence", "quick", lambdas=[])
    assert fa.settings("convergence", "quick", widths=None) == fa.settings("convergence")
    assert fa.settings("alignment_dynamics", "quick", dropout_rates=[]).dropout_rates == ()
