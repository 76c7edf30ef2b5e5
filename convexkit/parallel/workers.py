"""Data-parallel training simulated exactly, with the K workers as an array axis.

A :class:`DataParallel` scheme says how K workers cooperate; :func:`simulate` (also reached as
``ck.run(..., parallel=scheme)``) runs B independent runs of it at once. Every array has the
shape (B, K, d) where the workers matter (runs, workers, parameters); no Python loop runs over
runs or workers.

Schemes
-------
* ``synchronous`` (ring all-reduce or a parameter server): every step each worker computes a
  gradient on its own minibatch at the current point; the messages are averaged with weights
  ``b_k / sum b`` (b_k the worker's minibatch size), so the step is exactly one large-batch
  step on the union of the K minibatches (to rounding error), also for unequal shards.
* ``asynchronous`` (parameter server): worker k's gradient at step t was computed at the stale
  point ``x_{t - tau_{k,t}}`` (``x_0`` while ``t - tau < 0``), with a fixed staleness or with
  delays drawn per worker and per step. Past iterates live in a ring buffer, an array of shape
  (tau_max + 1, B, d). With one worker and full gradients this is gradient descent with a
  delayed gradient, whose stability region :func:`convexkit.stability_region` derives.
* ``local``: local SGD. Each worker takes its own optimizer steps on its own iterate; every H
  steps the iterates are averaged (the message is the change since the last average).

Each scheme takes a compressor of :mod:`convexkit.parallel.compression`, with or without error
feedback (a per-worker error state of shape (B, K, d)): ``"classic"`` (Seide et al. 2014:
``m = C(g + e)``, ``e <- g + e - m``) or ``"ef21"`` (Richtarik et al. 2021: worker k keeps an
estimate h_k of its gradient and sends ``C(g_k - h_k)``; the server averages the estimates),
which converges to the exact optimum also when the workers' gradients differ there.

Data
----
A :class:`~convexkit.simulate.FiniteSum` of n examples is cut into K contiguous shards
(``shards=`` sizes, by default as equal as possible); worker k draws its minibatch from its own
shard only, with or without replacement as the FiniteSum says, with ``batch_sizes[k]``
examples (the FiniteSum's batch size by default, the whole shard when it has none). Other
objectives (Problems, oracles, gradient functions) are evaluated by every worker at its own
point, each worker with its own Gaussian noise when ``noise`` is given.
:class:`WorkerQuadratics` gives each worker its own quadratic: heterogeneous data in closed
form.

Random numbers come from the same counter-based streams as :func:`convexkit.run`, keyed by
(seed, run, step, component), with the worker in the component: run i of a batch is the same
whatever else is in the batch, so sweeps give the same numbers for every chunk size. With one
worker, sampling and noise equal those of :func:`convexkit.run` bit for bit.

Communication and time
----------------------
Every step records the bytes each worker sends (from the compressor's encoding and the
topology, :func:`~convexkit.parallel.communication.communication_cost`; ring all-reduce counted
chunk by chunk) and a simulated wall clock: each worker's compute time (``seconds_per_example``
times its minibatch size, or measured when not given) plus the alpha-beta time of the exchange.
A synchronous step lasts as long as the slowest worker plus the exchange; an asynchronous step
the mean worker's round trip (nobody waits for the slowest); local SGD communicates only on
averaging steps.
"""

from __future__ import annotations

import numbers
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import array_api_compat
import numpy as np

from .. import simulate as _sim
from ..backend import (
    array_namespace,
    asarray,
    device_of,
    namespace_name,
    to_numpy,
)
from ..errors import check_choice, check_int, check_real, invalid
from ..optim.base import Optimizer
from ..simulate import FiniteSum, Trace
from .communication import Network, communication_cost, ring_allreduce_bytes_per_worker
from .compression import Compressor, compress_with_feedback, identity

__all__ = [
    "DataParallel",
    "ParallelTrace",
    "RoundCost",
    "WorkerQuadratics",
    "asynchronous",
    "local_sgd",
    "shard_sizes",
    "simulate",
    "synchronous",
]

MODES = ("synchronous", "asynchronous", "local")
TOPOLOGIES = ("ring", "parameter_server")
FEEDBACK = ("none", "classic", "ef21")
DELAYS = ("fixed", "uniform")
# purposes of the random streams that only the parallel simulation draws (simulate.py uses 1-3)
_PURPOSE_DELAY = 101
_PURPOSE_COMPRESS = 102
_STOCHASTIC = ("qsgd", "terngrad", "randk")
_TRAIN_KEY = 0x7A11  # key of the streams of ck.train's workers; the runs' seeds pick the stream


# --------------------------------------------------------------------------- schemes


class RoundCost(NamedTuple):
    """One communication round of a scheme.

    Attributes
    ----------
    bytes_per_worker : numpy.ndarray
        Bytes each worker sends, shape (K,).
    seconds : float
        Duration of the round in the alpha-beta model.
    scheme : str
        "ring all-reduce", "ring all-gather" or "parameter server".
    """

    bytes_per_worker: np.ndarray
    seconds: float
    scheme: str


def _feedback(value: Any) -> str:
    if value is False or value is None:
        return "none"
    if value is True:
        return "classic"
    if isinstance(value, str) and value in FEEDBACK:
        return value
    raise invalid("error_feedback", value, "False, True (classic), 'classic', 'ef21' or 'none'")


def _int_tuple(name: str, values: Any, minimum: int) -> tuple[int, ...] | None:
    if values is None:
        return None
    if isinstance(values, (str, bytes)) or not isinstance(values, (Sequence, np.ndarray)):
        raise invalid(name, values, f"None or a sequence of integers >= {minimum}")
    items = tuple(np.asarray(values).tolist()) if isinstance(values, np.ndarray) else values
    if not items:
        raise invalid(name, values, f"None or a non-empty sequence of integers >= {minimum}")
    return tuple(check_int(name, v, minimum=minimum) for v in items)


