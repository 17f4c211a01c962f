"""Sweeps on a real Dask cluster (local processes on 127.0.0.1): equal to serial,
robust to a dying worker, resumable after an interrupt, clear when the scheduler goes."""

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

distributed = pytest.importorskip("distributed", reason="the 'cluster' extra (dask.distributed)"
                                  " is not installed")
import fa  # noqa: E402
from fa import cluster  # noqa: E402
from fa.experiments import run_sweep  # noqa: E402
from fa.trainer import train  # noqa: E402
from test_experiments import CONFIGS, assert_same, tiny  # noqa: E402

SLOW = [tiny(lam=0.0), tiny(lam=0.05)]  # 2 x 6 seeds in chunks of one: 12 chunks


def slow_train(X, y, **kwargs):
    time.sleep(0.3)
    return train(X, y, **kwargs)


def local_cluster():
    return distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                    host="127.0.0.1", dashboard_address=None)


@pytest.fixture(scope="module")
def client():
    with local_cluster() as lc, distributed.Client(lc, set_as_default=False) as c:
        yield c


@pytest.fixture(scope="module")
def serial_slow():
    return run_sweep(SLOW, range(6), cache_dir=None, progress=False, chunk_size=1)


def when_cached(folder, action):
    """Run `action` in a thread as soon as one run is cached in `folder`."""
    def wait():
        deadline = time.monotonic() + 60
        while not list(folder.glob("*.npz")) and time.monotonic() < deadline:
            time.sleep(0.02)
        action()
    thread = threading.Thread(target=wait, daemon=True)
    thread.start()
    return thread


def test_cluster_sweep_equals_serial_bit_for_bit(client, tmp_path):
    serial = run_sweep(CONFIGS, range(10), cache_dir=None, progress=False)
    assert cluster.n_workers(cluster.executor(client)) == 2
    on_cluster = run_sweep(CONFIGS, range(10), cache_dir=tmp_path, progress=False,
                           executor=cluster.executor(client))
    assert_same(serial, on_cluster)
    assert len(list(tmp_path.glob("*.npz"))) == 30   # written here, by the client


def test_a_worker_killed_mid_sweep_costs_only_its_chunk(client, tmp_path, serial_slow):
    pids = list(client.run(os.getpid).values())
    killer = when_cached(tmp_path, lambda: os.kill(pids[0], signal.SIGKILL))
    res = run_sweep(SLOW, range(6), cache_dir=tmp_path, progress=False, chunk_size=1,
                    executor=cluster.executor(client), train_fn=slow_train)
    killer.join()
    assert pids[0] not in client.run(os.getpid).values()   # it did die (and was replaced)
    assert_same(serial_slow, res)


def test_resume_after_the_client_is_interrupted(client, tmp_path, serial_slow, capsys):
    when_cached(tmp_path, lambda: os.kill(os.getpid(), signal.SIGINT))
    with pytest.raises(KeyboardInterrupt):
        run_sweep(SLOW, range(6), cache_dir=tmp_path, progress=False, chunk_size=1,
                  executor=cluster.executor(client), train_fn=slow_train)
    done = len(list(tmp_path.glob("*.npz")))
    assert 1 <= done < 12
    said = capsys.readouterr().err
    assert f"Interrupted: {done} of this sweep's 12 runs are cached in {tmp_path}" in said
    res = run_sweep(SLOW, range(6), cache_dir=tmp_path, progress=True, chunk_size=1,
                    executor=cluster.executor(client), desc="resume")
    assert f"resume: 12 runs, {done} from the cache" in capsys.readouterr().out
    assert_same(serial_slow, res)


def start_cli_cluster(folder):
    """`dask scheduler` and `dask worker --nworkers 2 --nthreads 1`, as a user starts them."""
    # The workers import fa and, for the functions these tests send, the tests folder.
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(Path(fa.__file__).parents[1]),
                                                       str(Path(__file__).parent)]))
    file = folder / "scheduler.json"
    started = [subprocess.Popen(
        [sys.executable, "-m", "distributed.cli.dask_scheduler", "--host", "127.0.0.1",
         "--port", "0", "--no-dashboard", "--scheduler-file", str(file)],
        env=env, start_new_session=True, stderr=subprocess.DEVNULL)]
    deadline = time.monotonic() + 60
    while not file.exists():
        assert time.monotonic() < deadline and started[0].poll() is None
        time.sleep(0.1)
    time.sleep(0.2)   # the file is written in one go, but give it a moment
    address = json.loads(file.read_text())["address"]
    started.append(subprocess.Popen(
        [sys.executable, "-m", "distributed.cli.dask_worker", address, "--nworkers", "2",
         "--nthreads", "1", "--no-dashboard", "--host", "127.0.0.1"],
        env=env, start_new_session=True, stderr=subprocess.DEVNULL))
    return address, started


def test_dask_command_line_cluster_and_losing_its_scheduler(tmp_path, serial_slow):
    address, started = start_cli_cluster(tmp_path)
    try:
        with cluster.connect(address) as executor:
            cluster.client_of(executor).wait_for_workers(2, timeout=60)
            assert cluster.n_workers(executor) == 2
            # A sweep on it equals a local one.
            assert_same(run_sweep(CONFIGS, range(4), cache_dir=None, progress=False),
                        run_sweep(CONFIGS, range(4), cache_dir=None, progress=False,
                                  executor=executor))
            cache = tmp_path / "cache"
            when_cached(cache, lambda: os.killpg(started[0].pid, signal.SIGKILL))
            with pytest.raises(ConnectionError, match=f"Lost the Dask scheduler at {address}: ") \
                    as err:
                run_sweep(SLOW, range(6), cache_dir=cache, progress=False, chunk_size=1,
                          executor=executor, train_fn=slow_train)
    finally:
        for process in started:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    done = len(list(cache.glob("*.npz")))
    assert f"{done} of this sweep's 12 runs are cached in {cache}; restart the scheduler" \
        in str(err.value)
    # Everything finished is there and correct: a local rerun trains only the rest.
    assert_same(serial_slow, run_sweep(SLOW, range(6), cache_dir=cache, progress=False,
                                       chunk_size=1))


def test_connect_refuses_bad_addresses_clearly():
    with pytest.raises(ValueError, match="'address' parameter of connect"):
        with cluster.connect("127.0.0.1:8786"):
            pass
    with pytest.raises(ConnectionError, match="No Dask scheduler answered at tcp://127.0.0.1:9"):
        with cluster.connect("tcp://127.0.0.1:9", timeout=0.5):
            pass
