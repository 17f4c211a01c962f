"""The sweep engine: cache, resume, parallel runs, validation, tidy tables."""

import dataclasses
import os
import subprocess
import sys
import textwrap
import warnings
from typing import ClassVar

import numpy as np
import pandas as pd
import pytest

from fa import DivergenceWarning, experiments, presets
from fa.experiments import RunConfig, cache_key, run_sweep

TINY = dict(activation="relu", width=32, n=10, d=20, lr=1e-2, steps=50, record_every=10)


def tiny(**changes):
    return RunConfig(**{**TINY, **changes})


# A stand-in for fa.train with its result layout: fast, deterministic in (X, y, seed).
def fake_train(X, y, *, seed, steps, record_every, lr, **_):
    seeds = list(seed)
    t = np.arange(steps + 1)
    record_steps = np.unique(np.r_[np.arange(0, steps + 1, record_every), steps])
    loss = np.stack([np.mean(y[r] ** 2) * np.exp(-lr * (1 + s % 3) * t)
                     for r, s in enumerate(seeds)])                       # (R, T+1)
    alignment = np.stack([np.tanh(record_steps / (10.0 + s) + X[r, 0, 0])
                          for r, s in enumerate(seeds)])                 # (R, K)
    return dataclasses.make_dataclass("FakeResult", ["loss", "record_steps", "alignment",
                                                     "steps", "diverged"])(
        loss, record_steps, alignment, np.full(len(seeds), steps), np.zeros(len(seeds), bool))


class CountingTrain:
    """fake_train that counts its calls and, optionally, fails on call number `fail_at`."""

    def __init__(self, fail_at=None):
        self.calls, self.fail_at = [], fail_at

    def __call__(self, X, y, **kwargs):
        if len(self.calls) + 1 == self.fail_at:
            raise KeyboardInterrupt("killed mid-sweep")
        self.calls.append(list(kwargs["seed"]))
        return fake_train(X, y, **kwargs)


def sweep(tmp_path, configs, seeds, **kwargs):
    kwargs = {"train_fn": fake_train, "progress": False, **kwargs}
    return run_sweep(configs, seeds, cache_dir=tmp_path / "cache", **kwargs)


def assert_same(a, b):
    pd.testing.assert_frame_equal(a.runs, b.runs, check_exact=True)
    pd.testing.assert_frame_equal(a.curves, b.curves, check_exact=True)


CONFIGS = [tiny(lam=0.0), tiny(lam=0.05), tiny(activation="tanh", lr=1e-1)]


# --- tables ----------------------------------------------------------------------------

def test_tables_are_tidy_and_ordered(tmp_path):
    res = sweep(tmp_path, CONFIGS, [3, 1, 2])
    assert len(res.runs) == 9
    assert res.runs["run"].tolist() == [0, 0, 0, 1, 1, 1, 2, 2, 2]
    assert res.runs["seed"].tolist() == [3, 1, 2] * 3
    assert res.runs["lam"].tolist() == [0.0] * 3 + [0.05] * 3 + [0.0] * 3
    assert res.runs["regularizer"].tolist() == ["none"] * 3 + ["l2"] * 3 + ["none"] * 3
    assert {"steps_taken", "final_loss", "final_alignment", "diverged"} <= set(res.runs)
    # 50 steps recorded every 10: steps 0, 10, ..., 50.
    assert len(res.curves) == 9 * 6
    first = res.curves[(res.curves["run"] == 1) & (res.curves["seed"] == 1)]
    assert first["step"].tolist() == [0, 10, 20, 30, 40, 50]
    assert first["lam"].eq(0.05).all() and first["activation"].eq("relu").all()
    last = first.iloc[-1]
    row = res.runs[(res.runs["run"] == 1) & (res.runs["seed"] == 1)].iloc[0]
    assert (last["loss"], last["alignment"]) == (row["final_loss"], row["final_alignment"])


# --- cache -----------------------------------------------------------------------------

def test_second_sweep_is_served_from_cache(tmp_path):
    train = CountingTrain()
    first = sweep(tmp_path, CONFIGS, range(5), train_fn=train)
    assert sum(len(c) for c in train.calls) == 15
    again = CountingTrain()
    second = sweep(tmp_path, CONFIGS, range(5), train_fn=again)
    assert again.calls == []
    assert_same(first, second)
    # One more seed trains only that seed.
    sweep(tmp_path, CONFIGS, range(6), train_fn=again)
    assert again.calls == [[5], [5], [5]]


