"""Outputs never surprise: saves are atomic and safe under concurrency, the reproduce
command writes only under its output folder, an interrupt keeps what finished and
never leaves a partial notebook under the final name, and an installed package (no
checkout) runs its shipped notebooks and writes into the current directory."""

import io
import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time

import psutil
import pytest

from fa import paths

REPO = paths.CHECKOUT
PYTHON = sys.executable


def _env(**extra):
    env = {k: v for k, v in os.environ.items() if k != "FA_OUTPUT_ROOT"}
    env.update(extra)
    return env


def test_two_processes_saving_figures_at_once_leave_every_manifest_whole(tmp_path):
    script = textwrap.dedent(f"""
        import sys, dataclasses
        import matplotlib.pyplot as plt
        from fa.plotting import save_figure

        @dataclasses.dataclass
        class S:
            n_seeds: int = 2

        name = sys.argv[1]
        for i in range(15):
            fig, ax = plt.subplots()
            ax.plot([0, i])
            save_figure(fig, name if i % 2 else "shared", figures_dir={str(tmp_path)!r},
                        notebook=name, scale="quick", settings=S())
            plt.close(fig)
    """)
    procs = [subprocess.Popen([PYTHON, "-c", script, name]) for name in ("a", "b")]
    assert [p.wait(timeout=120) for p in procs] == [0, 0]
    for name in ("a", "b", "shared"):
        manifest = json.loads((tmp_path / f"{name}.json").read_text())
        assert manifest["files"] == [f"{name}.png", f"{name}.pdf"]
        assert (tmp_path / f"{name}.png").stat().st_size > 0
    assert not list(tmp_path.glob(".*tmp")), "no temporary file is left behind"


def test_reproduce_dry_run_writes_nothing_and_names_build(tmp_path):
    out = subprocess.run([PYTHON, "-m", "fa.reproduce", "--dry-run"], cwd=tmp_path,
                         env=_env(), capture_output=True, text=True, check=True).stdout
    assert f"figures to {REPO / 'build' / 'figures'}" in out
    assert "Would run: 01_convergence, 02_alignment_dynamics" in out
    assert not list(tmp_path.iterdir())


