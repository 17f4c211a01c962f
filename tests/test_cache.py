"""The run cache: keyed by the numerics source, robust to damaged files."""

import math
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

import fa
from fa.experiments import RunConfig, cache_key, run_sweep
from test_experiments import CountingTrain, assert_same, fake_train, tiny


def good_file(tmp_path):
    """A cached sweep of 3 seeds; returns (its result, the path of seed 1's file)."""
    first = run_sweep(tiny(), range(3), cache_dir=tmp_path, progress=False, train_fn=fake_train)
    return first, tmp_path / f"{cache_key(tiny(), 1)}.npz"


def rewrite(path, **changes):
    """Rewrite the npz at `path` with entries replaced (None: removed)."""
    with np.load(path) as f:
        entries = {k: f[k] for k in f.files}
    entries.update(changes)
    np.savez(path, **{k: v for k, v in entries.items() if v is not None})


DAMAGES = {
    "empty": lambda p: p.write_bytes(b""),
    "truncated": lambda p: p.write_bytes(p.read_bytes()[: p.stat().st_size // 2]),
    "not a zip": lambda p: p.write_bytes(b"garbage, not a zip"),
    "missing key": lambda p: rewrite(p, loss=None),
    "renamed key": lambda p: rewrite(p, steps_taken=None, steps=np.int64(50)),
    "float for int": lambda p: rewrite(p, steps_taken=np.float64(50.0)),
    "text for float": lambda p: rewrite(p, final_loss=np.array("0.1")),
    "2-d curve": lambda p: rewrite(p, loss=np.zeros((2, 3))),
    "curves of two lengths": lambda p: rewrite(p, alignment=np.zeros(2)),
    "text curve": lambda p: rewrite(p, step=np.array(["a"] * 6)),
    "pickled object": lambda p: rewrite(p, diverged=np.array([None], dtype=object)),
}


@pytest.mark.parametrize("damage", DAMAGES)
def test_damaged_file_is_retrained(tmp_path, damage):
    first, path = good_file(tmp_path)
    DAMAGES[damage](path)
    train = CountingTrain()
    again = run_sweep(tiny(), range(3), cache_dir=tmp_path, progress=False, train_fn=train)
    assert train.calls == [[1]]
    assert_same(first, again)


def test_a_file_under_another_runs_key_is_retrained(tmp_path):
    """Files renamed by hand (re-keying an archive) or swapped: the name alone is not
    trusted, the file says which run it holds."""
    first, one = good_file(tmp_path)
    two = tmp_path / f"{cache_key(tiny(), 2)}.npz"
    a, b = one.read_bytes(), two.read_bytes()
    one.write_bytes(b)
    two.write_bytes(a)
    train = CountingTrain()
    again = run_sweep(tiny(), range(3), cache_dir=tmp_path, progress=False, train_fn=train)
    assert sorted(sum(train.calls, [])) == [1, 2]
    assert_same(first, again)


def test_a_cache_that_cannot_be_written_is_refused_before_training(tmp_path, monkeypatch):
    """Not after a chunk of training whose result could not be kept; a read-only cache
    that holds every run still serves them."""
    import errno
    import fa.sweep

    run_sweep(tiny(), range(2), cache_dir=tmp_path, progress=False, train_fn=fake_train)

    def read_only(*args, **kwargs):
        raise OSError(errno.EROFS, "Read-only file system")

    monkeypatch.setattr(fa.sweep.tempfile, "TemporaryFile", read_only)
    train = CountingTrain()
    run_sweep(tiny(), range(2), cache_dir=tmp_path, progress=False, train_fn=train)
    assert train.calls == []
    with pytest.raises(ValueError, match=r"'cache_dir' parameter of run_sweep must be a folder "
                       r"this process can write to.*Read-only file system.*cache_dir=None"):
        run_sweep(tiny(), range(3), cache_dir=tmp_path, progress=False, train_fn=train)
    assert train.calls == []


def test_a_label_is_not_part_of_what_a_file_must_match(tmp_path):
    """Labels never change numbers, so a file is still the run of a relabelled config."""
    run_sweep(tiny(), range(2), cache_dir=tmp_path, progress=False, train_fn=fake_train)
    relabelled = tiny(regularizer="something else")
    train = CountingTrain()
    run_sweep(relabelled, range(2), cache_dir=tmp_path, progress=False, train_fn=train)
    assert train.calls == []


def test_cache_key_follows_the_source_of_the_numerics_modules(monkeypatch):
    key = cache_key(tiny(), 0)
    monkeypatch.setattr(RunConfig, "numerics_modules", RunConfig.numerics_modules + ("fa.deep",))
    assert cache_key(tiny(), 0) != key
    # Absent modules (optional ones) are skipped rather than failing.
    monkeypatch.setattr(RunConfig, "numerics_modules", ("fa.trainer",))
    trainer_only = cache_key(tiny(), 0)
    monkeypatch.setattr(RunConfig, "numerics_modules", ("fa.trainer", "fa.no_such_module"))
    assert cache_key(tiny(), 0) == trainer_only


SCRIPT = textwrap.dedent("""
    import sys
    import numpy as np
    import fa
    from fa.experiments import RunConfig, run_sweep
    from fa.trainer import train
    assert fa.__file__.startswith(sys.argv[2]), fa.__file__

    def fake(X, y, *, seed, steps, **_):   # fast; the key does not depend on it
        return train(X, y, seed=seed, steps=2, width=4, lr=1e-3)

    configs = [RunConfig(width=4, n=5, d=8, steps=2, lam=lam) for lam in (0.0, 0.1)]
    run_sweep(configs, range(2), cache_dir=sys.argv[1], desc="stale", train_fn=fake)
""")


def sweep_in_copy(package: Path, cache: Path) -> str:
    """Run the sweep with the package copy at `package`; return its 'from the cache' line."""
    env = dict(os.environ, PYTHONPATH=str(package.parent), FA_OUTPUT_ROOT=str(cache.parent))
    out = subprocess.run([sys.executable, "-c", SCRIPT, str(cache), str(package)], env=env,
                         cwd=package.parent, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return next(line for line in out.stdout.splitlines() if "from the cache" in line)


def test_only_an_edit_of_the_numerics_code_recomputes(tmp_path):
    package = tmp_path / "copy" / "fa"
    shutil.copytree(Path(fa.__file__).parent, package,
                    ignore=shutil.ignore_patterns("__pycache__"))
    cache = tmp_path / "cache"
    assert sweep_in_copy(package, cache) == "stale: 4 runs, 0 from the cache"
    assert sweep_in_copy(package, cache) == "stale: 4 runs, 4 from the cache"
    # Plumbing (fa.train's checks and messages, plotting) does not change what was
    # computed ...
    for module in ("plotting.py", "trainer.py"):
        with open(package / module, "a") as f:
            f.write("\n_PLUMBING = 'an edit that changes no number'\n")
    assert sweep_in_copy(package, cache) == "stale: 4 runs, 4 from the cache"
    # ... nor does the loop's documentation: a comment and a docstring rewritten ...
    source = (package / "loop.py").read_text()
    assert source.count('"""The training loop') == 1
    (package / "loop.py").write_text(
        source.replace('"""The training loop', '"""The loop', 1) + "\n# a note\n")
    assert sweep_in_copy(package, cache) == "stale: 4 runs, 4 from the cache"
    # ... while any edit of the loop's code does.
    with open(package / "loop.py", "a") as f:
        f.write("\n_UNUSED = 1\n")
    assert sweep_in_copy(package, cache) == "stale: 4 runs, 0 from the cache"
    assert len(list(cache.glob("*.npz"))) == 8


def _softplus(scale=1.0):
    return fa.Activation(
        psi=lambda h: math.log1p(math.exp(-abs(h))) + max(h, 0.0),
        dpsi=lambda h: 1.0 / (1.0 + math.exp(-h)),
        psi_array=lambda xp, H: xp.log1p(xp.exp(-xp.abs(H))) + xp.maximum(H, 0.0) * scale,
        dpsi_array=lambda xp, H: 1.0 / (1.0 + xp.exp(-H)))


def test_a_registered_activation_is_keyed_by_its_code(monkeypatch):
    monkeypatch.setitem(fa.ACTIVATIONS, "softplus", _softplus())
    config = RunConfig(activation="softplus", width=8, n=5, d=6, steps=3)
    key = cache_key(config, 0)
    monkeypatch.setitem(fa.ACTIVATIONS, "softplus", _softplus())      # the same code again
    assert cache_key(config, 0) == key
    monkeypatch.setitem(fa.ACTIVATIONS, "softplus", _softplus(scale=2.0))   # other numbers
    assert cache_key(config, 0) != key
    # A packaged name given other code is keyed apart from the package's own.
    relu = RunConfig(activation="relu", width=8, n=5, d=6, steps=3)
    packaged = cache_key(relu, 0)
    monkeypatch.setitem(fa.ACTIVATIONS, "relu", _softplus())
    assert cache_key(relu, 0) != packaged


def test_a_registered_activation_is_keyed_by_the_global_values_it_reads(monkeypatch):
    """As a notebook writes it: ``alpha = 0.01`` in one cell, the activation in another."""
    cell = textwrap.dedent("""
        from fa.model import Activation
        leaky = Activation(psi=lambda h: h if h > 0.0 else alpha * h,
                           dpsi=lambda h: 1.0 if h > 0.0 else alpha,
                           psi_array=lambda xp, H: xp.where(H > 0.0, H, alpha * H),
                           dpsi_array=lambda xp, H: xp.where(H > 0.0, 1.0 + 0.0 * H,
                                                             alpha + 0.0 * H))
    """)
    notebook = {"alpha": 0.01}
    exec(cell, notebook)
    monkeypatch.setitem(fa.ACTIVATIONS, "leaky", notebook["leaky"])
    config = RunConfig(activation="leaky", width=8, n=5, d=6, steps=3)
    key = cache_key(config, 0)
    assert cache_key(config, 0) == key
    notebook["alpha"] = 0.5
    assert cache_key(config, 0) != key
    notebook["alpha"] = 0.01
    assert cache_key(config, 0) == key


def test_a_registered_activation_reaches_spawned_workers(monkeypatch, tmp_path):
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    monkeypatch.setitem(fa.ACTIVATIONS, "softplus", _softplus())
    monkeypatch.setattr(fa.sweep, "_local_pool", lambda n: ProcessPoolExecutor(
        n, mp_context=multiprocessing.get_context("spawn")))
    configs = [RunConfig(activation="softplus", width=16, n=6, d=8, lr=1e-2, steps=20, lam=lam)
               for lam in (0.0, 0.1)]
    serial = run_sweep(configs, range(2), cache_dir=None, progress=False)
    spawned = run_sweep(configs, range(2), cache_dir=None, progress=False, n_jobs=2)
    assert_same(serial, spawned)


def test_code_text_keeps_the_code_and_drops_the_documentation():
    source = textwrap.dedent('''\
        """Module doc."""
        import math  # why

        def f(x):
            """Doc, λ ≥ 0.

            More.
            """
            s = """two

            lines"""   # kept whole: a string is code
            return x  # comment
        ''')
    code = fa.cache.code_text(source)
    assert code == 'import math\ndef f(x):\n    s = """two\n\n    lines"""   # kept whole: a string is code\n    return x'
    assert fa.cache.code_text(source.replace("More.", "Less.").replace("# why", "")) == code
    for edit in (("return x", "return -x"), ("two\n\n", "two\n"), ("import math", "import cmath")):
        assert fa.cache.code_text(source.replace(*edit)) != code, edit


#: Pairs of sources that run differently: their code texts must differ.
DIFFERENT = {
    "blank line ending a continuation": ("d = g \\\n\n- w\n", "d = g \\\n- w\n"),
    "comment line ending a continuation": ("d = g \\\n# c\n- w\n", "d = g \\\n- w\n"),
    "docstring after a continuation": ('def f(): \\\n    """doc"""\nx = 1\n',
                                       "def f(): \\\nx = 1\n"),
    "docstring sharing a line": ('"""d"""; x = 1\n', '"""d"""; x = 2\n'),
    "non-ASCII docstring sharing a line": ('"""λλλλ"""; x\n', '"""λλλλ"""; y\n'),
    "trailing spaces in a string": ('s = """a   \nb"""\n', 's = """a\nb"""\n'),
    "# in a string": ('s = "a#b"\n', 's = "a#c"\n'),
    "self-documenting f-string over lines": ('s = f"""{x   \n=}"""\n', 's = f"""{x\n=}"""\n'),
}


@pytest.mark.parametrize("case", DIFFERENT)
def test_sources_that_run_differently_have_different_code_texts(case):
    a, b = DIFFERENT[case]
    try:
        compile(a, "a", "exec"), compile(b, "b", "exec")
    except SyntaxError:
        pytest.skip("not Python on this version (f-string fields over lines: 3.12+)")
    assert fa.cache.code_text(a) != fa.cache.code_text(b)


# Archives: the cache files of a sweep, carried to another machine (fa.cache.pack/unpack).

def test_packed_runs_resume_a_sweep_on_another_cache(tmp_path):
    first = run_sweep(tiny(), range(3), cache_dir=tmp_path / "here", progress=False,
                      train_fn=fake_train)
    archive = tmp_path / "runs.zip"
    assert fa.cache.pack(archive, [(tiny(), s) for s in range(4)],   # seed 3 never ran
                         cache_dir=tmp_path / "here") == (3, 3)
    assert fa.cache.unpack(archive, cache_dir=tmp_path / "there") == 3
    train = CountingTrain()
    again = run_sweep(tiny(), range(4), cache_dir=tmp_path / "there", progress=False,
                      train_fn=train)
    assert train.calls == [[3]]                     # only the run that was never packed
    assert_same(first, run_sweep(tiny(), range(3), cache_dir=tmp_path / "there",
                                 progress=False, train_fn=CountingTrain()))
    assert len(again.runs) == 4


def test_packing_only_adds_and_the_same_runs_make_the_same_archive(tmp_path):
    cache = tmp_path / "cache"
    run_sweep(tiny(), range(3), cache_dir=cache, progress=False, train_fn=fake_train)
    archive, copy = tmp_path / "a.zip", tmp_path / "b.zip"
    assert fa.cache.pack(archive, [(tiny(), 0)], cache_dir=cache) == (1, 1)
    assert fa.cache.pack(archive, [(tiny(), 1), (tiny(), 0)], cache_dir=cache) == (1, 2)
    (cache / f"{cache_key(tiny(), 0)}.npz").unlink()     # gone here, kept in the archive
    assert fa.cache.pack(archive, [(tiny(), 2)], cache_dir=cache) == (1, 3)
    assert fa.cache.unpack(archive, cache_dir=tmp_path / "other") == 3
    fa.cache.pack(copy, [(tiny(), s) for s in range(3)], cache_dir=tmp_path / "other")
    assert copy.read_bytes() == archive.read_bytes()


def test_unpack_takes_only_cache_files_and_keeps_what_is_there(tmp_path):
    import zipfile
    cache = tmp_path / "cache"
    run_sweep(tiny(), range(2), cache_dir=cache, progress=False, train_fn=fake_train)
    archive = tmp_path / "runs.zip"
    fa.cache.pack(archive, [(tiny(), s) for s in range(2)], cache_dir=cache)
    with zipfile.ZipFile(archive, "a") as z:
        z.writestr("../outside.npz", b"x")
        z.writestr(f"sub/{'0' * 64}.npz", b"x")
        z.writestr("notes.txt", b"x")
    other = tmp_path / "other" / "cache"
    other.mkdir(parents=True)
    mine = other / f"{cache_key(tiny(), 0)}.npz"
    mine.write_bytes(b"already here")
    assert fa.cache.unpack(archive, cache_dir=other) == 1
    assert mine.read_bytes() == b"already here"
    assert sorted(p.name for p in (tmp_path / "other").rglob("*") if p.is_file()) \
        == sorted([mine.name, f"{cache_key(tiny(), 1)}.npz"])


@pytest.mark.parametrize("damage", ["not a zip", "truncated"])
def test_a_damaged_archive_says_so(tmp_path, damage):
    cache = tmp_path / "cache"
    run_sweep(tiny(), range(2), cache_dir=cache, progress=False, train_fn=fake_train)
    archive = tmp_path / "runs.zip"
    fa.cache.pack(archive, [(tiny(), s) for s in range(2)], cache_dir=cache)
    DAMAGES[damage](archive)
    with pytest.raises(ValueError, match="runs.zip is not a readable zip file"):
        fa.cache.unpack(archive, cache_dir=tmp_path / "other")
    damaged = archive.read_bytes()
    with pytest.raises(ValueError, match="move it away to pack afresh"):
        fa.cache.pack(archive, [(tiny(), 0)], cache_dir=cache)
    assert archive.read_bytes() == damaged


def test_a_registered_rule_is_keyed_by_every_value_it_reads(monkeypatch):
    """Default arguments, partials and containers count; a set's key does not depend on
    the hash seed of the process (each new kernel would train everything again)."""
    import functools

    def key_with(rule):
        monkeypatch.setitem(fa.RULES, "mine", rule)
        return cache_key(RunConfig(rule="mine", width=8, n=5, d=6, steps=3), 0)

    def scaled(beta, b, a=0.5):
        return a * b

    def scaled_more(beta, b, a=0.7):
        return a * b

    assert key_with(scaled) != key_with(scaled_more)
    assert key_with(functools.partial(scaled, a=0.5)) != \
        key_with(functools.partial(scaled, a=0.7))
    namespace = {"P": {"a": 0.5}}
    exec("def from_dict(beta, b):\n    return P['a'] * b", namespace)
    first = key_with(namespace["from_dict"])
    namespace["P"] = {"a": 0.7}
    assert key_with(namespace["from_dict"]) != first
    script = textwrap.dedent("""
        import fa
        from fa.experiments import RunConfig, cache_key
        S = frozenset({"alpha", "beta", "gamma", "delta"})
        def rule(beta, b):
            return b * len(S)
        fa.RULES["mine"] = rule
        print(cache_key(RunConfig(rule="mine", width=8, n=5, d=6, steps=3), 0))
    """)
    keys = {subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                           env={**os.environ, "PYTHONHASHSEED": str(seed)}).stdout
            for seed in (1, 2, 3)}
    assert len(keys) == 1 and len(next(iter(keys)).strip()) == 64
