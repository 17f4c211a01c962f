"""`python -m fa.reproduce --set NAME=VALUE`: a notebook parameter for every notebook run,
checked against the registry, counted by the estimate and injected into the notebook
(a run with sets: test_outputs.py, the installed package)."""

import os
import subprocess
import sys

import pytest

from fa import estimate, paths, reproduce
from fa.figures import convergence, width_dependence


def test_values_are_python_literals_or_text():
    sets = reproduce.parse_sets(["n_seeds=10", "widths=[200, 400]", "dropout_rates=[]",
                                 "until_converged=False", "lambdas = None"],
                                ["03_width_dependence"])
    assert sets == {"n_seeds": 10, "widths": [200, 400], "dropout_rates": [],
                    "until_converged": False, "lambdas": None}
    assert reproduce.parse_sets(["activation=relu"], ["05_mechanisms"]) == {"activation": "relu"}


@pytest.mark.parametrize("item, names, message", [
    ("n_seeds", ["01_convergence"], "must be NAME=VALUE"),
    ("=3", ["01_convergence"], "must be NAME=VALUE"),
    ("n_jobs=3", ["01_convergence"], "use --jobs"),
    ("scale=paper", ["01_convergence"], "use --scale"),
    ("widht=800", ["03_width_dependence"], "'widht', which is not a parameter of 03"),
    ("dropout_rates=[]", ["01_convergence", "02_alignment_dynamics"],
     "not a parameter of 01_convergence"),
    ("widths=[200, 800", ["05_mechanisms"], "must be a Python literal such as"),
])
def test_a_wrong_set_says_what_was_wrong(item, names, message):
    with pytest.raises(ValueError, match=message):
        reproduce.parse_sets([item], names)


def test_the_plan_follows_the_parameters():
    configs, seeds = width_dependence.sweep_plan("paper")
    assert len(seeds) == 50 and {c.width for c in configs} == {200, 400, 800, 1600, 3200, 6400,
                                                               12800}
    configs, seeds = width_dependence.sweep_plan(
        "paper", n_seeds=10, widths=[200, 400], dropout_rates=[], n_jobs=2, rerun=True)
    assert seeds == list(range(10))
    assert {c.width for c in configs} == {200, 400}
    assert {c.regularizer for c in configs} == {"l2"}
    configs, _ = width_dependence.sweep_plan("paper", dropout_widths=[200])
    assert {c.width for c in configs if c.regularizer == "dropout"} == {200}
    configs, _ = width_dependence.sweep_plan("paper", dropout_widths=[])
    assert {c.regularizer for c in configs} == {"l2"}     # no dropout widths: no dropout row


def test_the_estimate_counts_the_parameters(tmp_path, monkeypatch):
    # What is counted, not how fast this machine is: given rates, nothing is measured
    # (measuring is test_estimate's; here it took a minute of paper-scale probes).
    def refuse(*args, **kwargs):
        raise AssertionError("given rates are not measured again")

    monkeypatch.setattr(estimate, "seconds_per_cost", refuse)
    experiments, _ = convergence.sweep_plan("paper")
    rates = {estimate.rate_key(e): 1e-10 for e in experiments}
    small = estimate.report(["01_convergence"], results_dir=tmp_path, rates=rates,
                            overrides={"n_seeds": 2})
    full = estimate.report(["01_convergence"], results_dir=tmp_path, rates=rates)
    assert "(40 runs," in small and "(1000 runs," in full
    none = estimate.report(["01_convergence"], results_dir=tmp_path, overrides={"rerun": False})
    assert "nothing trained" in none