def test_resume_after_kill_loses_nothing(tmp_path):
    seeds = range(10)  # chunks of 4 seeds: 3 chunks per config, 9 in all
    killed = CountingTrain(fail_at=5)
    with pytest.raises(KeyboardInterrupt):
        sweep(tmp_path, CONFIGS, seeds, train_fn=killed, chunk_size=4)
    assert len(killed.calls) == 4
    assert len(list((tmp_path / "cache").glob("*.npz"))) == 4 + 4 + 2 + 4  # 4 chunks saved

    resumed = CountingTrain()
    res = sweep(tmp_path, CONFIGS, seeds, train_fn=resumed, chunk_size=4)
    assert resumed.calls == [[4, 5, 6, 7], [8, 9], [0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]
    assert_same(res, run_sweep(CONFIGS, seeds, cache_dir=None, progress=False,
                               train_fn=fake_train, chunk_size=4))


def test_cache_key_changes_with_every_numeric_field_and_seed(monkeypatch):
    base = tiny()
    variants = [dict(activation="tanh"), dict(width=33), dict(rule="bp"), dict(data="linear"),
                dict(n=11), dict(d=21), dict(lr=2e-2), dict(steps=51), dict(lam=0.1),
                dict(lam_schedule="release", lam_until=7),
                dict(lam_schedule="release", lam_until=8),
                dict(lam_schedule="decay", lam_gamma=0.9),
                dict(lam_schedule="decay", lam_gamma=0.8),
                dict(dropout=0.5), dict(until_converged=True), dict(check_every=7),
                dict(tol=1e-4), dict(converge_on="alignment"),
                dict(until_converged=True, max_steps=100),
                dict(record_every=5), dict(dtype="float32")]
    labels = {"regularizer", "strength"}
    covered = set().union(*variants)
    assert covered == {f.name for f in dataclasses.fields(RunConfig)} - labels
    keys = {cache_key(base, 0), cache_key(base, 1)}
    keys |= {cache_key(dataclasses.replace(base, **v), 0) for v in variants}
    assert len(keys) == len(variants) + 2
    # Labels do not change the numbers, so they do not change the key...
    assert cache_key(dataclasses.replace(base, regularizer="foo", strength=9.0), 0) == \
        cache_key(base, 0)
    # ... but other numerics source does, and so does a backend.
    monkeypatch.setattr(RunConfig, "numerics_modules", ("fa.trainer",))
    assert cache_key(base, 0) not in keys
    monkeypatch.undo()
    assert cache_key(base, 0, backend="numpy") not in keys


def test_cache_key_is_stable_across_int_and_float_spellings():
    assert cache_key(tiny(lr=1, lam=0), 0) == cache_key(tiny(lr=1.0, lam=0.0), 0)


def test_interrupted_write_leaves_no_partial_file(tmp_path, monkeypatch):
    real_savez = np.savez

    def savez_then_die(f, **arrays):
        f.write(b"PK\x03\x04 half a zip file")
        raise KeyboardInterrupt

    monkeypatch.setattr(experiments.np, "savez", savez_then_die)
    with pytest.raises(KeyboardInterrupt):
        sweep(tmp_path, CONFIGS[0], range(2))
    assert os.listdir(tmp_path / "cache") == []

    monkeypatch.setattr(experiments.np, "savez", real_savez)
    sweep(tmp_path, CONFIGS[0], range(2))
    assert sorted(os.listdir(tmp_path / "cache")) == sorted(
        f"{cache_key(CONFIGS[0], s)}.npz" for s in range(2))


def test_damaged_cache_file_is_recomputed(tmp_path):
    first = sweep(tmp_path, CONFIGS[0], range(3))
    (tmp_path / "cache" / f"{cache_key(CONFIGS[0], 1)}.npz").write_bytes(b"garbage")
    train = CountingTrain()
    assert_same(first, sweep(tmp_path, CONFIGS[0], range(3), train_fn=train))
    assert train.calls == [[1]]


# --- divergence ------------------------------------------------------------------------

def diverging_train(X, y, *, seed, steps, **kwargs):
    result = fake_train(X, y, seed=seed, steps=steps, **kwargs)
    for r, s in enumerate(seed):
        if s == 1:  # stopped at step 30, where its loss became NaN
            result.loss[r, 30:] = np.nan
            result.alignment[r, result.record_steps >= 30] = np.nan
            result.steps[r], result.diverged[r] = 30, True
    return result


def test_diverged_runs_are_kept_and_warned_about_once(tmp_path):
    with pytest.warns(DivergenceWarning, match="2 of 6 runs diverged") as caught:
        res = sweep(tmp_path, CONFIGS[:2], range(3), train_fn=diverging_train)
    assert len([w for w in caught if issubclass(w.category, RuntimeWarning)]) == 1
    assert res.runs["diverged"].tolist() == [False, True, False] * 2
    bad = res.curves[res.curves["seed"] == 1]
    assert bad["step"].tolist() == [0, 10, 20] * 2  # up to divergence, no NaN rows
    assert res.runs["steps_taken"].tolist() == [50, 30, 50] * 2
    assert np.isfinite(res.curves[["loss", "alignment"]].to_numpy()).all()
    # Served from the cache, the same table and the same warning.
    with pytest.warns(DivergenceWarning, match="2 of 6 runs diverged"):
        assert_same(res, sweep(tmp_path, CONFIGS[:2], range(3), train_fn=CountingTrain()))


def test_no_warning_without_divergence(tmp_path):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        sweep(tmp_path, CONFIGS[0], range(2))


# --- chunks and parallel workers -------------------------------------------------------

class LoggingTrain:
    """fake_train that leaves one file per call, named by its chunk (works across processes)."""

    def __init__(self, folder):
        self.folder = folder

    def __call__(self, X, y, **kwargs):
        chunk = "-".join(map(str, [kwargs["width"], *kwargs["seed"]]))
        (self.folder / chunk).touch()
        return fake_train(X, y, **kwargs)


def test_chunk_size_comes_from_memory_not_from_n_jobs(tmp_path):
    assert tiny().chunk_size() == experiments.MAX_CHUNK
    # Only a few replicas of 40000 hidden units fit in 512 MiB.
    assert 1 < RunConfig(width=40000).chunk_size() < experiments.MAX_CHUNK
    assert RunConfig(width=10**7).chunk_size() == 1
    # ...and from the work of a seed: the paper's longest runs go one seed per call, so
    # a stopped sweep loses at most one of them per worker.
    t = {p: presets.width_steps(p, 5000) for p in (3200, 12800)}
    assert RunConfig(width=3200, steps=t[3200]).chunk_size() == experiments.MAX_CHUNK
    assert RunConfig(width=12800, steps=t[12800]).chunk_size() == 1
    # The chunks handed to the trainer are the same whatever n_jobs is.
    chunks = []
    for n_jobs in (1, 2):
        folder = tmp_path / f"jobs{n_jobs}"
        folder.mkdir()
        run_sweep(CONFIGS[:2], range(11), cache_dir=None, progress=False, n_jobs=n_jobs,
                  train_fn=LoggingTrain(folder))
        chunks.append(sorted(os.listdir(folder)))
    assert chunks[0] == chunks[1] == ["32-0-1-2-3-4-5-6-7", "32-8-9-10"]


def test_parallel_fake_sweep_equals_serial(tmp_path):
    serial = sweep(tmp_path / "a", CONFIGS, range(10))
    parallel = sweep(tmp_path / "b", CONFIGS, range(10), n_jobs=2)
    assert_same(serial, parallel)


class FailOnSeed:
    """fake_train that raises for the chunk holding `seed` (picklable, for workers)."""

    def __init__(self, seed):
        self.seed = seed

    def __call__(self, X, y, **kwargs):
        if self.seed in kwargs["seed"]:
            raise ValueError("this chunk fails")
        return fake_train(X, y, **kwargs)


def test_parallel_failure_keeps_the_finished_chunks(tmp_path):
    with pytest.raises(ValueError, match="this chunk fails"):
        sweep(tmp_path, CONFIGS[0], range(12), n_jobs=2, chunk_size=4, train_fn=FailOnSeed(8))
    cached = {os.path.basename(p) for p in os.listdir(tmp_path / "cache")}
    assert cached == {f"{cache_key(CONFIGS[0], s)}.npz" for s in range(8)}
    train = CountingTrain()
    assert_same(sweep(tmp_path, CONFIGS[0], range(12), train_fn=train, chunk_size=4),
                sweep(tmp_path / "fresh", CONFIGS[0], range(12), chunk_size=4))
    assert train.calls == [[8, 9, 10, 11]]


def test_a_failure_among_many_queued_chunks_is_raised_not_waited_on_forever():
    """Chunks the pool cancels on the first failure never count as done for wait() or
    as_completed(); eight configs on two workers used to hang the sweep for good."""
    script = textwrap.dedent("""
        from fa.experiments import RunConfig, run_sweep
        def broken(X, y, **kwargs):
            raise ValueError("this chunk fails")
        configs = [RunConfig(activation="relu", width=8, lr=1e-2, steps=5, n=4, d=3,
                             lam=0.01 * k) for k in range(8)]
        run_sweep(configs, range(2), cache_dir=None, progress=False, n_jobs=2,
                  train_fn=broken)
    """)
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         timeout=60)
    assert run.returncode == 1 and "ValueError: this chunk fails" in run.stderr


