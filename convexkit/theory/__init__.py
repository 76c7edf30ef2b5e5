"""Theory derived from the update code: iteration maps, stability regions, optimal tuning and
the catalogue of proven bounds.

* :func:`iteration_map` runs an optimizer's own update on SymPy symbols for ``f = λx²/2`` and
  returns its iteration matrix and characteristic polynomial;
* :func:`stability_region` turns the polynomial into readable Jury / Schur–Cohn conditions and
  an exact and vectorized spectral radius;
* :func:`optimal_hyperparameters` minimizes the worst spectral radius over a spectrum [μ, L];
* :mod:`convexkit.theory.bounds` is the catalogue of proven results (``ck.bounds``).
"""

from . import bounds
from .bounds import Bound
from .iteration import (
    HeavyBallEquivalence,
    IterationMap,
    heavy_ball,
    heavy_ball_equivalence,
    iteration_map,
    symbolic_optimizer,
)
from .stability import StabilityRegion, delayed_gd_threshold, stability_region
from .tuning import Tuning, optimal_hyperparameters, worst_rate

__all__ = [
    "Bound",
    "HeavyBallEquivalence",
    "IterationMap",
    "StabilityRegion",
    "Tuning",
    "bounds",
    "delayed_gd_threshold",
    "heavy_ball",
    "heavy_ball_equivalence",
    "iteration_map",
    "optimal_hyperparameters",
    "stability_region",
    "symbolic_optimizer",
    "worst_rate",
]