@dataclass(frozen=True)
class DataParallel:
    """How K workers train together. Build it with :func:`synchronous`, :func:`asynchronous`
    or :func:`local_sgd`; pass it as ``ck.run(..., parallel=scheme)``,
    ``ck.train(..., parallel=scheme)`` or to :func:`simulate`.

    Attributes
    ----------
    workers : int
        K.
    mode : {"synchronous", "asynchronous", "local"}
    topology : {"ring", "parameter_server"}
        How messages travel (asynchronous updates always go through a parameter server).
    compressor : Compressor or None
        Gradient (or, for local SGD, model-change) compressor; None sends dense float32.
    error_feedback : {"none", "classic", "ef21"}
    staleness : int or tuple of int
        Asynchronous mode: the fixed delay tau, or the largest delay for random delays; a
        tuple gives one fixed delay per run.
    delays : "fixed", "uniform" or tuple of float
        Asynchronous mode: every delay equals ``staleness``; uniform on 0 .. staleness; or
        drawn from these probabilities of the delays 0, 1, ....
    period : int
        Local SGD: steps between averages (H).
    shards : tuple of int or None
        Examples of a FiniteSum on each worker (contiguous shards); None splits evenly.
    batch_sizes : tuple of int or None
        Minibatch size of each worker; None takes the FiniteSum's batch size for every
        worker (the whole shard when it has none).
    network : Network
        Link latency and bandwidth.
    seconds_per_example : float or None
        Compute time of one worker per example of its minibatch (per gradient evaluation for
        objectives without examples); None measures it.
    """

    workers: int
    mode: str = "synchronous"
    topology: str = "ring"
    compressor: Compressor | None = None
    error_feedback: str = "none"
    staleness: int | tuple[int, ...] = 0
    delays: str | tuple[float, ...] = "fixed"
    period: int = 1
    shards: tuple[int, ...] | None = None
    batch_sizes: tuple[int, ...] | None = None
    network: Network = field(default_factory=Network)
    seconds_per_example: float | None = None

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        k = check_int("workers", self.workers, minimum=1)
        check_choice("mode", self.mode, MODES)
        check_choice("topology", self.topology, TOPOLOGIES)
        if self.mode == "asynchronous" and self.topology != "parameter_server":
            raise invalid("topology", self.topology, "'parameter_server' for asynchronous updates")
        if self.compressor is not None and not isinstance(self.compressor, Compressor):
            raise invalid("compressor", self.compressor, "None or a convexkit.parallel compressor")
        set_(self, "error_feedback", _feedback(self.error_feedback))
        if self.error_feedback != "none" and self.compressor is None:
            raise invalid(
                "error_feedback", self.error_feedback, "'none' when nothing is compressed"
            )
        if isinstance(self.staleness, numbers.Integral) and not isinstance(self.staleness, bool):
            check_int("staleness", self.staleness, minimum=0)
        else:
            set_(self, "staleness", _int_tuple("staleness", self.staleness, 0))
        if isinstance(self.delays, str):
            check_choice("delays", self.delays, DELAYS)
        else:
            probabilities = np.asarray(self.delays, dtype=float)
            if (
                probabilities.ndim != 1
                or probabilities.size == 0
                or not np.all(np.isfinite(probabilities))
                or np.any(probabilities < 0)
                or abs(probabilities.sum() - 1.0) > 1e-9
            ):
                raise invalid(
                    "delays", self.delays, "'fixed', 'uniform' or probabilities summing to 1"
                )
            set_(self, "delays", tuple(probabilities.tolist()))
            if self.staleness != probabilities.size - 1:
                raise invalid(
                    "staleness",
                    self.staleness,
                    f"{probabilities.size - 1}, the largest delay the probabilities allow",
                )
        if self.mode != "asynchronous" and (self.staleness != 0 or self.delays != "fixed"):
            raise invalid("staleness", self.staleness, "0 unless the mode is 'asynchronous'")
        check_int("period", self.period, minimum=1)
        if self.mode != "local" and self.period != 1:
            raise invalid("period", self.period, "1 unless the mode is 'local'")
        set_(self, "shards", _int_tuple("shards", self.shards, 1))
        set_(self, "batch_sizes", _int_tuple("batch_sizes", self.batch_sizes, 1))
        for name in ("shards", "batch_sizes"):
            values = getattr(self, name)
            if values is not None and len(values) != k:
                raise invalid(name, values, f"one entry per worker ({k})")
        if not isinstance(self.network, Network):
            raise invalid("network", self.network, "a convexkit.parallel.Network")
        if self.seconds_per_example is not None:
            check_real("seconds_per_example", self.seconds_per_example, low=0.0)

    @property
    def max_staleness(self) -> int:
        """The largest delay any gradient can have."""
        return max(self.staleness) if isinstance(self.staleness, tuple) else self.staleness

    def round_cost(self, d: int) -> RoundCost:
        """Bytes each worker sends and the time of one exchange of ``d`` parameters."""
        compressor = self.compressor if self.compressor is not None else identity()
        topology = "parameter_server" if self.mode == "asynchronous" else self.topology
        cost = communication_cost(
            d, self.workers, compressor=compressor, topology=topology, network=self.network
        )
        if cost.scheme == "ring all-reduce":
            sent = ring_allreduce_bytes_per_worker(d, self.workers, compressor.value_bits / 8)
        else:
            sent = np.full(self.workers, float(cost.bytes_per_worker))
        return RoundCost(sent, float(cost.seconds), cost.scheme)

    def simulate(self, objective: Any, optimizer: Optimizer, x0: Any, steps: int, **options: Any):
        """:func:`simulate` with this scheme (what ``ck.run(..., parallel=self)`` calls)."""
        return simulate(objective, optimizer, x0, steps, self, **options)

    def trainer(self, model: Any, optimizer: Optimizer, seeds: Sequence[int]) -> _Trainer:
        """The per-step hook of ``ck.train(..., parallel=self)``; ``seeds`` are the runs'
        seeds (one shared seed: every run draws the same numbers)."""
        return _Trainer(self, model, optimizer, seeds)

    def __repr__(self) -> str:
        parts = [f"workers={self.workers}"]
        if self.mode == "asynchronous":
            parts.append(f"staleness={self.staleness}")
            if self.delays != "fixed":
                parts.append(f"delays={self.delays!r}")
        elif self.mode == "local":
            parts.append(f"period={self.period}")
        if self.mode != "asynchronous":
            parts.append(f"topology={self.topology!r}")
        if self.compressor is not None:
            parts.append(f"compressor={self.compressor!r}")
        if self.error_feedback != "none":
            parts.append(f"error_feedback={self.error_feedback!r}")
        name = {"synchronous": "synchronous", "asynchronous": "asynchronous", "local": "local_sgd"}
        return f"parallel.{name[self.mode]}({', '.join(parts)})"


def synchronous(
    workers: int,
    *,
    topology: str = "ring",
    compressor: Compressor | None = None,
    error_feedback: bool | str = False,
    shards: Sequence[int] | None = None,
    batch_sizes: Sequence[int] | None = None,
    network: Network | None = None,
    seconds_per_example: float | None = None,
) -> DataParallel:
    """Synchronous data parallelism: all-reduce (``topology="ring"``) or a parameter server.

    Every step the workers' messages are averaged with weights proportional to their minibatch
    sizes, so that without compression the step equals one SGD step on the union of the K
    minibatches. See :class:`DataParallel` for the arguments.

    Examples
    --------
    >>> import convexkit as ck
    >>> ck.parallel.synchronous(8, compressor=ck.parallel.sign(), error_feedback="ef21")
    parallel.synchronous(workers=8, topology='ring', compressor=parallel.sign(), ...)
    """
    return DataParallel(
        workers,
        "synchronous",
        topology,
        compressor,
        error_feedback,
        shards=shards,
        batch_sizes=batch_sizes,
        network=network if network is not None else Network(),
        seconds_per_example=seconds_per_example,
    )