@pytest.fixture(scope="module")
def real_sweep(tmp_path_factory):
    """One small real sweep (fa.train), shared by the tests that check its numbers."""
    configs = [tiny(lam=0.0), tiny(lam=0.05, rule="bp"),
               tiny(activation="linear", data="linear", lr=1e-3, dropout=0.2),
               # Replicas that stop at different steps, off the recording grid.
               tiny(activation="tanh", lr=0.1, lam=0.01, until_converged=True, steps=20,
                    check_every=10, tol=0.05, record_every=7)]
    cache = tmp_path_factory.mktemp("real")
    res = run_sweep(configs, range(4), cache_dir=cache, progress=False)
    return configs, res


def test_real_parallel_sweep_equals_serial_exactly(real_sweep):
    configs, serial = real_sweep
    parallel = run_sweep(configs, range(4), cache_dir=None, progress=False, n_jobs=2)
    assert_same(serial, parallel)


def test_real_stacked_chunk_equals_one_seed_at_a_time(real_sweep):
    configs, stacked = real_sweep
    single = run_sweep(configs, range(4), cache_dir=None, progress=False, chunk_size=1)
    assert_same(stacked, single)
    assert np.isfinite(stacked.runs["final_loss"]).all()
    # Real training happened: every run lowered its loss.
    start = stacked.curves.query("step == 0")["loss"].to_numpy()
    assert (stacked.runs["final_loss"].to_numpy() < start).all()


