"""The notebooks as a student uses them, in one real kernel (nbclient): Run All twice,
edit the parameters cell and rerun it and the cells below, misspell a parameter, run
the student copy to its first exercise.

One kernel serves every test of this module, as one JupyterLab kernel would serve a
student who opens one notebook after another: a notebook must not trip over the names
the notebooks before it left in the namespace. F1-F4 redraw their committed gallery
figure (``rerun = False``: seconds, nothing trained), and the first Run All of each
checks that the gallery stands on its data; the mechanisms notebook, which
has no such switch, runs at its quick defaults: in the full suite from the sweep cache
that nbval's run of it left (conftest.py runs that first, in the same worker and output
folder), alone trained once and from its sweep cache the second time.
"""

import copy
import gzip
import json
import re

import nbformat
import pandas as pd
import pytest
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

from fa import figures, notebook, paths, student

NOTEBOOKS = [f.notebook for f in figures.FIGURES]
WITH_EXERCISES = [p.stem for p in sorted(paths.NOTEBOOKS_DIR.glob("*.ipynb"))
                  if "solution" in p.read_text()]
#: Parameters-cell lines that make each notebook fast: appended, so they win.
FAST = {name: "rerun = False" if "rerun" in figures.figure(name).accepted else ""
        for name in NOTEBOOKS}


@pytest.fixture(scope="module")
def kernel(tmp_path_factory):
    """An nbclient client with a running kernel; swap ``client.nb`` to run another notebook."""
    client = NotebookClient(nbformat.v4.new_notebook(), timeout=600, kernel_name="python3",
                            resources={"metadata": {"path": str(paths.NOTEBOOKS_DIR)}})
    with client.setup_kernel():
        yield client


def load(name, extra="", nb=None):
    """Notebook ``name`` (or ``nb``) with ``extra`` appended to its parameters cell."""
    if nb is None:
        nb = nbformat.read(paths.NOTEBOOKS_DIR / f"{name}.ipynb", as_version=4)
    if extra:
        cell = next(c for c in nb.cells if "parameters" in c.metadata.get("tags", []))
        cell.source += "\n" + extra
    return nb


def run(client, nb, start=0):
    """Execute the code cells of ``nb`` from index ``start``; the number of images shown."""
    client.nb = nb
    images = 0
    for index, cell in enumerate(nb.cells):
        if index >= start and cell.cell_type == "code":
            cell.outputs = []
            client.execute_cell(cell, index)
            images += sum("image/png" in out.get("data", {}) for out in cell.outputs)
    return images


def parameters_index(nb):
    return next(i for i, c in enumerate(nb.cells) if "parameters" in c.metadata.get("tags", []))


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_run_all_twice_in_one_kernel_shows_the_figure_both_times(kernel, tmp_path, name):
    """For F1-F4 the first Run All is also the redraw of the committed gallery figure
    that :func:`redrew_the_committed_figure` checks. Then the student copy, run on from
    its first exercise (before it, the copy is the notebook), stops there."""
    figure = figures.figure(name)
    out = tmp_path / "out"
    folders = (f"\nresults_dir = {str(out / 'results')!r}\nfigures_dir = {str(out / 'figures')!r}"
               if FAST[name] else "")      # a redraw's; notebook 05 reads nbval's cache
    nb = load(name, FAST[name] + folders)
    first = run(kernel, nb)
    if folders:
        redrew_the_committed_figure(nb, figure, out)
    second = run(kernel, copy.deepcopy(nb))
    assert first >= 1 and second == first
    if name in WITH_EXERCISES:
        stops_at_its_first_exercise(kernel, name, from_the_top=False)


def redrew_the_committed_figure(nb, figure, out):
    """``nb``, run with ``rerun = False`` into ``out``, stands on the committed data: it
    showed the committed run's settings, warned of nothing, saved the committed data again
    and passed its claims cell (which raises if a claim fails) at the committed scale."""
    warned = [shown["text"] for cell in nb.cells for shown in cell.get("outputs", [])
              if shown.get("name") == "stderr"]
    assert not warned, "a redraw downloads nothing and warns of nothing"
    committed = json.loads((paths.GALLERY_FIGURES_DIR / f"{figure.key}.json").read_text())
    manifest = json.loads((out / "figures" / f"{figure.key}.json").read_text())
    assert manifest["scale"] == committed["scale"]
    seeds = committed["seeds"]
    n_seeds = len(seeds) if isinstance(seeds, list) else int(seeds.split()[0])
    assert f"n_seeds={n_seeds}," in shown_by(nb, "output_folders")
    data = paths.GALLERY_DATA_DIR / f"{figure.key}.csv.gz"
    if figure.key == "mnist":   # the configurations shown name the data the runs used
        assert all(name in shown_by(nb, "configs = ") for name in set(pd.read_csv(data)["data"]))
    again = out / "figures" / "data" / f"{figure.key}.csv.gz"
    assert gzip.open(again).read() == gzip.open(data).read()


