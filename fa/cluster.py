"""Run sweeps on a Dask cluster: many machines, one cache (the optional extra ``cluster``).

:func:`fa.run_sweep` takes any :class:`concurrent.futures.Executor`; :func:`connect` gives
a Dask client's, whose workers run the chunks and send the results back to the caller's
cache (no shared disk; see ``docs/gallery.md``, "On a cluster")::

    with fa.cluster.connect("tcp://127.0.0.1:8786") as executor:
        fa.run_sweep(configs, range(50), executor=executor)

Start workers with one thread each (``dask worker ... --nthreads 1``): each chunk runs on
one BLAS thread, so a worker's threads would only share a core.
"""

from __future__ import annotations

import contextlib
import weakref
from concurrent.futures import Executor

#: The Dask client behind each executor made here (a Dask executor does not say).
_CLIENTS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


@contextlib.contextmanager
def connect(address: str | None, *, timeout: float = 10.0):
    """Connect to the Dask scheduler at ``address``; yield an executor for :func:`fa.run_sweep`.

    Parameters
    ----------
    address : str or None
        The scheduler, e.g. ``"tcp://10.0.0.5:8786"`` (what ``dask scheduler`` prints).
        None yields None: :func:`fa.run_sweep` then uses its local process pool, so a
        notebook's ``scheduler`` parameter can be passed through unchanged.
    timeout : float, default 10.0
        Seconds to wait for the scheduler.

    Yields
    ------
    concurrent.futures.Executor or None
        ``distributed.Client(address).get_executor()``; the client is closed on exit
        (the cluster keeps running).

    Raises
    ------
    ConnectionError
        If no scheduler answers at ``address`` within ``timeout``.
    """
    if address is None:
        yield None
        return
    if not isinstance(address, str) or "://" not in address:
        raise ValueError("The 'address' parameter of connect must be a scheduler address "
                         f"such as 'tcp://127.0.0.1:8786'. Got {address!r} instead.")
    try:
        import distributed
    except ImportError:
        raise ImportError("fa.cluster needs dask.distributed: pip install 'dask[distributed]' "
                          "(in a checkout: pip install -e '.[cluster]').") from None
    try:
        client = distributed.Client(address, timeout=timeout, set_as_default=False)
    except OSError as err:   # includes distributed's timeouts
        raise ConnectionError(f"No Dask scheduler answered at {address} within {timeout:g} s "
                              f"({err}). Start one with `dask scheduler` and workers with "
                              f"`dask worker {address}`.") from None
    try:
        yield executor(client)
    finally:
        client.close()


def executor(client) -> Executor:
    """The executor of a Dask ``client`` for :func:`fa.run_sweep`, remembered with its
    client so that :func:`n_workers` and the sweep's messages can ask it."""
    ex = client.get_executor()
    _CLIENTS[ex] = client
    return ex


def client_of(executor: Executor):
    """The Dask client of an executor from :func:`executor` or :func:`connect`, else None."""
    return _CLIENTS.get(executor)


def n_workers(executor: Executor | None = None, *, n_jobs: int = 1) -> int:
    """How many chunks ``executor`` runs at once (for time estimates).

    A Dask executor (from :func:`connect` or :func:`executor`): the threads of all its
    workers now. ``None``: ``n_jobs``, what :func:`fa.run_sweep` would start.
    """
    if executor is None:
        return n_jobs
    client = client_of(executor)
    if client is None:
        raise ValueError("The 'executor' parameter of n_workers must be an executor from "
                         f"fa.cluster.connect or fa.cluster.executor, or None. Got {executor!r} "
                         "instead.")
    return max(1, sum(client.nthreads().values()))