def test_real_curves_end_at_each_runs_final_step(real_sweep):
    _, res = real_sweep
    last = res.curves.groupby(["run", "seed"]).last()
    runs = res.runs.set_index(["run", "seed"])
    assert (last["step"] == runs["steps_taken"]).all()
    assert (last["loss"] == runs["final_loss"]).all()
    assert (last["alignment"] == runs["final_alignment"]).all()
    assert res.curves["step"].max() <= runs["steps_taken"].max()
    converged = runs.loc[3, "steps_taken"]
    assert converged.min() >= 20 and converged.nunique() > 1  # stopped at different checks


def test_real_divergence_is_reported_once(tmp_path):
    with pytest.warns(DivergenceWarning) as caught:
        res = sweep(tmp_path, [tiny(), tiny(lr=100.0)], range(3), train_fn=None)
    assert len(caught) == 1 and "3 of 6 runs diverged (configs [1])" in str(caught[0].message)
    assert res.runs["diverged"].tolist() == [False] * 3 + [True] * 3
    assert np.isfinite(res.curves[["loss", "alignment"]].to_numpy()).all()


def test_progress_bar_counts_cached_runs_as_done(tmp_path, capsys):
    sweep(tmp_path, CONFIGS, range(2), progress=True, desc="F9 sweep")
    assert "F9 sweep: 100% of the work" in capsys.readouterr().out
    sweep(tmp_path, CONFIGS, range(2), progress=True, desc="F9 again")
    out = capsys.readouterr().out
    assert "F9 again: 100%" in out and " 0%" not in out
    sweep(tmp_path, CONFIGS, range(2), progress=False)
    assert capsys.readouterr().err == ""


# --- validation ------------------------------------------------------------------------

