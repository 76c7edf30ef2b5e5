"""Data-parallel simulation against NumPy copies, and a sweep on a Dask cluster against one
process.

Run with ``python -m analyses.benchmarks.parallel`` (``--quick`` for small sizes). Every ratio
is measured side by side in one run: the repetitions of the two things compared alternate, and
each time is the best of its repetitions, so that load from other processes affects both alike.

1. One simulated step of K = 64 workers on 10^6 parameters with top-k compression (k = 1% of
   the parameters) and error feedback: each worker's gradient, its top-k selection with error
   feedback, the weighted average of the messages and the optimizer's update. Against a NumPy
   copy (``np.copyto`` into a preallocated array) of one worker-by-parameter array, float64 and
   float32. Three paths: the workers' affine gradients fused into the selection (sparse
   messages, scatter-add, reused buffers); the same with the gradient computed first as a dense
   array; and the generic dense path (dense messages, summed) for reference.
2. A sweep (momentum on a two-dimensional quadratic) on a local Dask cluster of two worker
   processes against the same sweep, with the same chunks, in this process, for several chunk
   sizes: the ratio of the times, and the smallest chunk size from which the cluster is faster.
"""

from __future__ import annotations

import argparse
import functools
import os
import time
from collections.abc import Callable

import numpy as np

import convexkit as ck
from convexkit.parallel.workers import _Engine


def best_of(functions: dict[str, Callable[[], object]], repeats: int) -> dict[str, float]:
    """Best wall time of each function, the repetitions of all of them interleaved."""
    best = dict.fromkeys(functions, np.inf)
    for _ in range(repeats):
        for name, function in functions.items():
            start = time.perf_counter()
            function()
            best[name] = min(best[name], time.perf_counter() - start)
    return best


