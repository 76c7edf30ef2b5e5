"""Data-parallel training simulation: workers as an array axis, compressors, communication cost."""

from .communication import (
    CommunicationCost,
    ModelParallelCost,
    Network,
    allgather_time,
    communication_cost,
    model_parallel_cost,
    parameter_server_time,
    ring_allreduce_bytes,
    ring_allreduce_time,
    simulate_ring_allreduce,
    speedup,
)
from .compression import (
    Compressor,
    cast,
    compress_with_feedback,
    identity,
    qsgd,
    randk,
    sign,
    terngrad,
    topk,
)

__all__ = [
    "CommunicationCost",
    "Compressor",
    "ModelParallelCost",
    "Network",
    "allgather_time",
    "cast",
    "communication_cost",
    "compress_with_feedback",
    "identity",
    "model_parallel_cost",
    "parameter_server_time",
    "qsgd",
    "randk",
    "ring_allreduce_bytes",
    "ring_allreduce_time",
    "sign",
    "simulate_ring_allreduce",
    "speedup",
    "terngrad",
    "topk",
]
