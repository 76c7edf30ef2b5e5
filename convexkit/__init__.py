"""convexkit: optimization theory for machine learning, derived exactly and checked by simulation.

``import convexkit as ck`` gives one flat namespace: ``ck.Problem``, ``ck.convexity``,
``ck.run``, ``ck.optim.adam``, ``ck.stability_region``, ... Names are loaded on first use, so
importing convexkit is quick and a session that never trains never imports the trainer.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

# public name -> (module, attribute); attribute None means the module itself
_PUBLIC: dict[str, tuple[str, str | None]] = {
    # symbolic
    "Problem": ("convexkit.symbolic.problem", "Problem"),
    "CriticalPoint": ("convexkit.symbolic.problem", "CriticalPoint"),
    "ParseError": ("convexkit.errors", "ParseError"),
    "convexity": ("convexkit.symbolic.convexity", "convexity"),
    "ConvexityReport": ("convexkit.symbolic.convexity", "ConvexityReport"),
    "lagrangian": ("convexkit.symbolic.constraints", "lagrangian"),
    "kkt": ("convexkit.symbolic.constraints", "kkt"),
    "KKTPoint": ("convexkit.symbolic.constraints", "KKTPoint"),
    "penalty": ("convexkit.symbolic.constraints", "penalty"),
    "sets": ("convexkit.symbolic.sets", None),
    # codegen
    "lambdify": ("convexkit.codegen", "lambdify"),
    "oracle": ("convexkit.codegen", "oracle"),
    "Oracle": ("convexkit.codegen", "Oracle"),
    # optimizers, schedules, running
    "optim": ("convexkit.optim", None),
    "schedules": ("convexkit.schedules", None),
    "run": ("convexkit.simulate", "run"),
    "sweep": ("convexkit.simulate", "sweep"),
    "Trace": ("convexkit.simulate", "Trace"),
    "FiniteSum": ("convexkit.simulate", "FiniteSum"),
    # theory and comparison
    "stability_region": ("convexkit.theory.stability", "stability_region"),
    "StabilityRegion": ("convexkit.theory.stability", "StabilityRegion"),
    "optimal_hyperparameters": ("convexkit.theory.tuning", "optimal_hyperparameters"),
    "bounds": ("convexkit.theory.bounds", None),
    "Bound": ("convexkit.theory.bounds", "Bound"),
    "empirical_rate": ("convexkit.comparison", "empirical_rate"),
    "compare": ("convexkit.comparison", "compare"),
    "Comparison": ("convexkit.comparison", "Comparison"),
    # training, precision, parallel
    "models": ("convexkit.models", None),
    "data": ("convexkit.data", None),
    "train": ("convexkit.training", "train"),
    "History": ("convexkit.training", "History"),
    "precision": ("convexkit.precision", None),
    "parallel": ("convexkit.parallel", None),
    # infrastructure
    "backend": ("convexkit.backend", None),
    "errors": ("convexkit.errors", None),
}

__all__ = sorted(_PUBLIC)


def __getattr__(name: str) -> Any:
    try:
        module_name, attribute = _PUBLIC[name]
    except KeyError:
        raise AttributeError(f"module 'convexkit' has no attribute {name!r}") from None
    module = importlib.import_module(module_name)
    value = module if attribute is None else getattr(module, attribute)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_PUBLIC))