def topk_step_benchmark(workers: int, d: int, dtype: type, repeats: int) -> dict[str, float]:
    """Seconds per simulated step on each path, and of a copy of a (workers, d) array."""
    rng = np.random.default_rng(0)
    objective = ck.parallel.WorkerQuadratics(
        rng.standard_normal((workers, d)), curvature=np.linspace(0.5, 2.0, workers)
    )
    objective.centers = objective.centers.astype(dtype)  # half the memory for float32
    scheme = ck.parallel.synchronous(
        workers, compressor=ck.parallel.topk(d // 100), error_feedback=True
    )
    optimizer = ck.optim.gd(0.1)
    sizes = np.ones(workers)

    def engine(fused: bool, sparse: bool) -> Callable[[], object]:
        x = np.zeros((1, d), dtype=dtype)
        state = {"x": x, "opt": optimizer.init(x), "t": 0}
        machine = _Engine(
            scheme,
            optimizer,
            x,
            objective.weights,
            sizes,
            None,
            np,
            dtype,
            None,
            affine=objective if fused else None,
        )
        machine.sparse = sparse

        def gradients(points: np.ndarray) -> np.ndarray:
            return objective.worker_grad(points)

        def step() -> None:
            state["x"], state["opt"] = machine.step(state["x"], state["opt"], state["t"], gradients)
            state["t"] += 1

        step()  # compile or load the kernels, allocate the buffers
        return step

    source = rng.standard_normal((workers, d)).astype(dtype)
    target = np.empty_like(source)
    paths = {
        "copy": lambda: np.copyto(target, source),
        "fused": engine(fused=True, sparse=True),
        "sparse": engine(fused=False, sparse=True),
    }
    times = best_of(paths, repeats)
    generic = engine(fused=False, sparse=False)
    times["generic"] = best_of({"generic": generic}, max(1, repeats // 3))["generic"]
    return times


def sweep_benchmark(chunk_sizes: list[int], points: int, steps: int) -> dict[str, object]:
    """Seconds of one sweep on a two-worker local cluster and in this process, per chunk
    size (after a warm-up that starts the workers' imports and compilations)."""
    problem = ck.Problem("lam*x**2/2 + 3*y**2", params=["lam"])
    factory = functools.partial(ck.optim.momentum, beta=0.5)
    grid = {"lr": np.linspace(0.01, 0.3, points), "lam": [0.5, 2.0]}
    options = dict(seed=1, noise=0.01)
    rows = []
    start = time.perf_counter()
    with ck.parallel.local_cluster(n_workers=2, threads_per_worker=1) as client:
        started = time.perf_counter() - start
        start = time.perf_counter()
        ck.sweep(
            problem, factory, grid, [1.0, 1.0], 10, chunk_size=points, client=client, **options
        )
        warm_up = time.perf_counter() - start
        for chunk in chunk_sizes:

            def local(chunk: int = chunk) -> object:
                return ck.sweep(
                    problem, factory, grid, [1.0, 1.0], steps, chunk_size=chunk, **options
                )

            def remote(chunk: int = chunk) -> object:
                return ck.sweep(
                    problem,
                    factory,
                    grid,
                    [1.0, 1.0],
                    steps,
                    chunk_size=chunk,
                    client=client,
                    **options,
                )

            same = np.array_equal(local().final_x, remote().final_x)
            times = best_of({"local": local, "cluster": remote}, 2)
            rows.append((chunk, times["local"], times["cluster"], same))
        # what a chunk costs when it does almost nothing: the price of dispatching it
        smallest = chunk_sizes[0]
        trips = best_of(
            {
                "local": lambda: ck.sweep(
                    problem, factory, grid, [1.0, 1.0], 1, chunk_size=smallest, **options
                ),
                "cluster": lambda: ck.sweep(
                    problem,
                    factory,
                    grid,
                    [1.0, 1.0],
                    1,
                    chunk_size=smallest,
                    client=client,
                    **options,
                ),
            },
            2,
        )
    chunks = -(-2 * points // smallest)
    return {
        "rows": rows,
        "cluster_start": started,
        "warm_up": warm_up,
        "total": 2 * points,
        "round_trip": (smallest, trips["local"] / chunks, trips["cluster"] / chunks),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, no timing claims")
    args = parser.parse_args(argv)
    if args.quick:
        workers, d, repeats = 16, 2**16, 3
        chunks, points, steps = [8, 64], 64, 100
    else:
        workers, d, repeats = 64, 10**6, 7
        chunks, points, steps = [8, 64, 512, 2048], 2048, 300

    print(f"machine: {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}")
    print(f"top-k with error feedback: K = {workers} workers, d = {d}, k = {d // 100}")
    for dtype in (np.float64, np.float32):
        t = topk_step_benchmark(workers, d, dtype, repeats)
        print(
            f"  {np.dtype(dtype).name}: copy of ({workers}, {d}) {t['copy'] * 1e3:.1f} ms; "
            f"step / copy: fused {t['fused'] / t['copy']:.2f}, "
            f"sparse {t['sparse'] / t['copy']:.2f}, generic {t['generic'] / t['copy']:.1f} "
            f"(target <= 5)"
        )

    result = sweep_benchmark(chunks, points, steps)
    print(
        f"sweep of {result['total']} runs x {steps} steps on a local Dask cluster (2 worker "
        f"processes; start {result['cluster_start']:.1f} s, first sweep {result['warm_up']:.1f} s)"
    )
    pays = None
    rows = result["rows"]
    for chunk, local, cluster, same in rows:
        print(
            f"  chunk {chunk:5d}: one process {local:.3f} s, cluster {cluster:.3f} s, "
            f"cluster / one process {cluster / local:.2f}, identical results: {same}"
        )
        if pays is None and cluster < local:
            pays = chunk
    # the largest chunks keep both workers busy with little overhead: their ratio is the
    # parallelism the machine gave
    parallelism = rows[-1][1] / rows[-1][2]
    chunk, local, cluster = result["round_trip"]
    print(
        f"  effective parallelism of the two workers {parallelism:.2f}; chunks of {chunk} runs "
        f"x 1 step: {local * 1e3:.2f} ms each in one process, {cluster * 1e3:.2f} ms each "
        f"through the cluster"
    )
    if pays:
        print(f"  the cluster pays off from chunk size {pays}")
    else:
        print("  the cluster did not pay off at any chunk size on this machine")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