@pytest.mark.parametrize("field, value, expected", [
    ("activation", "gelu", "one of 'linear', 'relu', 'tanh', 'sigmoid'"),
    ("rule", "hebb", "one of 'fa', 'bp'"),
    ("data", "mnist", "one of 'linear', 'teacher'"),
    ("width", 0, "an int >= 1"),
    ("width", 3.5, "an int >= 1"),
    ("n", -1, "an int >= 1"),
    ("lr", 0.0, "(0.0, inf)"),
    ("steps", 0, "an int >= 1"),
    ("lam", -1.0, "[0.0, inf)"),
    ("lam", float("nan"), "a finite float"),
    ("lam_schedule", "cosine", "one of 'constant', 'release', 'decay'"),
    ("lam_until", 10, "only used with lam_schedule='release'"),
    ("lam_gamma", 0.5, "only used with lam_schedule='decay'"),
    ("dropout", 1.0, "[0.0, 1.0)"),
    ("until_converged", "yes", "a bool"),
    ("check_every", 0, "an int >= 1"),
    ("tol", 0.0, "(0.0, inf)"),
    ("converge_on", "accuracy", "one of 'loss', 'alignment'"),
    ("max_steps", 10, "an int >= 50"),
    ("record_every", 0, "an int >= 1"),
    ("dtype", "float16", "one of 'float64', 'float32'"),
    ("regularizer", 3, "a str or None"),
])
def test_bad_config_values_raise_clear_errors(field, value, expected):
    with pytest.raises(ValueError, match=rf"'{field}' parameter of RunConfig") as err:
        tiny(**{field: value})
    assert expected in str(err.value) and repr(value) in str(err.value)


def test_schedules_need_their_parameter():
    with pytest.raises(ValueError, match="'lam_until' parameter of RunConfig must be an int"):
        tiny(lam=0.1, lam_schedule="release")
    with pytest.raises(ValueError, match="'lam_gamma' parameter of RunConfig must be a finite"):
        tiny(lam=0.1, lam_schedule="decay")
    with pytest.raises(ValueError, match=r"range \(0.0, 1.0\]. Got 1.5"):
        tiny(lam=0.1, lam_schedule="decay", lam_gamma=1.5)
    assert tiny(lam=0.1, lam_schedule="release", lam_until=20).regularizer == "release"
    assert tiny(lam=0.1, lam_schedule="decay", lam_gamma=0.99).regularizer == "decay"


def test_labels_are_derived_unless_given():
    assert (tiny().regularizer, tiny().strength) == ("none", 0.0)
    assert (tiny(lam=0.2).regularizer, tiny(lam=0.2).strength) == ("l2", 0.2)
    assert (tiny(dropout=0.4).regularizer, tiny(dropout=0.4).strength) == ("dropout", 0.4)
    both = tiny(dropout=0.4, lam=0.2, lam_schedule="release", lam_until=20)   # no penalty hidden
    assert (both.regularizer, both.strength) == ("dropout+release", 0.4)
    assert tiny(lam=0.2, regularizer="L2 (0.2)").regularizer == "L2 (0.2)"


@pytest.mark.parametrize("kwargs, match", [
    (dict(configs=[], seeds=[0]), "'configs' parameter of run_sweep"),
    (dict(configs=[{"width": 3}], seeds=[0]), "'configs' parameter of run_sweep"),
    (dict(configs=CONFIGS, seeds=[0, -1]), "'seeds' parameter of run_sweep"),
    (dict(configs=CONFIGS, seeds=[0, 0]), "sequence of distinct ones"),
    (dict(configs=CONFIGS, seeds=[0], n_jobs=0), "'n_jobs' parameter of run_sweep"),
    (dict(configs=CONFIGS, seeds=[0], chunk_size=0), "'chunk_size' parameter of run_sweep"),
    (dict(configs=CONFIGS, seeds=[0], backend="jax"), "'backend' parameter of run_sweep must be"),
])
def test_bad_sweep_arguments_raise_clear_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        run_sweep(cache_dir=None, progress=False, train_fn=fake_train, **kwargs)


def test_a_bad_cache_folder_or_progress_flag_is_named(tmp_path):
    (tmp_path / "a file").write_text("")
    for kwargs, match in ((dict(cache_dir=3), "'cache_dir' parameter of run_sweep must be a path"),
                          (dict(cache_dir=tmp_path / "a file"), "must be a folder .* a file is in"),
                          (dict(cache_dir=tmp_path / "a file" / "cache"), "a file is in the way"),
                          (dict(cache_dir=None, progress="no"), "'progress' parameter .* a bool")):
        with pytest.raises(ValueError, match=match):
            run_sweep(CONFIGS, [0], **{"progress": False, **kwargs}, train_fn=fake_train)


# --- any experiment through the protocol of fa.sweep ----------------------------------