def _children(pid):
    try:
        return psutil.Process(pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return []


@pytest.mark.parametrize("how", [signal.SIGINT, signal.SIGTERM])
def test_interrupted_reproduce_keeps_finished_runs_and_no_partial_notebook(tmp_path, how):
    out = tmp_path / "out"
    proc = subprocess.Popen([PYTHON, "-m", "fa.reproduce", "--only", "03", "--jobs", "2",
                             "--output", str(out)], env=_env(), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    cache = out / "results" / "cache"
    deadline = time.time() + 120
    while time.time() < deadline and not (cache.exists() and any(cache.glob("*.npz"))):
        time.sleep(0.2)
    assert any(cache.glob("*.npz")), "the sweep cached runs before the interrupt"
    family = _children(proc.pid)
    proc.send_signal(how)
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, stderr
    # The sweep's word on resuming, once, this command's on the notebook, no traceback.
    assert stderr.count("run the same command again to resume") == 1, stderr
    assert "03_width_dependence stopped; its executed notebook was not written" in stderr
    assert "Traceback" not in stderr, stderr
    assert not (out / "notebooks" / "03_width_dependence.ipynb").exists()
    time.sleep(2)
    alive = [p for p in family if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
    assert not alive, f"left behind: {[p.cmdline() for p in alive]}"


def test_installed_package_runs_its_shipped_notebooks_into_the_current_directory(tmp_path):
    site, source = tmp_path / "site", tmp_path / "source"
    # Build from a copy: pip builds in the source tree, and build/ here is the output folder.
    shutil.copytree(REPO, source, ignore=shutil.ignore_patterns(
        ".git", ".venv", "build", "*.egg-info", "__pycache__", ".pytest_cache"))
    subprocess.run([PYTHON, "-m", "pip", "install", "--quiet", "--no-deps",
                    "--no-build-isolation", "--target", str(site), str(source)], check=True,
                   capture_output=True)
    assert (site / "fa" / "notebooks" / "01_convergence.ipynb").exists()
    assert not (source / "build").exists(), "pip's build wrote into the output folder"
    assert (site / "fa" / "authors_data" / "f3_l2_final_alignment.csv").exists()
    work = tmp_path / "work"
    work.mkdir()
    env = _env(PYTHONPATH=str(site))
    # An installed fa knows no checkout: notebooks from the package, outputs under ./build.
    # One activation and one seed, by --set (which must reach the notebook): where things
    # are read and written is the point here, and the quick F1 sweep itself is nbval's
    # (a twelfth of it, its claims still hold).
    run = subprocess.run([PYTHON, "-m", "fa.reproduce", "--only", "01", "--jobs", "1",
                          "--set", "activations=['relu']", "--set", "n_seeds=1"],
                         cwd=work, env=env, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-2000:]
    assert f"Notebooks from {site / 'fa' / 'notebooks'}" in run.stdout
    assert (work / "build" / "notebooks" / "01_convergence.ipynb").exists()
    assert (work / "build" / "figures" / "convergence.png").exists()
    settings = json.loads((work / "build" / "figures" / "convergence.json").read_text())["settings"]
    assert settings["activations"] == ["relu"] and settings["n_seeds"] == 1
    # The kernels run in the package's notebooks folder: nothing lands there either.
    assert not any((site / sub / "build").exists() for sub in ("", "fa", "fa/notebooks"))
    gallery = subprocess.run([PYTHON, "-m", "fa.reproduce", "--scale", "paper", "--gallery",
                              "--dry-run"],
                             cwd=work, env=env, capture_output=True, text=True)
    assert gallery.returncode == 2 and "needs a checkout" in gallery.stderr
    # A shipped notebook opened where it lies (Jupyter's working directory is its folder)
    # would write into the package: refused, saying what to do instead.
    inside = subprocess.run([PYTHON, "-c", "import fa.paths; fa.paths.resolve(None, 'figures')"],
                            cwd=site / "fa" / "notebooks", env=env, capture_output=True,
                            text=True)
    assert inside.returncode == 1 and "Copy the notebooks" in inside.stderr
    assert "FA_OUTPUT_ROOT" in inside.stderr
    for command in (["fa.reproduce", "--dry-run"], ["fa.student"]):   # said, not a traceback
        run = subprocess.run([PYTHON, "-m", *command], cwd=site / "fa" / "notebooks", env=env,
                             capture_output=True, text=True)
        assert run.returncode == 2 and "Copy the notebooks" in run.stderr
        assert "Traceback" not in run.stderr


def test_the_terminal_sees_the_notebooks_progress_as_it_runs(tmp_path, monkeypatch, capfd):
    nbformat = pytest.importorskip("nbformat")
    pytest.importorskip("papermill")
    from fa import reproduce

    source = ("import sys\nprint('a table')\n"
              "sys.stdout.write('F9: 4 runs\\n\\rF9:  50%\\rF9: 100%|\u2588|\\n')\n"
              "sys.stderr.write('a warning\\n')")
    parameters = nbformat.v4.new_code_cell(
        "scale = 'quick'\nn_jobs = 1\nscheduler = results_dir = figures_dir = None")
    parameters.metadata["tags"] = ["parameters"]
    nb = nbformat.v4.new_notebook(cells=[parameters, nbformat.v4.new_code_cell(source)])
    nb.metadata["kernelspec"] = {"name": "python3", "language": "python",
                                 "display_name": "Python 3"}
    nbformat.write(nb, tmp_path / "09_tiny.ipynb")
    monkeypatch.setattr(paths, "NOTEBOOKS_DIR", tmp_path)
    monkeypatch.setenv("FA_OUTPUT_ROOT", str(tmp_path / "out"))   # plan() sets it: undone after
    args = reproduce._parser().parse_args(["--output", str(tmp_path / "out")])
    args.sets = {}
    where = reproduce.plan(args)
    # A terminal that cannot show the bar's blocks: they become '?', the run goes on.
    monkeypatch.setattr(sys, "stderr", io.TextIOWrapper(io.BytesIO(), encoding="ascii"))
    reproduce._execute("09_tiny", where, args)
    seen = capfd.readouterr()
    # The cells' output and stderr reach the terminal as written, bar updates too ...
    assert "F9: 4 runs\n\rF9:  50%\rF9: 100%|?|\n" in seen.err
    assert "a table" in seen.err and "a warning" in seen.err
    # ... and stay in the executed notebook, the sweep's lines as ordinary output.
    executed = nbformat.read(where["notebooks"] / "09_tiny.ipynb", as_version=4)
    streams = {out.name: out.text for out in executed.cells[-1].outputs
               if out.output_type == "stream"}
    assert "a table" in streams["stdout"] and "F9: 100%" in streams["stdout"]
    # No machine's folders: papermill's record names both notebooks by absolute paths.
    record = executed.metadata["papermill"]
    assert (record["input_path"], record["output_path"]) == ("09_tiny.ipynb",
                                                             "notebooks/09_tiny.ipynb")
    assert str(tmp_path) not in nbformat.writes(executed)


def test_executed_notebooks_keep_a_progress_bar_as_its_last_state():
    import nbformat

    from fa.reproduce import render_streams

    cell = nbformat.v4.new_code_cell("sweep")
    cell.outputs = [nbformat.v4.new_output("stream", name="stderr", text=text) for text in
                    ("F1: 4 runs, 0 from the cache\n", "\rF1:  25%|##  |", "\rF1: 100%|####|\n")]
    cell.outputs.append(nbformat.v4.new_output("execute_result", data={"text/plain": "1"}))
    nb = nbformat.v4.new_notebook(cells=[cell])
    render_streams(nb)
    assert [o.output_type for o in cell.outputs] == ["stream", "execute_result"]
    assert cell.outputs[0].text == "F1: 4 runs, 0 from the cache\nF1: 100%|####|\n"


def test_a_papermill_run_with_parameters_of_its_own_writes_beside_the_quick_start(tmp_path,
                                                                                   monkeypatch):
    papermill = pytest.importorskip("papermill")
    monkeypatch.setenv("FA_OUTPUT_ROOT", str(tmp_path))
    out = tmp_path / "executed.ipynb"
    papermill.execute_notebook(str(paths.NOTEBOOKS_DIR / "04_mnist.ipynb"), str(out),
                               parameters={"rerun": False}, cwd=str(paths.NOTEBOOKS_DIR),
                               progress_bar=False)
    own = tmp_path / "runs" / "04_mnist-rerun=False"
    assert (own / "figures" / "mnist.png").exists()
    assert not (tmp_path / "figures").exists() and not (tmp_path / "results").exists()
    assert "this run writes to runs/04_mnist-rerun=False/" in out.read_text()