def test_the_estimate_alone_trains_nothing(tmp_path):
    out = tmp_path / "out"
    run = subprocess.run([sys.executable, "-m", "fa.reproduce", "--scale", "paper", "--only",
                          "01", "--estimate", "--output", str(out), "--set", "rerun=False"],
                         capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    assert "Estimated paper-scale time" in run.stdout and "== 01" not in run.stdout
    assert not out.exists()
    quick = subprocess.run([sys.executable, "-m", "fa.reproduce", "--only", "01", "--estimate"],
                           capture_output=True, text=True)
    assert quick.returncode == 2 and "add --scale paper" in quick.stderr
    alone = subprocess.run([sys.executable, "-m", "fa.reproduce", "--device", "cuda"],
                           capture_output=True, text=True)
    assert alone.returncode == 2 and "add --backend" in alone.stderr


def test_the_gallery_is_replaced_at_the_paper_s_scale_only(capsys):
    """A quick run written over the committed figures would pass for the paper's."""
    with pytest.raises(SystemExit):
        reproduce.main(["--only", "05", "--gallery", "--dry-run"])
    assert "--gallery replaces the committed paper-scale figures: add --scale paper" in \
        capsys.readouterr().err


@pytest.mark.parametrize("option", ["--gallery", "--archive"])
def test_an_installed_package_is_told_it_needs_a_checkout_first(option, monkeypatch, capsys):
    """Not "add --scale paper" first, to be refused after adding it."""
    monkeypatch.setattr(paths, "CHECKOUT", None)
    with pytest.raises(SystemExit):
        reproduce.main(["--only", "03", option, "--dry-run"])
    assert f"{option} writes the repository's committed gallery, so it needs a checkout" in \
        capsys.readouterr().err


def test_without_papermill_the_command_says_what_to_install(monkeypatch, capsys):
    real = reproduce.importlib.util.find_spec
    monkeypatch.setattr(reproduce.importlib.util, "find_spec",
                        lambda name, *a: None if name == "papermill" else real(name, *a))
    with pytest.raises(SystemExit):
        reproduce.main(["--only", "01"])
    assert "pip install papermill ipykernel" in capsys.readouterr().err
    assert reproduce.main(["--only", "01", "--dry-run"]) == 0     # said, then what would run
    out = capsys.readouterr().out
    assert "pip install papermill ipykernel" in out and "Would run: 01_convergence" in out


def test_a_wrong_set_stops_the_command_before_it_runs():
    """A --set that does reach its notebook: test_outputs.py's run of an installed package."""
    bad = subprocess.run([sys.executable, "-m", "fa.reproduce", "--only", "01", "--dry-run",
                          "--set", "dropout_rates=[]"], capture_output=True, text=True)
    assert bad.returncode == 2 and "not a parameter of 01_convergence" in bad.stderr
    wrong = subprocess.run([sys.executable, "-m", "fa.reproduce", "--only", "01", "--dry-run",
                            "--set", "n_seeds=ten"], capture_output=True, text=True)
    assert wrong.returncode == 2 and \
        "'n_seeds' parameter of 01_convergence must be an int" in wrong.stderr


@pytest.mark.parametrize("notebook, backend, expect_backend", [
    ("01_convergence", "torch", True),      # takes a backend
    ("04_mnist", "torch", False),           # the deep trainer has none: said, not passed
    ("01_convergence", None, False),        # not given: the notebook's own default
])
def test_the_options_become_parameters(tmp_path, monkeypatch, capsys, notebook, backend,
                                       expect_backend):
    seen = _parameters(monkeypatch, notebook, ["--scale", "paper", "--jobs", "3", "--output",
                                               str(tmp_path)]
                       + (["--backend", backend] if backend else []), n_seeds=2)
    assert seen == {"scale": "paper", "n_jobs": 3, "scheduler": None, "n_seeds": 2,
                    "results_dir": "results", "figures_dir": "figures",
                    **({"backend": backend} if expect_backend else {})}
    assert ("does not apply" in capsys.readouterr().out) == (backend is not None
                                                            and not expect_backend)


def test_an_executed_gallery_notebook_shows_no_machines_folders(tmp_path, monkeypatch):
    monkeypatch.delenv("FA_OUTPUT_ROOT", raising=False)     # the checkout's build/
    seen = _parameters(monkeypatch, "01_convergence", ["--gallery"])
    assert (seen["results_dir"], seen["figures_dir"]) == ("results", "../figures")
    # ...which the notebook takes from the output folder: the committed figures.
    assert paths.resolve(seen["figures_dir"], "figures").resolve() == paths.GALLERY_FIGURES_DIR
    elsewhere = _parameters(monkeypatch, "01_convergence",
                            ["--gallery", "--output", str(tmp_path / "a" / "b")])
    assert elsewhere["results_dir"] == "results"
    assert elsewhere["figures_dir"] == str(paths.GALLERY_FIGURES_DIR)   # far away: absolute


def _parameters(monkeypatch, notebook, argv, **sets) -> dict:
    """The parameters ``python -m fa.reproduce ARGV`` hands ``notebook`` (nothing runs)."""
    papermill = pytest.importorskip("papermill")
    seen = {}

    def execute_notebook(source, target, parameters, **kw):
        seen.update(parameters)
        raise papermill.PapermillExecutionError(0, 1, "", "Stop", "stopped here", [])

    monkeypatch.setattr(papermill, "execute_notebook", execute_notebook)
    # plan() points $FA_OUTPUT_ROOT at --output for the notebooks: undone after the test
    # (an empty value means unset).
    monkeypatch.setenv("FA_OUTPUT_ROOT", os.environ.get("FA_OUTPUT_ROOT", ""))
    args = reproduce._parser().parse_args(argv)
    args.sets = sets
    where = reproduce.plan(args)
    with pytest.raises(SystemExit, match="stopped here"):
        reproduce._execute(notebook, where, args)
    return seen