TOY_CALLS = []   # seeds of every Toy.run call in this process
TOY_FAIL_AT = []  # seeds whose chunk raises KeyboardInterrupt (a simulated Ctrl-C)


@dataclasses.dataclass(frozen=True)
class Toy:
    """A tiny experiment: a seeded random walk of `length` steps, scaled."""

    scale: float = 1.0
    length: int = 5
    name: str = dataclasses.field(default="", metadata={"label": True})

    numerics_modules: ClassVar[tuple[str, ...]] = (__name__,)
    scalars: ClassVar[dict[str, type]] = {"end": float, "up": bool}
    curves: ClassVar[tuple[str, ...]] = ("t", "position")

    def run(self, seeds, **options):
        if set(seeds) & set(TOY_FAIL_AT):
            raise KeyboardInterrupt
        TOY_CALLS.append(list(seeds))
        records = []
        for seed in seeds:
            walk = self.scale * np.cumsum(np.random.default_rng(seed).normal(size=self.length))
            records.append(dict(end=float(walk[-1]), up=bool(walk[-1] > 0),
                                t=np.arange(self.length), position=walk))
        return records

    def cost(self):
        return self.length

    def chunk_size(self):
        return 3


TOYS = [Toy(1.0, name="one"), Toy(2.0, length=3)]


@pytest.fixture
def toy_log():
    TOY_CALLS.clear(), TOY_FAIL_AT.clear()
    yield TOY_CALLS
    TOY_CALLS.clear(), TOY_FAIL_AT.clear()


def test_toy_experiment_tables_cache_and_resume(tmp_path, toy_log, capsys):
    TOY_FAIL_AT.append(4)   # the second chunk of the first toy is interrupted
    with pytest.raises(KeyboardInterrupt):
        run_sweep(TOYS, range(7), cache_dir=tmp_path, progress=False)
    assert toy_log == [[0, 1, 2]]
    said = capsys.readouterr().err
    assert f"Interrupted: 3 of this sweep's 14 runs are cached in {tmp_path}" in said
    TOY_FAIL_AT.clear()
    res = run_sweep(TOYS, range(7), cache_dir=tmp_path, progress=True, desc="toy")
    assert toy_log == [[0, 1, 2], [3, 4, 5], [6], [0, 1, 2], [3, 4, 5], [6]]
    assert "toy: 14 runs, 3 from the cache" in capsys.readouterr().out
    assert list(res.runs) == ["run", "scale", "length", "name", "seed", "end", "up"]
    assert list(res.curves) == ["run", "scale", "length", "name", "seed", "t", "position"]
    assert len(res.curves) == 7 * 5 + 7 * 3
    walk = 2.0 * np.cumsum(np.random.default_rng(6).normal(size=3))
    last = res.curves[(res.curves["run"] == 1) & (res.curves["seed"] == 6)]
    np.testing.assert_array_equal(last["position"], walk)
    assert res.runs["end"].iloc[-1] == walk[-1]
    # Everything is cached now; a relabelled toy is the same experiment.
    again = run_sweep([Toy(1.0, name="relabelled"), TOYS[1]], range(7), cache_dir=tmp_path,
                      progress=False)
    assert len(toy_log) == 6
    assert again.runs["name"].iloc[0] == "relabelled"
    for table in ("runs", "curves"):
        pd.testing.assert_frame_equal(getattr(again, table).drop(columns="name"),
                                      getattr(res, table).drop(columns="name"), check_exact=True)


def test_toy_experiment_in_two_workers_equals_serial(tmp_path):
    serial = run_sweep(TOYS, range(7), cache_dir=None, progress=False)
    parallel = run_sweep(TOYS, range(7), cache_dir=tmp_path, progress=False, n_jobs=2)
    assert_same(serial, parallel)
    assert len(list(tmp_path.glob("*.npz"))) == 14


def test_experiments_of_two_kinds_are_refused():
    with pytest.raises(ValueError, match="experiments of one kind"):
        run_sweep([TOYS[0], tiny()], [0], cache_dir=None, progress=False)


def test_a_record_breaking_the_protocol_is_an_error(tmp_path):
    @dataclasses.dataclass(frozen=True)
    class Broken(Toy):
        def run(self, seeds, **options):
            return [dict(end="far", up=True, t=np.arange(2), position=np.zeros(2))
                    for _ in seeds]

    with pytest.raises(ValueError, match="'end' is not a float scalar"):
        run_sweep(Broken(), [0], cache_dir=None, progress=False)
