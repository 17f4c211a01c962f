"""Interrupting a parallel sweep (Ctrl-C, SIGTERM, SIGKILL of the parent) leaves no
worker behind, keeps every finished run in the cache, and a rerun resumes from it."""

import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import psutil
import pytest

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")

# 12 chunks of one seed, each sleeping `pause` seconds, on 2 worker processes.
SCRIPT = textwrap.dedent("""
    import sys, time
    from fa.experiments import RunConfig, run_sweep
    from fa.trainer import train

    def slow(X, y, **kwargs):
        time.sleep(float(sys.argv[2]))
        return train(X, y, **kwargs)

    configs = [RunConfig(width=4, n=5, d=8, steps=3, lam=lam) for lam in (0.0, 0.1)]
    run_sweep(configs, range(6), cache_dir=sys.argv[1], n_jobs=2, chunk_size=1,
              progress=sys.argv[2] == "0", desc="slow", train_fn=slow)
""")


def start(cache, pause):
    return subprocess.Popen([sys.executable, "-c", SCRIPT, str(cache), str(pause)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)  # its own group, like a terminal job


def cached(cache):
    return sorted(cache.glob("*.npz"))


def alive(pids):
    out = []
    for pid in pids:
        try:
            if psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
                out.append(pid)
        except psutil.NoSuchProcess:
            pass
    return out


@pytest.mark.parametrize("how", ["SIGINT", "SIGTERM", "SIGKILL"])
def test_interrupted_sweep_leaves_no_worker_and_resumes(tmp_path, how):
    cache = tmp_path / "cache"
    sweep = start(cache, pause=0.3)
    deadline = time.monotonic() + 60
    while not cached(cache):
        assert sweep.poll() is None and time.monotonic() < deadline, sweep.communicate()
        time.sleep(0.05)
    workers = [p.pid for p in psutil.Process(sweep.pid).children(recursive=True)]
    assert len(workers) >= 2
    if how == "SIGINT":    # Ctrl-C in a terminal: the whole foreground group gets it
        os.killpg(sweep.pid, signal.SIGINT)
    else:
        os.kill(sweep.pid, getattr(signal, how))
    _, err = sweep.communicate(timeout=20)
    assert sweep.returncode != 0

    deadline = time.monotonic() + 10
    while alive(workers) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert alive(workers) == []

    done = cached(cache)
    assert 1 <= len(done) < 12
    if how != "SIGKILL":   # a clean stop says how to resume, without the pool's traceback
        assert f"Interrupted: {len(done)} of this sweep's 12 runs are cached in {cache}; run the " \
               "same command again to resume." in err
        assert "concurrent" not in err and len(err.splitlines()) < 15, err
    for path in done:   # intact: complete files
        with np.load(path) as f:
            assert {"step", "loss", "alignment", "final_loss"} <= set(f.files)

    before = {p: p.read_bytes() for p in done}
    rerun = start(cache, pause=0)
    out, err = rerun.communicate(timeout=60)
    assert rerun.returncode == 0, err
    assert f"slow: 12 runs, {len(done)} from the cache" in out
    assert len(cached(cache)) == 12
    assert all(p.read_bytes() == data for p, data in before.items())
