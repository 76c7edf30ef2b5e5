"""Scale-out on Dask: run independent chunks of work (sweeps, Monte Carlo) on a cluster.

``ck.sweep(..., client=...)`` sends each chunk of its grid to a Dask worker and gathers the
summaries in order; the numbers are the same as in one process, bit for bit, because every
trajectory draws its own counter-based random stream whatever chunk it lands in. This module
adds what a user needs around it:

* :func:`local_cluster`: a cluster of separate worker processes on this machine, listening on
  127.0.0.1 only, for a laptop or a test;
* :func:`connect`: a client for a running cluster given its scheduler address (see
  ``docs/distributed.md`` for starting ``dask scheduler`` and ``dask worker`` on several
  machines);
* :func:`map_chunks`: any top-level function over a list of argument tuples, locally or on a
  cluster, results in order (what the analyses' Monte Carlo runs use).

Dask (the ``distributed`` package, the ``dist`` extra) is imported only inside these functions:
importing convexkit, or sweeping without a client, never imports it.
"""

from __future__ import annotations

import contextlib
import importlib.util
import logging
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from ..errors import check_int, invalid

__all__ = ["available", "connect", "local_cluster", "map_chunks"]

_INSTALL = "the distributed package: pip install 'convexkit[dist]'"


def available() -> bool:
    """Whether Dask's ``distributed`` package is installed."""
    return importlib.util.find_spec("distributed") is not None


def _distributed() -> Any:
    try:
        import distributed
    except ImportError:
        raise ImportError(f"running on a Dask cluster needs {_INSTALL}") from None
    return distributed


@contextlib.contextmanager
def local_cluster(
    n_workers: int = 2,
    threads_per_worker: int = 1,
    *,
    processes: bool = True,
    memory_limit: str | int = "auto",
) -> Iterator[Any]:
    """A Dask cluster of ``n_workers`` processes on this machine, and a client for it.

    Scheduler and workers listen on 127.0.0.1 only and start no dashboard. Leaving the block
    closes the client and shuts the cluster down.

    Parameters
    ----------
    n_workers : int
        Worker processes.
    threads_per_worker : int
        Threads of each worker (1 keeps one chunk per process at a time).
    processes : bool
        Separate processes (True) or threads of this process.
    memory_limit : str or int
        Memory of each worker, as Dask accepts it ("auto", "2GB", bytes).

    Yields
    ------
    distributed.Client

    Examples
    --------
    >>> import convexkit as ck
    >>> with ck.parallel.local_cluster(2) as client:                        # doctest: +SKIP
    ...     result = ck.sweep(lambda x: x, ck.optim.gd, {"lr": [0.5, 1.5]}, [1.0], 50,
    ...                       chunk_size=1, client=client)
    """
    distributed = _distributed()
    n_workers = check_int("n_workers", n_workers, minimum=1)
    threads_per_worker = check_int("threads_per_worker", threads_per_worker, minimum=1)
    if not isinstance(processes, bool):
        raise invalid("processes", processes, "True or False")
    cluster = distributed.LocalCluster(
        n_workers=n_workers,
        threads_per_worker=threads_per_worker,
        processes=processes,
        host="127.0.0.1",
        scheduler_port=0,
        dashboard_address=None,
        worker_dashboard_address=None,
        memory_limit=memory_limit,
        silence_logs=logging.ERROR,
    )
    try:
        client = distributed.Client(cluster, set_as_default=False)
        try:
            yield client
        finally:
            client.close()
    finally:
        cluster.close()


@contextlib.contextmanager
def connect(client_or_address: Any) -> Iterator[Any]:
    """A client for a running cluster: a ``distributed.Client`` passes through (and stays
    open); a scheduler address such as ``"tcp://10.0.0.5:8786"`` opens a client that is closed
    when the block ends."""
    if isinstance(client_or_address, str):
        distributed = _distributed()
        client = distributed.Client(client_or_address, set_as_default=False)
        try:
            yield client
        finally:
            client.close()
        return
    if not all(callable(getattr(client_or_address, n, None)) for n in ("submit", "gather")):
        raise invalid(
            "client", client_or_address, "a distributed.Client or a scheduler address (str)"
        )
    yield client_or_address


def map_chunks(
    function: Callable[..., Any], tasks: Sequence[tuple], *, client: Any = None
) -> list[Any]:
    """``[function(*task) for task in tasks]``, in this process or on a Dask cluster.

    Each task is one chunk of independent work (a block of Monte Carlo runs, say), so the
    loop is over chunks, never over single runs. On a cluster ``function`` and the tasks are
    pickled to the workers, which must be able to import ``function``'s module; results come
    back in the order of the tasks.

    Parameters
    ----------
    function : callable
        A top-level (picklable) function.
    tasks : sequence of tuple
        Positional arguments of each call.
    client : distributed.Client, str or None
        Where to run: None runs here; a client or a scheduler address runs on that cluster.
    """
    if not callable(function):
        raise invalid("function", function, "a callable")
    calls = [tuple(task) for task in tasks]
    if client is None:
        return [function(*task) for task in calls]
    with connect(client) as active:
        futures = [active.submit(function, *task, pure=False) for task in calls]
        return active.gather(futures)