def asynchronous(
    workers: int,
    staleness: int | Sequence[int] | None = None,
    *,
    delays: str | Sequence[float] = "fixed",
    compressor: Compressor | None = None,
    error_feedback: bool | str = False,
    shards: Sequence[int] | None = None,
    batch_sizes: Sequence[int] | None = None,
    network: Network | None = None,
    seconds_per_example: float | None = None,
) -> DataParallel:
    """Asynchronous updates through a parameter server, with stale gradients.

    At step t worker k's gradient was computed at ``x_{t - tau}``: ``tau = staleness`` for
    ``delays="fixed"`` (one value per run when ``staleness`` is a sequence; 1 by default),
    uniform on 0 .. staleness for ``"uniform"``, or drawn from ``delays`` = (p_0, p_1, ...),
    the probabilities of the delays 0, 1, ... (``staleness`` is then ``len(delays) - 1``).
    Delays are drawn independently per run, worker and step. See :class:`DataParallel` for
    the other arguments.
    """
    if isinstance(delays, str):
        staleness = 1 if staleness is None else staleness
    else:
        delays = tuple(np.asarray(delays, dtype=float).reshape(-1).tolist())
        staleness = max(len(delays) - 1, 0) if staleness is None else staleness
    return DataParallel(
        workers,
        "asynchronous",
        "parameter_server",
        compressor,
        error_feedback,
        staleness=staleness,
        delays=delays,
        shards=shards,
        batch_sizes=batch_sizes,
        network=network if network is not None else Network(),
        seconds_per_example=seconds_per_example,
    )


def local_sgd(
    workers: int,
    period: int,
    *,
    topology: str = "ring",
    compressor: Compressor | None = None,
    error_feedback: bool | str = False,
    shards: Sequence[int] | None = None,
    batch_sizes: Sequence[int] | None = None,
    network: Network | None = None,
    seconds_per_example: float | None = None,
) -> DataParallel:
    """Local SGD: each worker steps on its own iterate and the iterates are averaged (weights
    as in :func:`synchronous`) every ``period`` steps. The optimizer's state stays local. The
    recorded iterate is the weighted average of the workers' iterates (the shared point right
    after each average)."""
    return DataParallel(
        workers,
        "local",
        topology,
        compressor,
        error_feedback,
        period=period,
        shards=shards,
        batch_sizes=batch_sizes,
        network=network if network is not None else Network(),
        seconds_per_example=seconds_per_example,
    )


