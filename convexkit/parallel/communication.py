"""Communication accounting and a latency-bandwidth time model for data and model parallelism.

The alpha-beta model: sending a message of n bytes over one link takes alpha + n / beta
seconds. From it:

* ring all-reduce of n bytes among K workers (reduce-scatter then all-gather, 2(K-1) rounds):
  each worker sends 2(K-1)/K n bytes; time 2(K-1) alpha + 2(K-1)/K n / beta;
* all-gather of m-byte messages (what sparse or quantized messages need, since they cannot be
  summed in their encoded form): each worker sends (K-1) m bytes; time (K-1)(alpha + m/beta);
* parameter server with S shards: the K workers push m-byte messages and pull the n-byte
  parameters; the servers' links carry K(m + n)/S bytes each; time 2 alpha + K(m + n)/(S beta_s).

:func:`simulate_ring_allreduce` runs the ring protocol chunk by chunk on arrays (the worker axis
is an array axis) and counts the bytes each worker sends, so the formula is checked against the
protocol rather than against itself.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np

from ..errors import check_choice, check_int, check_real, invalid
from .compression import Compressor, identity

__all__ = [
    "CommunicationCost",
    "ModelParallelCost",
    "Network",
    "allgather_time",
    "communication_cost",
    "model_parallel_cost",
    "parameter_server_time",
    "ring_allreduce_bytes",
    "ring_allreduce_bytes_per_worker",
    "ring_allreduce_time",
    "simulate_ring_allreduce",
    "speedup",
]


@dataclass(frozen=True)
class Network:
    """Link parameters of the alpha-beta model.

    Parameters
    ----------
    latency : float
        alpha, seconds per message (default 5 microseconds).
    bandwidth : float
        beta, bytes per second of one worker's link (default 12.5e9: 100 Gbit/s).
    server_bandwidth : float, optional
        Bytes per second of one parameter-server shard's link (default: ``bandwidth``).
    servers : int
        Number of parameter-server shards S.
    """

    latency: float = 5e-6
    bandwidth: float = 12.5e9
    server_bandwidth: float | None = None
    servers: int = 1

    def __post_init__(self) -> None:
        check_real("latency", self.latency, low=0.0)
        check_real("bandwidth", self.bandwidth, low=0.0, low_open=True)
        if self.server_bandwidth is not None:
            check_real("server_bandwidth", self.server_bandwidth, low=0.0, low_open=True)
        check_int("servers", self.servers, minimum=1)


def _workers(workers: int) -> int:
    return check_int("workers", workers, minimum=1)


def ring_allreduce_bytes(n_bytes: float, workers: int) -> float:
    """Bytes each worker sends in a ring all-reduce of ``n_bytes``: 2(K-1)/K n."""
    k = _workers(workers)
    return 2.0 * (k - 1) / k * check_real("n_bytes", n_bytes, low=0.0)


def ring_allreduce_bytes_per_worker(
    n_values: int, workers: int, bytes_per_value: float = 4
) -> np.ndarray:
    """Bytes each worker sends in a ring all-reduce of ``n_values`` values, shape (K,).

    The values are cut into K chunks of ceil(n/K) (the last ones shorter or empty), as
    :func:`simulate_ring_allreduce` does; worker k sends chunk (k - r) mod K in round r of the
    reduce-scatter and chunk (k + 1 - r) mod K in round r of the all-gather. Where K divides n
    every worker sends :func:`ring_allreduce_bytes`.
    """
    n = check_int("n_values", n_values, minimum=0)
    k = _workers(workers)
    size = check_real("bytes_per_value", bytes_per_value, low=0.0)
    width = -(-n // k)
    lengths = np.clip(n - width * np.arange(k), 0, width)
    rounds = np.arange(k - 1)[:, None]
    workers_axis = np.arange(k)[None, :]
    scatter = lengths[(workers_axis - rounds) % k].sum(axis=0)
    gather = lengths[(workers_axis + 1 - rounds) % k].sum(axis=0)
    return (scatter + gather) * size


def ring_allreduce_time(n_bytes: float, workers: int, network: Network = Network()) -> float:
    """Seconds of a ring all-reduce: 2(K-1) alpha + 2(K-1)/K n / beta."""
    k = _workers(workers)
    return 2 * (k - 1) * network.latency + ring_allreduce_bytes(n_bytes, k) / network.bandwidth


def allgather_time(message_bytes: float, workers: int, network: Network = Network()) -> float:
    """Seconds of a ring all-gather of one ``message_bytes`` message per worker."""
    k = _workers(workers)
    m = check_real("message_bytes", message_bytes, low=0.0)
    return (k - 1) * (network.latency + m / network.bandwidth)


def parameter_server_time(
    message_bytes: float, parameter_bytes: float, workers: int, network: Network = Network()
) -> float:
    """Seconds of one parameter-server round: push K messages, pull K copies of the parameters."""
    k = _workers(workers)
    m = check_real("message_bytes", message_bytes, low=0.0)
    n = check_real("parameter_bytes", parameter_bytes, low=0.0)
    server = network.server_bandwidth or network.bandwidth
    return 2 * network.latency + k * (m + n) / (network.servers * server)


class CommunicationCost(NamedTuple):
    """Bytes and seconds of one synchronous step's communication.

    Attributes
    ----------
    bytes_per_worker : float
        Bytes each worker sends.
    bytes_total : float
        Bytes on all links together.
    seconds : float
        Time of the exchange in the alpha-beta model.
    scheme : str
        "ring all-reduce", "ring all-gather" or "parameter server".
    """

    bytes_per_worker: float
    bytes_total: float
    seconds: float
    scheme: str


def communication_cost(
    d: int,
    workers: int,
    *,
    compressor: Compressor | None = None,
    topology: str = "ring",
    network: Network = Network(),
    parameter_bits: int = 32,
) -> CommunicationCost:
    """Communication of one synchronous data-parallel step with ``d`` parameters.

    Parameters
    ----------
    d : int
        Number of parameters.
    workers : int
        K.
    compressor : Compressor, optional
        How gradients are encoded (None: dense float32). Dense and cast messages can be summed
        on the way, so the ring all-reduces them; every other compressor is all-gathered.
    topology : {"ring", "parameter_server"}
        Ring (all-reduce or all-gather) or a parameter server that workers push to and pull
        dense parameters of ``parameter_bits`` bits from.
    network : Network
        Link parameters.
    parameter_bits : int
        Bits of one parameter pulled from the server.
    """
    d = check_int("d", d, minimum=1)
    k = _workers(workers)
    check_choice("topology", topology, ("ring", "parameter_server"))
    compressor = identity() if compressor is None else compressor
    if not isinstance(compressor, Compressor):
        raise invalid("compressor", compressor, "a convexkit.parallel compressor or None")
    message = compressor.bits(d) / 8
    if topology == "parameter_server":
        parameters = d * check_int("parameter_bits", parameter_bits, minimum=1) / 8
        seconds = parameter_server_time(message, parameters, k, network)
        return CommunicationCost(message, k * (message + parameters), seconds, "parameter server")
    if compressor.name in ("identity", "cast"):
        sent = ring_allreduce_bytes(message, k)
        return CommunicationCost(
            sent, k * sent, ring_allreduce_time(message, k, network), "ring all-reduce"
        )
    sent = (k - 1) * message
    return CommunicationCost(sent, k * sent, allgather_time(message, k, network), "ring all-gather")


def speedup(
    workers: Any,
    *,
    compute_seconds: float,
    d: int,
    compressor: Compressor | None = None,
    topology: str = "ring",
    network: Network = Network(),
    overlap: bool = False,
) -> np.ndarray:
    """Strong-scaling speedup T(1) / T(K) of a fixed global batch split over K workers.

    ``compute_seconds`` is the time one worker needs for the whole global batch (measure it);
    with K workers each computes 1/K of it, then they communicate. With ``overlap`` the
    communication hides behind the computation where it is shorter.
    """
    counts = np.atleast_1d(np.asarray(workers))
    if counts.dtype.kind not in "iu" or np.any(counts < 1):
        raise invalid("workers", workers, "positive integers")
    compute = check_real("compute_seconds", compute_seconds, low=0.0, low_open=True)
    times = []
    for k in counts.tolist():  # a handful of worker counts, each a closed form
        comm = (
            communication_cost(
                d, k, compressor=compressor, topology=topology, network=network
            ).seconds
            if k > 1
            else 0.0
        )
        times.append(max(compute / k, comm) if overlap else compute / k + comm)
    return compute / np.asarray(times)


def simulate_ring_allreduce(
    x: np.ndarray, bytes_per_value: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Run the ring all-reduce protocol on ``x`` of shape (K, n), chunk by chunk.

    Reduce-scatter: in round r, worker k sends its running sum of chunk (k - r) mod K to worker
    k + 1, which adds it to its own. All-gather: the completed chunks travel once more around
    the ring. Returns (the array every worker holds at the end, shape (K, n); bytes each worker
    sent, shape (K,)).
    """
    x = np.asarray(x)
    if x.ndim != 2:
        raise invalid("x", f"<array {x.shape}>", "an array of shape (workers, n)")
    k, n = x.shape
    size = bytes_per_value or x.dtype.itemsize
    width = -(-n // k)  # chunks of equal width; the last ones may be padded
    lengths = np.clip(n - width * np.arange(k), 0, width)
    data = np.zeros((k, k, width), dtype=x.dtype)  # (worker, chunk, entry)
    data.reshape(k, -1)[:, :n] = x
    sent = np.zeros(k)
    workers = np.arange(k)
    receivers = (workers + 1) % k
    for r in range(k - 1):  # reduce-scatter
        chunk = (workers - r) % k
        data[receivers, chunk] += data[workers, chunk]
        sent += lengths[chunk] * size
    for r in range(k - 1):  # all-gather: worker j holds the complete chunk j + 1
        chunk = (workers + 1 - r) % k
        data[receivers, chunk] = data[workers, chunk]
        sent += lengths[chunk] * size
    return data.reshape(k, -1)[:, :n].copy(), sent


class ModelParallelCost(NamedTuple):
    """Memory per device and traffic per step of splitting a layered model over devices.

    Attributes
    ----------
    memory_per_device : numpy.ndarray
        Bytes of parameters, gradients and optimizer state on each device.
    bytes_per_step : float
        Activation and gradient traffic across the cuts, forward and backward, per step.
    boundaries : list of int
        Index of the first layer on each device.
    data_parallel_memory : float
        Bytes each device would hold under data parallelism (the whole model).
    data_parallel_bytes : float
        Bytes each worker would send per step under ring all-reduce data parallelism.
    """

    memory_per_device: np.ndarray
    bytes_per_step: float
    boundaries: list[int]
    data_parallel_memory: float
    data_parallel_bytes: float


def model_parallel_cost(
    layer_sizes: list[int],
    devices: int,
    batch: int,
    *,
    bytes_per_value: int = 4,
    optimizer_slots: int = 2,
) -> ModelParallelCost:
    """Cost of pipeline-style model parallelism for a dense network of ``layer_sizes`` widths.

    Layers are split into ``devices`` contiguous groups of nearly equal parameter counts. Each
    device keeps its layers' weights, gradients and ``optimizer_slots`` state arrays (2 for
    Adam). At each cut the activations of width w go forward and their gradients come back:
    2 * batch * w values per step.
    """
    widths = [check_int("layer_sizes", w, minimum=1) for w in layer_sizes]
    if len(widths) < 2:
        raise invalid("layer_sizes", layer_sizes, "at least two widths (input and output)")
    params = np.array([(widths[i] + 1) * widths[i + 1] for i in range(len(widths) - 1)], float)
    g = check_int("devices", devices, minimum=1)
    if g > params.size:
        raise invalid("devices", devices, f"at most the number of layers, {params.size}")
    b = check_int("batch", batch, minimum=1)
    per_value = (2 + check_int("optimizer_slots", optimizer_slots, minimum=0)) * bytes_per_value
    cumulative = np.cumsum(params)
    targets = cumulative[-1] * np.arange(1, g) / g
    cuts = sorted(set(int(np.searchsorted(cumulative, t)) + 1 for t in targets))
    cuts = [c for c in cuts if 0 < c < params.size][: g - 1]
    while len(cuts) < g - 1:  # balance left fewer cuts than devices: fill the first gaps
        cuts = sorted(set(cuts) | {min(set(range(1, params.size)) - set(cuts))})
    starts = [0, *cuts]
    memory = np.array(
        [params[s:e].sum() for s, e in zip(starts, [*cuts, params.size], strict=True)]
    )
    traffic = sum(2 * b * widths[c] * bytes_per_value for c in cuts)
    total = params.sum()
    return ModelParallelCost(
        memory * per_value,
        float(traffic),
        starts,
        float(total * per_value),
        ring_allreduce_bytes(total * bytes_per_value, g) if g > 1 else 0.0,
    )