def shown_by(nb, code: str) -> str:
    """The text the first code cell containing ``code`` displayed."""
    cell = next(c for c in nb.cells if c.cell_type == "code" and code in c.source)
    return "".join(out["data"]["text/plain"] for out in cell.outputs if "data" in out)


def test_edit_the_parameters_and_rerun_the_cells_below(kernel):
    nb = load("01_convergence", FAST["01_convergence"])
    run(kernel, nb)
    i = parameters_index(nb)
    # Train a small ReLU-only sweep instead: too short for the paper's claims, whose cell
    # then lists those that fail and lets the exercises below run.
    nb.cells[i].source += '\nrerun = True\nactivations = ["relu"]\nwidths = [100]\nsteps = 200\nn_seeds = 2'
    edited = copy.deepcopy(nb)
    assert run(kernel, edited, start=i) >= 1
    table = next(c for c in edited.cells if c.cell_type == "code" and "summary(curves)" in c.source)
    shown = table.outputs[0]["data"]["text/plain"]
    assert "relu" in shown and "tanh" not in shown, "the edit reached the cells below"
    claims = next(c for c in edited.cells if "claims.check" in c.source)
    said = "".join(out.get("text", "") for out in claims.outputs)
    assert "claims do not hold" in said and "this run changed activations, widths, steps" in said


def test_the_exercises_check_fa_s_runs_beside_a_second_rule(kernel):
    """Notebook 03 trained with ``rules = ["fa", "bp"]``: its exercises' self-checks are
    about FA's runs and pass with BP's in the table (the solutions stand in for a student's
    answers; the claims and the authors' comparison are left out of so small a run)."""
    nb = load("03_width_dependence")
    i = parameters_index(nb)
    nb.cells[i].source += ('\nactivations = ["relu"]\nwidths = [20, 40]\nlambdas = [0.0, 0.1]'
                           '\ndropout_rates = []\nn_seeds = 1\nsteps = 20\nrules = ["fa", "bp"]')
    first_exercise = next(j for j, c in enumerate(nb.cells) if "exercise" in c.metadata.get("tags", []))
    figure = next(j for j, c in enumerate(nb.cells) if "width_dependence.plot(runs)" in c.source)
    nb.cells = nb.cells[:figure + 1] + nb.cells[first_exercise:]
    run(kernel, nb)
    checks = [c for c in nb.cells if c.cell_type == "code" and "Self-check passed" in c.source]
    assert len(checks) == 2
    for cell in checks:
        assert "Self-check passed" in "".join(out.get("text", "") for out in cell.outputs)


def expect_unknown(client, nb, start, names):
    """Running ``nb`` from ``start`` stops at the check, naming ``names`` and the accepted."""
    with pytest.raises(CellExecutionError) as error:
        run(client, nb, start=start)
    assert f"Unknown parameters {names} for notebook" in str(error.value).replace("\n", " ") \
        or f"Unknown parameter {names} for notebook" in str(error.value)
    assert "accepted names: scale, " in str(error.value)


def test_a_misspelt_parameter_is_caught_when_typed_or_injected(kernel):
    nb = load("04_mnist", FAST["04_mnist"])
    run(kernel, nb)                                       # a namespace full of the notebook's names
    i = parameters_index(nb)
    typed = copy.deepcopy(nb)
    typed.cells[i].source += "\nhiden = 500"              # typed into the parameters cell
    expect_unknown(kernel, typed, i, "'hiden'")
    injected = copy.deepcopy(nb)                          # as papermill injects it, after the cell
    injected.cells.insert(i + 1, nbformat.v4.new_code_cell("# Parameters\nhiden = 500\nlamdas = [0]\n",
                                                           metadata={"tags": ["injected-parameters"]}))
    expect_unknown(kernel, injected, i, "'hiden', 'lamdas'")
    assert run(kernel, nb, start=i) >= 1, "the notebook runs again once the name is fixed"