def shard_sizes(n: int, workers: int) -> np.ndarray:
    """Sizes of K contiguous shards of n examples, as equal as possible (the first n mod K
    shards one larger)."""
    n = check_int("n", n, minimum=1)
    k = check_int("workers", workers, minimum=1)
    if k > n:
        raise invalid("workers", workers, f"at most the number of examples n = {n}")
    return np.full(k, n // k) + (np.arange(k) < n % k)


# --------------------------------------------------------------------------- objective


class WorkerQuadratics:
    """Heterogeneous workers in closed form: worker k minimizes ``f_k(x) = h_k |x - c_k|^2 / 2``.

    The objective is ``f = sum_k w_k f_k``, with minimizer ``sum_k w_k h_k c_k / sum_k w_k h_k``.
    At that point the workers' own gradients ``h_k (x* - c_k)`` differ from zero, which is
    what makes compression without error feedback (and local SGD) drift. As an oracle
    (``.grad``, ``.value``) it also runs with :func:`convexkit.run`.

    Parameters
    ----------
    centers : array_like of shape (K, d)
    curvature : float or array_like of shape (K,)
        h_k > 0.
    weights : array_like of shape (K,), optional
        w_k >= 0 (normalized to sum to 1); equal by default.
    """

    def __init__(self, centers: Any, curvature: Any = 1.0, weights: Any = None):
        c = np.asarray(centers, dtype=np.float64)
        if c.ndim != 2 or 0 in c.shape or not np.all(np.isfinite(c)):
            raise invalid("centers", centers, "a finite array of shape (K, d)")
        k = c.shape[0]
        h = np.broadcast_to(np.asarray(curvature, dtype=np.float64), (k,)).copy()
        if np.shape(curvature) not in ((), (k,)) or not np.all(np.isfinite(h)) or np.any(h <= 0):
            raise invalid("curvature", curvature, f"a positive number or {k} positive numbers")
        w = np.full(k, 1.0 / k) if weights is None else np.asarray(weights, dtype=np.float64)
        if w.shape != (k,) or not np.all(np.isfinite(w)) or np.any(w < 0) or w.sum() <= 0:
            raise invalid("weights", weights, f"{k} non-negative numbers, not all zero")
        self.centers, self.curvature, self.weights = c, h, w / w.sum()
        self._cache: dict[tuple, tuple[Any, Any, Any]] = {}

    @property
    def workers(self) -> int:
        """K."""
        return self.centers.shape[0]

    def minimizer(self) -> np.ndarray:
        """The minimizer of f, shape (d,)."""
        wh = self.weights * self.curvature
        return (wh[:, None] * self.centers).sum(axis=0) / wh.sum()

    def _arrays(self, like: Any) -> tuple[Any, Any, Any]:
        xp = array_namespace(like)
        key = (namespace_name(xp), str(like.dtype), str(device_of(like)))
        if key not in self._cache:
            device = device_of(like)
            self._cache[key] = tuple(
                asarray(a, xp, dtype=like.dtype, device=device)
                for a in (self.centers, self.curvature, self.weights)
            )
        return self._cache[key]

    def worker_grad(self, points: Any) -> Any:
        """Each worker's gradient at its own point: points (B, K, d) -> (B, K, d)."""
        xp = array_namespace(points)
        c, h, _ = self._arrays(points)
        return xp.reshape(h, (1, -1, 1)) * (points - c[None, ...])

    def grad(self, x: Any) -> Any:
        """Gradient of f at x (B, d)."""
        xp = array_namespace(x)
        c, h, w = self._arrays(x)
        wh = xp.reshape(w * h, (1, -1, 1))
        return xp.sum(wh * (x[:, None, :] - c[None, ...]), axis=1)

    def value(self, x: Any) -> Any:
        """f at x (B, d), shape (B,)."""
        xp = array_namespace(x)
        c, h, w = self._arrays(x)
        r = x[:, None, :] - c[None, ...]
        return xp.sum(xp.reshape(w * h, (1, -1)) * xp.sum(r * r, axis=2), axis=1) / 2

    def __getstate__(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if k != "_cache"}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._cache = {}

    def __repr__(self) -> str:
        return f"WorkerQuadratics(workers={self.workers}, d={self.centers.shape[1]})"


# --------------------------------------------------------------------------- trace


@dataclass(repr=False)
class ParallelTrace(Trace):
    """A :class:`~convexkit.simulate.Trace` with the communication and the simulated clock.

    Attributes
    ----------
    bytes_sent : numpy.ndarray, shape (steps, K)
        Bytes each worker sent at each step.
    compute_seconds : numpy.ndarray, shape (steps, K)
        Each worker's compute time at each step (from ``seconds_per_example``, or measured).
    communication_seconds : numpy.ndarray, shape (steps,)
        Time of each step's exchange in the alpha-beta model.
    seconds : numpy.ndarray, shape (steps + 1,)
        Simulated wall clock at the start of each step and at the end.
    delays : numpy.ndarray of int, shape (steps, B, K), or None
        Asynchronous mode: the delay of every gradient.
    scheme : DataParallel or None
    """

    bytes_sent: Any = None
    compute_seconds: Any = None
    communication_seconds: Any = None
    seconds: Any = None
    delays: Any = None
    scheme: Any = None

    @property
    def bytes_total(self) -> np.ndarray:
        """Bytes sent by all workers together up to each step, shape (steps + 1,)."""
        return np.concatenate([[0.0], np.cumsum(self.bytes_sent.sum(axis=1))])

    def to_numpy(self) -> ParallelTrace:
        """A copy with every array moved to NumPy on the host."""
        base = Trace.to_numpy(self)
        return ParallelTrace(
            **{name: getattr(base, name) for name in Trace.__dataclass_fields__},
            bytes_sent=self.bytes_sent,
            compute_seconds=self.compute_seconds,
            communication_seconds=self.communication_seconds,
            seconds=self.seconds,
            delays=self.delays,
            scheme=self.scheme,
        )

    def __repr__(self) -> str:
        text = Trace.__repr__(self)[:-1]
        sent = float(self.bytes_sent.sum()) if self.bytes_sent is not None else 0.0
        clock = float(self.seconds[-1]) if self.seconds is not None else 0.0
        return f"{text},\n      {self.scheme!r}: {sent:.4g} bytes sent, {clock:.4g} s simulated)"


# --------------------------------------------------------------------------- randomness


def _counter_uniform(streams: Any, purpose: int, counters: np.ndarray, count: int) -> Any:
    """Uniform numbers of shape (B, len(counters), count): the stream of ``_Streams.uniform``
    with one counter per middle index (a worker's epoch, say)."""
    hx = streams.hx
    key = _sim._python_splitmix(streams.seed + _sim._python_splitmix(purpose * _sim._K_COUNTER))
    with np.errstate(over="ignore"):
        spread = np.asarray(counters, dtype=np.uint64) * np.uint64(_sim._K_COUNTER)
        h = _sim._splitmix(
            hx, streams.trajectories * hx.uint64(_sim._K_TRAJECTORY) + hx.uint64(key)
        )
        h = _sim._splitmix(
            hx, hx.reshape(h, (-1, 1, 1)) + hx.reshape(hx.asarray(spread), (1, -1, 1))
        )
        components = hx.reshape(hx.arange(count, dtype=hx.uint64), (1, 1, -1))
        h = _sim._splitmix(hx, h + components * hx.uint64(_sim._K_COMPONENT))
    return (h >> hx.uint64(11)).astype(hx.float64) * (2.0**-53)


class _StreamRandom:
    """The ``rng`` a stochastic compressor draws from: counter-based uniforms keyed by (seed,
    run, step, position), so a run's compression does not depend on the rest of the batch."""

    def __init__(self, streams: Any, counter: int, xp: Any, dtype: Any, device: Any):
        self.streams, self.counter = streams, counter
        self.xp, self.dtype, self.device = xp, dtype, device

    def uniform(self, shape: tuple[int, ...]) -> Any:
        count = int(np.prod(shape[1:]))
        u = self.streams.uniform(_PURPOSE_COMPRESS, self.counter, count)
        u = self.streams.hx.reshape(u, tuple(shape))
        return _sim._to_namespace(u, self.xp, self.dtype, self.device)


# --------------------------------------------------------------------------- sampling


class _ShardSampler:
    """Minibatch indices of every worker, (B, K, b_max), each worker within its own shard.

    Entries past a worker's own batch size b_k are padding (they repeat a valid index and get
    weight zero)."""

    def __init__(self, finite_sum: FiniteSum, shards: np.ndarray, sizes: np.ndarray, streams):
        self.n = shards
        self.offsets = np.concatenate([[0], np.cumsum(shards)[:-1]])
        self.sizes = sizes
        self.b = int(sizes.max())
        self.k = shards.size
        self.replace = finite_sum.replace
        self.full = finite_sum.batch_size is None
        self.streams = streams
        self.hx = streams.hx if streams is not None else np
        positions = np.arange(self.b)[None, :]
        self.valid = positions < sizes[:, None]  # (K, b_max)
        # padding repeats the worker's first position, which is always valid
        self.positions = np.where(self.valid, positions, 0)
        self._permutations: dict[tuple[int, ...], Any] = {}
        if self.full:
            self._fixed = self.hx.asarray((self.offsets[:, None] + self.positions)[None, ...])

    def _permutation(self, epochs: np.ndarray) -> Any:
        key = tuple(epochs.tolist())
        if key not in self._permutations:
            hx = self.hx
            counters = epochs * self.k + np.arange(self.k)
            keys = _counter_uniform(self.streams, _sim._PURPOSE_PERMUTATION, counters, self.n.max())
            inside = hx.asarray((np.arange(self.n.max())[None, :] < self.n[:, None])[None, ...])
            order = hx.argsort(hx.where(inside, keys, 2.0), axis=2)
            if len(self._permutations) > 4:
                self._permutations.pop(next(iter(self._permutations)))
            self._permutations[key] = order
        return self._permutations[key]

    def indices(self, t: int, rows: int) -> Any:
        hx = self.hx
        if self.full:
            return hx.broadcast_to(self._fixed, (rows, self.k, self.b))
        if self.replace:
            u = self.streams.uniform(_sim._PURPOSE_WITH_REPLACEMENT, t, self.k * self.b)
            u = hx.reshape(u, (rows, self.k, self.b))
            n = hx.asarray(self.n[None, :, None])
            local = hx.minimum((u * n).astype(hx.int64), n - 1)
            local = hx.where(hx.asarray(self.valid[None, ...]), local, 0)
        else:
            positions = t * self.sizes[:, None] + self.positions  # (K, b_max)
            epochs = positions // self.n[:, None]
            within = hx.asarray(
                np.broadcast_to((positions % self.n[:, None])[None], (rows, self.k, self.b))
            )
            first = epochs[:, 0]
            now = hx.take_along_axis(self._permutation(first), within, axis=2)
            later = hx.take_along_axis(self._permutation(first + 1), within, axis=2)
            local = hx.where(hx.asarray((epochs == first[:, None])[None, ...]), now, later)
        return local + hx.asarray(self.offsets[None, :, None])


# --------------------------------------------------------------------------- the engine


class _Engine:
    """State and one step of a scheme for B runs of K workers on d parameters."""

    def __init__(
        self,
        scheme: DataParallel,
        optimizer: Optimizer,
        x: Any,
        weights: np.ndarray,
        sizes: np.ndarray,
        streams: Any,
        xp: Any,
        dtype: Any,
        device: Any,
        affine: WorkerQuadratics | None = None,
    ):
        self.scheme, self.optimizer = scheme, optimizer
        self.xp, self.dtype, self.device = xp, dtype, device
        self.B, self.d = int(x.shape[0]), int(x.shape[1])
        self.K = scheme.workers
        self.weights, self.sizes = weights, sizes
        self.streams = streams
        self.cost = scheme.round_cost(self.d)
        self.error = None  # (B, K, d): classic error, or EF21's gradient estimates
        self.buffer = None
        self.local = None
        self.local_state = None
        self.anchor = None
        self.bytes_sent: list[np.ndarray] = []
        self.compute: list[np.ndarray] = []
        self.communication: list[float] = []
        self.delays: list[np.ndarray] = []
        self.sparse = self._sparse_path(affine)
        self.affine = affine if self.sparse and scheme.mode == "synchronous" else None
        if scheme.mode == "asynchronous":
            taus = scheme.staleness
            if isinstance(taus, tuple) and len(taus) not in (1, self.B):
                raise invalid("staleness", taus, f"one delay per run ({self.B}) or one for all")
            self.taus = np.broadcast_to(np.asarray(taus, dtype=np.int64), (self.B,))
            self.buffer = xp.empty(
                (scheme.max_staleness + 1, self.B, self.d), dtype=dtype, **_sim._device_kw(device)
            )
            if not isinstance(scheme.delays, str):
                self.cdf = np.cumsum(np.asarray(scheme.delays))

    def _sparse_path(self, affine: WorkerQuadratics | None) -> bool:
        """Top-k with classic error feedback on NumPy: sparse messages, scatter-add, reused
        buffers (and, for WorkerQuadratics, the gradient fused into the selection)."""
        c = self.scheme.compressor
        if not (
            c is not None
            and c.name == "topk"
            and self.scheme.error_feedback == "classic"
            and self.xp is np
            and c.params["k"] <= self.d
        ):
            return False
        from ..kernels.selection import sparse_eligible

        if not sparse_eligible(np.empty((1, self.d), dtype=self.dtype)):
            return False
        k = c.params["k"]
        rows = self.B * self.K
        self.values = np.empty((rows, k), dtype=self.dtype)
        self.indices = np.empty((rows, k), dtype=np.int64)
        if affine is not None and self.scheme.mode == "synchronous":
            self.centers = np.ascontiguousarray(affine.centers, dtype=self.dtype)
            self.curvature = np.ascontiguousarray(affine.curvature, dtype=self.dtype)
        return True

    # ---- compression and averaging

    def _weights(self, weights: np.ndarray) -> Any:
        return asarray(
            np.reshape(weights, (1, -1, 1)), self.xp, dtype=self.dtype, device=self.device
        )

    def _exchange(self, messages: Any, t: int, weights: np.ndarray) -> Any:
        """The weighted average over workers of what the server decodes, shape (B, d)."""
        xp = self.xp
        compressor = self.scheme.compressor
        feedback = self.scheme.error_feedback
        if compressor is None:
            decoded = messages
        else:
            rng = None
            if compressor.name in _STOCHASTIC:
                rng = _StreamRandom(self.streams, t, xp, self.dtype, self.device)
            if feedback != "none" and self.error is None:
                self.error = xp.zeros_like(messages)
            if feedback == "none":
                decoded = compressor(messages, rng)
            elif feedback == "classic":
                decoded, self.error = compress_with_feedback(compressor, messages, self.error, rng)
            else:
                self.error = self.error + compressor(messages - self.error, rng)
                decoded = self.error
        return xp.sum(self._weights(weights) * decoded, axis=1)

    def _sparse_exchange(self, messages: Any, x: Any, weights: np.ndarray) -> np.ndarray:
        from ..kernels.selection import scatter_messages, topk_sparse

        k = self.scheme.compressor.params["k"]
        rows = self.B * self.K
        if self.error is None:
            self.error = np.zeros((self.B, self.K, self.d), dtype=self.dtype)
        error = self.error.reshape(rows, self.d)
        if messages is None:
            failed = topk_sparse(
                k,
                self.values,
                self.indices,
                error,
                x=np.ascontiguousarray(x),
                centers=self.centers,
                curvature=self.curvature,
            )
        else:
            flat = np.ascontiguousarray(messages).reshape(rows, self.d)
            failed = topk_sparse(k, self.values, self.indices, error, gradient=flat)
        w = weights.astype(self.dtype)
        out = np.empty((self.B, self.d), dtype=self.dtype)
        if not failed.any():
            return scatter_messages(self.values, self.indices, w, out)
        # rows with fewer than k non-NaN entries (diverged runs) hold g + e: the generic path
        bad = np.flatnonzero(failed)
        corrected = error[bad]
        decoded = self.scheme.compressor(corrected)
        error[bad] = corrected - decoded
        self.values[bad] = 0
        self.indices[bad] = 0
        scatter_messages(self.values, self.indices, w, out)
        np.add.at(out, bad // self.K, w[bad % self.K, None] * decoded)
        return out

    # ---- one step

    def _delays(self, t: int) -> np.ndarray:
        scheme = self.scheme
        if scheme.delays == "fixed":
            return np.broadcast_to(self.taus[:, None], (self.B, self.K))
        u = to_numpy(self.streams.uniform(_PURPOSE_DELAY, t, self.K))
        if scheme.delays == "uniform":
            top = self.taus[:, None]
            return np.minimum(np.floor(u * (top + 1)).astype(np.int64), top)
        return np.minimum(np.searchsorted(self.cdf, u, side="right"), self.cdf.size - 1)

    def step(
        self,
        x: Any,
        state: tuple,
        t: int,
        gradients: Callable[[Any], Any],
        weights: np.ndarray | None = None,
        sizes: np.ndarray | None = None,
    ) -> tuple[Any, tuple]:
        """One step from ``x``: returns (x_next, optimizer state). ``gradients(points)`` maps
        the workers' points (B, K, d) to their gradients (B, K, d)."""
        xp = self.xp
        scheme = self.scheme
        weights = self.weights if weights is None else weights
        sizes = self.sizes if sizes is None else sizes
        B, K, d = self.B, self.K, self.d
        communicates = True
        start = time.perf_counter()
        if scheme.mode == "local":
            if self.local is None:
                self.anchor = x
                self.local = xp.broadcast_to(xp.reshape(x, (B, 1, d)), (B, K, d))
                self.local_state = self.optimizer.init(self.local)
            grads = _synchronized(xp, gradients(self.local))
            self.local, self.local_state = self.optimizer.update(
                self.local, grads, self.local_state, t
            )
            communicates = (t + 1) % scheme.period == 0
            if communicates:
                change = self.local - xp.reshape(self.anchor, (B, 1, d))
                if self.sparse:
                    average = self._sparse_exchange(change, None, weights)
                else:
                    average = self._exchange(change, t, weights)
                self.anchor = self.anchor + average
                self.local = xp.broadcast_to(xp.reshape(self.anchor, (B, 1, d)), (B, K, d))
                x_next = self.anchor
            else:
                x_next = xp.sum(self._weights(weights) * self.local, axis=1)
            elapsed = time.perf_counter() - start
            state_next = state
        else:
            if scheme.mode == "asynchronous":
                slots = scheme.max_staleness + 1
                self.buffer[t % slots, ...] = x
                delay = self._delays(t)
                self.delays.append(np.array(delay, dtype=np.int16 if slots < 2**15 else np.int64))
                slot = np.maximum(t - delay, 0) % slots
                flat = (slot * B + np.arange(B)[:, None]).reshape(-1)
                index = asarray(flat, xp, dtype=xp.int64, device=self.device)
                stacked = xp.reshape(self.buffer, (slots * B, d))
                points = xp.reshape(xp.take(stacked, index, axis=0), (B, K, d))
            else:
                points = xp.broadcast_to(xp.reshape(x, (B, 1, d)), (B, K, d))
            if self.affine is not None:
                average = self._sparse_exchange(None, x, weights)
            else:
                grads = _synchronized(xp, gradients(points))
                if self.sparse:
                    average = self._sparse_exchange(grads, None, weights)
                else:
                    average = self._exchange(grads, t, weights)
            average = _synchronized(xp, average)
            elapsed = time.perf_counter() - start
            x_next, state_next = self.optimizer.update(x, average, state, t)
        self._account(elapsed, sizes, communicates)
        return x_next, state_next

    def freeze(self, frozen: Any) -> None:
        """Keep diverged runs' local iterates where they are (local SGD)."""
        if self.local is not None:
            xp = self.xp
            mask = xp.reshape(frozen, (self.B, 1, 1))
            kept = xp.broadcast_to(xp.reshape(self.anchor, (self.B, 1, self.d)), self.local.shape)
            self.local = xp.where(mask, kept, self.local)

    def _account(self, elapsed: float, sizes: np.ndarray, communicates: bool) -> None:
        scheme = self.scheme
        if scheme.seconds_per_example is not None:
            per_example = scheme.seconds_per_example
        else:
            per_example = elapsed / (self.B * float(np.sum(sizes)))
        self.compute.append(per_example * np.asarray(sizes, dtype=float))
        if communicates:
            self.bytes_sent.append(self.cost.bytes_per_worker)
            self.communication.append(self.cost.seconds)
        else:
            self.bytes_sent.append(np.zeros(self.K))
            self.communication.append(0.0)

    def records(self, steps: int) -> dict[str, Any]:
        """Communication and clock arrays of the steps taken."""
        K = self.K
        compute = np.asarray(self.compute).reshape(steps, K)
        communication = np.asarray(self.communication, dtype=float).reshape(steps)
        if self.scheme.mode == "asynchronous":
            per_step = compute.mean(axis=1) if steps else np.zeros(0)
        else:
            per_step = compute.max(axis=1) if steps else np.zeros(0)
        seconds = np.concatenate([[0.0], np.cumsum(per_step + communication)])
        delays = None
        if self.scheme.mode == "asynchronous":
            delays = (
                np.stack(self.delays) if self.delays else np.zeros((0, self.B, K), dtype=np.int16)
            )
        return {
            "bytes_sent": np.asarray(self.bytes_sent, dtype=float).reshape(steps, K),
            "compute_seconds": compute,
            "communication_seconds": communication,
            "seconds": seconds,
            "delays": delays,
        }


def _synchronized(xp: Any, value: Any) -> Any:
    """Wait for queued GPU work, so that measured compute times are honest."""
    if array_api_compat.is_cupy_namespace(xp):  # pragma: no cover - needs a GPU
        import cupy

        cupy.cuda.get_current_stream().synchronize()
    return value


def _gradients_only(optimizer: Optimizer) -> None:
    if set(optimizer.needs) - {"grad"}:
        raise invalid(
            "optimizer",
            optimizer,
            "an optimizer that needs only gradients (data-parallel workers exchange "
            f"gradients; this one needs {sorted(optimizer.needs)})",
        )


# --------------------------------------------------------------------------- simulate


def _worker_plan(
    objective: Any,
    problem: Any,
    wide: Any,
    scheme: DataParallel,
    streams: Any,
    sigma: Any,
    rows: int,
    d: int,
    xp: Any,
    dtype: Any,
    device: Any,
) -> tuple[Callable[[Any, int], Any], np.ndarray, np.ndarray]:
    """(gradients(points, t), weights (K,), minibatch sizes (K,)) of the workers."""
    K = scheme.workers
    finite_sum = problem.finite_sum if problem is not None else None
    if isinstance(objective, WorkerQuadratics):
        if objective.workers != K:
            raise invalid(
                "objective", objective, f"WorkerQuadratics with one center per worker ({K})"
            )
        if objective.centers.shape[1] != d:
            raise invalid(
                "x0", f"<points of dimension {d}>", f"dimension {objective.centers.shape[1]}"
            )
        sizes = np.ones(K, dtype=np.int64)
        weights = objective.weights

        def base(points: Any, t: int) -> Any:
            return objective.worker_grad(points)

    elif finite_sum is not None:
        shards = np.asarray(
            scheme.shards if scheme.shards is not None else shard_sizes(finite_sum.n, K)
        )
        if int(shards.sum()) != finite_sum.n:
            raise invalid(
                "shards", scheme.shards, f"shard sizes adding up to n = {finite_sum.n} examples"
            )
        if scheme.batch_sizes is not None:
            sizes = np.asarray(scheme.batch_sizes)
        elif finite_sum.batch_size is None:
            sizes = shards.copy()
        else:
            sizes = np.full(K, finite_sum.batch_size)
        if finite_sum.batch_size is None and not np.array_equal(sizes, shards):
            raise invalid(
                "batch_sizes",
                scheme.batch_sizes,
                "None or the shard sizes when the FiniteSum has no batch size (full shards)",
            )
        if not finite_sum.replace and np.any(sizes > shards):
            raise invalid(
                "batch_sizes",
                tuple(sizes.tolist()),
                f"at most the shard sizes {tuple(shards.tolist())} without replacement",
            )
        sampler = _ShardSampler(finite_sum, shards, sizes, streams)
        weights = sizes / sizes.sum()
        b = sampler.b
        uniform = bool(np.all(sizes == b))
        mask = None
        if not uniform:
            scale = np.where(sampler.valid, 1.0 / sizes[:, None], 0.0)
            mask = asarray(scale.reshape(1, K, b, 1), xp, dtype=dtype, device=device)

        def base(points: Any, t: int) -> Any:
            idx = sampler.indices(t, rows)
            if not (xp is np or array_api_compat.is_cupy_namespace(xp)):
                idx = asarray(idx, xp, dtype=xp.int64, device=device)
            flat = finite_sum.grad_i(
                xp.reshape(points, (rows * K, d)), xp.reshape(idx, (rows * K, b))
            )
            if uniform:
                return xp.reshape(xp.mean(flat, axis=1), (rows, K, d))
            return xp.sum(xp.reshape(flat, (rows, K, b, d)) * mask, axis=2)

    else:
        if scheme.shards is not None or scheme.batch_sizes is not None:
            raise invalid(
                "shards", scheme.shards, "None unless the objective is a FiniteSum (examples)"
            )
        sizes = np.ones(K, dtype=np.int64)
        weights = np.full(K, 1.0 / K)

        def base(points: Any, t: int) -> Any:
            return xp.reshape(wide.grad(xp.reshape(points, (rows * K, d)), t), (rows, K, d))

    if sigma is None:
        gradients = base
    else:
        hx = streams.hx
        scale = hx.reshape(
            hx.asarray(np.broadcast_to(np.asarray(sigma, dtype=np.float64), (rows,))), (rows, 1, 1)
        )

        def gradients(points: Any, t: int) -> Any:
            draw = scale * hx.reshape(streams.normal(_sim._PURPOSE_NOISE, t, K * d), (rows, K, d))
            return base(points, t) + _sim._to_namespace(draw, xp, dtype, device)

    return gradients, np.asarray(weights, dtype=np.float64), sizes


def _wide_params(params: Mapping[str, Any] | None, workers: int) -> Mapping[str, Any] | None:
    """A Problem's per-run parameters repeated for every worker (run-major)."""
    if not params:
        return params
    wide = {}
    for name, value in params.items():
        host = to_numpy(value) if hasattr(value, "shape") else np.asarray(value)
        wide[name] = np.repeat(host, workers, axis=0) if host.ndim == 1 and host.size > 1 else value
    return wide


def simulate(
    objective: Any,
    optimizer: Optimizer,
    x0: Any,
    steps: int,
    scheme: DataParallel,
    *,
    noise: Any = None,
    seed: Any = None,
    xp: Any = None,
    dtype: Any = None,
    device: Any = None,
    record: str | Sequence[int] = "all",
    batch: int | None = None,
    params: Mapping[str, Any] | None = None,
    online: bool | None = None,
    threshold: float = 1e10,
    stream_offset: int = 0,
) -> ParallelTrace:
    """Run ``optimizer`` with K simulated workers for a batch of runs at once.

    The arguments are those of :func:`convexkit.run`, plus the scheme. The objective is a
    FiniteSum (sharded over the workers), a :class:`WorkerQuadratics`, or any objective of
    :func:`convexkit.run` that every worker evaluates at its own point (a gradient function
    must then accept any number of rows: it sees the B*K workers' points at once).

    Returns
    -------
    ParallelTrace
        ``x`` and ``loss`` are the server's iterate (for local SGD, the workers' weighted
        average); ``bytes_sent``, ``compute_seconds``, ``communication_seconds``,
        ``seconds`` and (asynchronous) ``delays`` record the communication.

    Examples
    --------
    Four workers on sharded least squares, averaged synchronously:

    >>> import numpy as np, convexkit as ck
    >>> A = np.random.default_rng(0).normal(size=(40, 3)); y = A @ np.ones(3)
    >>> def grad_i(x, idx):
    ...     rows = A[idx]
    ...     return (np.einsum("kbd,kd->kb", rows, x) - y[idx])[..., None] * rows
    >>> data = ck.FiniteSum(grad_i, 40, batch_size=5)
    >>> trace = ck.run(data, ck.optim.sgd(0.1), np.zeros(3), 300, seed=1,
    ...                parallel=ck.parallel.synchronous(4))
    >>> bool(np.allclose(trace.x_final, 1.0, atol=1e-6)), trace.bytes_sent.shape
    (True, (300, 4))
    """
    if not isinstance(scheme, DataParallel):
        raise invalid(
            "parallel", scheme, "a scheme of ck.parallel (synchronous, asynchronous, ...)"
        )
    steps = check_int("steps", steps, minimum=0)
    optimizer = _sim._check_optimizer(optimizer)
    _gradients_only(optimizer)
    if batch is not None:
        batch = check_int("batch", batch, minimum=1)
    threshold = check_real("threshold", threshold, low=0.0, low_open=True, allow_inf=True)
    stream_offset = check_int("stream_offset", stream_offset, minimum=0)
    mode, recorded = _sim._check_record(record, steps)
    sigma = _sim._check_sigma(noise)
    if batch is None and isinstance(scheme.staleness, tuple) and len(scheme.staleness) > 1:
        batch = len(scheme.staleness)

    xp, dtype, device = _sim._resolve_arrays(objective, x0, xp, dtype, device)
    threshold = _sim._finite_bound(threshold, dtype)

    quadratics = isinstance(objective, WorkerQuadratics)
    problem = wide = None
    if quadratics:
        if params is not None:
            raise invalid("params", params, "None for WorkerQuadratics")
        value = objective.value
    else:
        problem = _sim._objective(objective, xp, dtype, device, params, online)
        value = problem.value
    x = _sim._initial_points(x0, xp, dtype, device, batch, optimizer, sigma, params)
    device = device_of(x) if device is None else device
    rows, d = int(x.shape[0]), int(x.shape[1])
    K = scheme.workers
    if problem is not None and problem.finite_sum is None:
        widened = _wide_params(params, K)
        same = widened is params
        wide = problem if same else _sim._objective(objective, xp, dtype, device, widened, online)

    hx = _sim._host_module(xp)
    compressor = scheme.compressor
    needs_streams = (
        sigma is not None
        or (problem is not None and problem.finite_sum is not None)
        or (compressor is not None and compressor.name in _STOCHASTIC)
        or (scheme.mode == "asynchronous" and scheme.delays != "fixed")
    )
    seed_value = _sim._resolve_seed(seed) if needs_streams else None
    streams = (
        None
        if seed_value is None
        else _sim._Streams(seed_value, np.arange(stream_offset, stream_offset + rows), hx)
    )
    gradients, weights, sizes = _worker_plan(
        objective, problem, wide, scheme, streams, sigma, rows, d, xp, dtype, device
    )
    engine = _Engine(
        scheme,
        optimizer,
        x,
        weights,
        sizes,
        streams,
        xp,
        dtype,
        device,
        affine=objective if quadratics else None,
    )

    def loss_at(point: Any, t: int) -> Any:
        values = value(point) if quadratics else value(point, t)
        _sim._check_value_shape(values, rows, "a value function", objective)
        return _sim._keep_dtype(xp, values, dtype)

    def advance(point: Any, state: Any, t: int) -> tuple[Any, Any]:
        return engine.step(point, state, t, lambda p, t=t: gradients(p, t))

    with np.errstate(all="ignore"):
        state = optimizer.init(x)
    done = _sim._iterate(
        x,
        state,
        steps,
        recorded,
        mode,
        loss_at if value is not None else None,
        advance,
        threshold,
        xp=xp,
        dtype=dtype,
        device=device,
        on_freeze=engine.freeze,
    )
    xs, losses, x, loss_final = done.xs, done.losses, done.x_final, done.loss_final
    diverged, diverged_at = done.diverged, done.diverged_at

    info = {
        "backend": namespace_name(xp),
        "device": None if device is None else str(device),
        "dtype": _sim._dtype_name(dtype),
        "path": "array, sparse top-k" if engine.sparse else "array",
        "objective": "worker quadratics" if quadratics else problem.kind,
        "noise": "none" if sigma is None else "gaussian",
        "sampling": "per worker"
        if quadratics
        else "shards: " + _sim._sampling_name(problem.finite_sum),
        "seed": seed_value,
        "stream_offset": stream_offset,
        "threshold": threshold,
        "parallel": repr(scheme),
        "workers": K,
        "exchange": engine.cost.scheme,
        "weights": weights,
    }
    return ParallelTrace(
        x=xs,
        loss=losses,
        t=recorded,
        x_final=x,
        loss_final=loss_final,
        diverged=diverged,
        diverged_at=diverged_at,
        steps=steps,
        record=mode,
        info=info,
        scheme=scheme,
        **engine.records(steps),
    )


# --------------------------------------------------------------------------- training


class _Trainer:
    """What ``ck.train(..., parallel=scheme)`` calls each step: each minibatch is split into K
    contiguous parts (sizes differing by at most one), one per worker, and the workers' model
    gradients go through the scheme's engine."""

    def __init__(
        self, scheme: DataParallel, model: Any, optimizer: Optimizer, seeds: Sequence[int]
    ):
        if scheme.shards is not None or scheme.batch_sizes is not None:
            raise invalid(
                "parallel",
                scheme,
                "a scheme without shards or batch_sizes: train splits each minibatch evenly",
            )
        _gradients_only(optimizer)
        self.scheme, self.model, self.optimizer = scheme, model, optimizer
        self.seeds = np.asarray(seeds, dtype=np.int64).reshape(-1)
        self.engine: _Engine | None = None
        self.steps = 0

    def check_batch(self, batch_size: int) -> None:
        """Every worker needs at least one example of each minibatch."""
        if batch_size < self.scheme.workers:
            raise invalid(
                "batch_size",
                batch_size,
                f"at least the number of workers ({self.scheme.workers}) with parallel=",
            )

    def step(self, params: Any, opt_state: tuple, X: Any, y: Any, step: int, rng: Any) -> tuple:
        """One data-parallel step on the minibatch (X, y); returns (params, opt_state)."""
        xp = array_namespace(params)
        K = self.scheme.workers
        B, P = int(params.shape[0]), int(params.shape[1])
        b = int(X.shape[-2])
        # parts as equal as possible; in a last, short minibatch some workers may get none
        sizes = np.full(K, b // K) + (np.arange(K) < b % K)
        if self.engine is None:
            needs = (
                self.scheme.compressor is not None and self.scheme.compressor.name in _STOCHASTIC
            ) or (self.scheme.mode == "asynchronous" and self.scheme.delays != "fixed")
            streams = None
            if needs:
                # keyed by each run's own seed, as the trainer's other random numbers are
                keys = np.broadcast_to(self.seeds, (B,))
                streams = _sim._Streams(_TRAIN_KEY, keys, _sim._host_module(xp))
            self.engine = _Engine(
                self.scheme,
                self.optimizer,
                params,
                sizes / b,
                sizes,
                streams,
                xp,
                params.dtype,
                device_of(params),
            )
        model = self.model
        groups = [(0, int(np.sum(sizes == sizes[0])))]
        if groups[0][1] < K:
            groups.append((groups[0][1], K))

        def gradients(points: Any) -> Any:
            parts = []
            for first, last in groups:  # at most two sizes of parts, never one per worker
                size = int(sizes[first])
                start = int(np.sum(sizes[:first]))
                count = last - first
                Xg = X[..., start : start + size * count, :]
                yg = y[..., start : start + size * count]
                if X.ndim == 2:
                    Xg = xp.broadcast_to(
                        xp.reshape(Xg, (1, count, size, -1)), (B, count, size, Xg.shape[-1])
                    )
                    yg = xp.broadcast_to(xp.reshape(yg, (1, count, size)), (B, count, size))
                Xg = xp.reshape(Xg, (B * count, size, X.shape[-1]))
                yg = xp.reshape(yg, (B * count, size))
                if size == 0:  # no example: nothing to send (its weight is zero too)
                    parts.append(xp.zeros((B, count, P), dtype=points.dtype, device=points.device))
                    continue
                theta = xp.reshape(points[:, first:last, :], (B * count, P))
                _, g = model.loss_and_grad(theta, Xg, yg, rng=rng)
                parts.append(xp.reshape(g, (B, count, P)))
            return parts[0] if len(parts) == 1 else xp.concat(parts, axis=1)

        params, opt_state = self.engine.step(
            params, opt_state, step, gradients, weights=sizes / b, sizes=sizes
        )
        self.steps += 1
        return params, opt_state

    def stats(self) -> dict[str, Any]:
        """Communication and simulated clock of the steps taken (see :class:`ParallelTrace`)."""
        if self.engine is None:
            return {}
        return {**self.engine.records(self.steps), "parallel": repr(self.scheme)}