def test_the_check_reads_the_cells_of_assignments_run_just_before_it():
    history = ["", "configs = make(s)\nconfigs", 'scale = "quick"  # a comment\nwidths = [2 * 100]',
               "# Parameters\nwidht = 800\n", "import fa\nfa.notebook.check_parameters(...)"]
    accepted = figures.figure("01_convergence").accepted
    assert notebook.parameter_names(history, accepted) == {"scale", "widths", "widht"}
    namespace = {"In": history, "configs": [], "sweep": None, "scale": "quick"}
    with pytest.raises(ValueError, match=r"Unknown parameter 'widht' for notebook 01_convergence"):
        notebook.check_parameters(namespace, "01_convergence")
    notebook.check_parameters({**namespace, "In": history[:3] + history[4:]}, "01_convergence")
    # An import in the parameters cell (to register an activation) hides no misspelt name;
    # a cell of the notebook's own names run just before is not a parameters cell.
    edited = ["", "free = curves[curves.lam == 0]",
              'import math\ndef softplus(h):\n    return h\nfa.ACTIVATIONS["softplus"] = softplus\n'
              'scale = "quick"\nn_seed, steps = 2, 100', history[-1]]
    assert notebook.parameter_names(edited, accepted) == {"scale", "n_seed", "steps"}
    with pytest.raises(ValueError, match=r"Unknown parameter 'n_seed' for notebook 01_conv"):
        notebook.check_parameters({**namespace, "In": edited}, "01_convergence")
    # Nor is a notebook run before in the same kernel, though its setup cell assigns
    # accepted names (results_dir, figures_dir) and its parameters cell others' names.
    before = ['scale = "quick"\nhidden = 500', 'import fa\nresults_dir, figures_dir = '
              'out()\nif rerun:\n    s = 1']
    assert notebook.parameter_names(["", *before, *edited[2:]], accepted) == \
        {"scale", "n_seed", "steps"}
    # A cell of the user's between the parameters and the check (an activation registered
    # in a cell of its own) hides no misspelt name; a previous check ends the search.
    register = 'fa.ACTIVATIONS["leaky"] = fa.model.Activation(psi=psi, dpsi=dpsi)'
    assert notebook.parameter_names([*history[:-1], register, history[-1]], accepted) == \
        {"scale", "widths", "widht"}
    assert notebook.parameter_names([*history, "fig = plot(curves)", history[-1]],
                                    accepted) == set()


def test_only_this_run_s_injected_parameters_choose_its_output_folders(capsys):
    """A papermill cell run earlier in the kernel (a misspelt name, fixed since) must not
    send the later runs of any notebook into its ``runs/`` folder."""
    setup = "import fa\nfa.notebook.output_folders(globals(), ...)"
    injected = "# Parameters\nwidths = [800]\n"
    namespace = {"results_dir": "results", "figures_dir": "figures", "widths": [800]}
    history = ["", 'scale = "quick"', injected, setup]
    assert notebook.output_folders({**namespace, "In": history}, "01_convergence") == \
        ("runs/01_convergence-widths=800/results", "runs/01_convergence-widths=800/figures")
    later = history + ["fig = plot(curves)", 'scale = "quick"', setup]
    assert notebook.output_folders({**namespace, "In": later}, "01_convergence") == \
        ("results", "figures")
    assert capsys.readouterr().out.count("this run writes to") == 1


def test_a_redraw_says_which_parameters_it_does_not_use(capsys):
    given = {"scale": "paper", "rerun": False, "n_seeds": 10, "hidden": None, "subset": True,
             "n_jobs": 2}
    notebook.check_parameters(given, "04_mnist")
    assert capsys.readouterr().out == ("rerun = False redraws the committed figure at the "
                                       "settings it ran with; not used here: subset, n_seeds.\n")
    notebook.check_parameters({**given, "rerun": True}, "04_mnist")
    notebook.check_parameters({**given, "n_seeds": None, "subset": None}, "04_mnist")
    assert capsys.readouterr().out == ""


@pytest.mark.parametrize("name", [n for n in WITH_EXERCISES if n not in NOTEBOOKS])
def test_each_student_copy_stops_at_its_first_exercise_with_its_message(kernel, name):
    """Notebook 00's; the others' are checked after their Run All twice above."""
    stops_at_its_first_exercise(kernel, name, from_the_top=True)


def stops_at_its_first_exercise(client, name, *, from_the_top):
    """The student copy of ``name``, run from the top or (in the namespace its notebook
    left) from its first exercise, stops in a cell before the second, with its message."""
    source = json.loads((paths.NOTEBOOKS_DIR / f"{name}.ipynb").read_text())
    nb = load(name, FAST.get(name, ""), nbformat.reads(json.dumps(student.student_copy(source)), as_version=4))
    exercises = [i for i, c in enumerate(nb.cells) if "exercise" in c.metadata.get("tags", [])]
    message = re.search(r'NotImplementedError\("(.*)"\)', nb.cells[exercises[0]].source).group(1)
    with pytest.raises(CellExecutionError) as error:
        run(client, nb, start=0 if from_the_top else exercises[0])
    assert "NotImplementedError" in str(error.value) and message in str(error.value)
    stopped = next(i for i, c in enumerate(nb.cells) if c.cell_type == "code"
                   and any(out.output_type == "error" for out in c.outputs))
    assert exercises[0] < stopped < (exercises[1:] or [len(nb.cells)])[0]


def test_import_fa_in_a_fresh_kernel_prints_nothing():
    """A notebook's first cell shows no warning from fa's imports (pooch imports tqdm.auto,
    which warns in a kernel without ipywidgets)."""
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("import fa")])
    NotebookClient(nb, timeout=120, kernel_name="python3").execute()
    assert nb.cells[0].outputs == []
