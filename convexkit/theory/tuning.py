"""Best constant hyperparameters on quadratics with spectrum in [μ, L], derived symbolically.

On ``f(x) = ½ xᵀQx`` with the eigenvalues of ``Q`` in ``[μ, L]`` a linear method's error
shrinks asymptotically like ``max_{λ ∈ [μ, L]} ρ(λ)``, the largest spectral radius of its
iteration matrix over the spectrum. The best constant hyperparameters minimise that maximum.

The minimax is found from the characteristic polynomial ``p(z; λ)`` of the method's own update
code by the equioscillation ansatz: the worst cases sit at the ends of the spectrum with equal
magnitude, the smallest curvature giving a root ``+r`` and the largest a root ``−r``; with k
hyperparameters the root at ``λ = μ`` is a k-fold root (the double-root condition for two):

    ∂ᵢp/∂zⁱ (r; μ) = 0  for i < k,      p(−r; L) = 0.

These k + 1 polynomial equations are solved exactly for the hyperparameters and ``r``; the
solution with ``0 < r < 1`` is the tuning, and ``r`` its rate. For gradient descent this is
``η = 2/(μ+L)``; for heavy-ball momentum Polyak's tuning (a double root at both ends); for
Nesterov's method ``η = 4/(3L+μ)``, ``β = (√(3κ+1) − 2)/(√(3κ+1) + 2)``, rate
``1 − 2/√(3κ+1)`` (Lessard, Recht and Packard 2016, section 2.2). The tests compare each with
a numerical minimax over a grid of hyperparameters and with simulation on random spectra.
"""

from __future__ import annotations

import functools
import numbers
from dataclasses import dataclass
from typing import Any

import numpy as np
import sympy as sp

from ..errors import check_choice, invalid
from .iteration import BETA, ETA, LAM, Z
from .stability import stability_region

__all__ = ["MU", "L_SMOOTH", "KAPPA", "Tuning", "optimal_hyperparameters", "worst_rate"]

MU = sp.Symbol("mu", positive=True)
L_SMOOTH = sp.Symbol("L", positive=True)
KAPPA = sp.Symbol("kappa", positive=True)

_METHODS = ("gd", "momentum", "nesterov", "heavy_ball")
_HYPER = {
    "gd": ((ETA, "lr"),),
    "momentum": ((ETA, "lr"), (BETA, "beta")),
    "nesterov": ((ETA, "lr"), (BETA, "beta")),
    "heavy_ball": ((ETA, "a"), (BETA, "b")),
}


@dataclass(frozen=True)
class Tuning:
    """Optimal constant hyperparameters for a spectrum in [μ, L].

    Attributes
    ----------
    method : str
        The method's name.
    hyperparameters : dict
        By the optimizer's argument names (``{"lr": ..., "beta": ...}``), evaluated at the
        given μ and L (floats, arrays, or SymPy expressions when μ, L are symbolic).
    rate : float, array or SymPy expression
        The worst-case spectral radius over [μ, L] they achieve.
    formulas : dict
        The same hyperparameters as SymPy expressions in the symbols ``mu`` and ``L``.
    rate_formula : SymPy expression
        The rate in ``mu`` and ``L``.
    rate_in_kappa : SymPy expression
        The rate in the condition number ``kappa = L/mu``.
    derivation : str
        The equations that were solved.
    """

    method: str
    hyperparameters: dict[str, Any]
    rate: Any
    formulas: dict[str, sp.Expr]
    rate_formula: sp.Expr
    rate_in_kappa: sp.Expr
    derivation: str

    def optimizer(self) -> Any:
        """The tuned optimizer, ready to run (``ck.optim.<method>(**hyperparameters)``)."""
        from .. import optim
        from .iteration import heavy_ball

        if self.method == "heavy_ball":
            return heavy_ball(**self.hyperparameters)
        return getattr(optim, self.method)(**self.hyperparameters)

    def __repr__(self) -> str:
        shown = ", ".join(f"{k}={_short(v)}" for k, v in self.hyperparameters.items())
        return f"Tuning({self.method}: {shown}; rate {_short(self.rate)} = {self.rate_in_kappa})"


def _short(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, np.ndarray):
        return f"<array {value.shape}>"
    return str(value)


def _simplest(expr: sp.Expr) -> sp.Expr:
    candidates = [expr, sp.simplify(expr), sp.factor(expr)]
    return min(candidates, key=sp.count_ops)


@functools.lru_cache(maxsize=8)
def _derive(method: str) -> tuple[dict[sp.Symbol, sp.Expr], sp.Expr, sp.Expr, str]:
    """Solve the equioscillation equations; results in the symbols ``mu`` and ``L``."""
    polynomial = stability_region(method).polynomial.as_expr()
    unknowns = [symbol for symbol, _ in _HYPER[method]]
    # μ = m², L = l² keeps every square root of the solution rational in m and l.
    m, l_root = sp.symbols("m l", positive=True)
    r = sp.Symbol("r", positive=True)
    at_mu = polynomial.subs(LAM, m**2)
    equations = [sp.diff(at_mu, Z, k).subs(Z, r) for k in range(len(unknowns))]
    equations.append(polynomial.subs(LAM, l_root**2).subs(Z, -r))
    solutions = sp.solve(equations, [*unknowns, r], dict=True)
    chosen = []
    for solution in solutions:
        sample = {m: 1, l_root: sp.Rational(7, 2)}  # κ = 49/4
        rate = solution[r].subs(sample)
        if (
            rate.is_real
            and 0 < rate < 1
            and all(solution[u].subs(sample).is_real for u in unknowns)
        ):
            chosen.append(solution)
    if len(chosen) != 1:
        raise invalid(
            "name",
            method,
            "a method whose minimax tuning the equioscillation equations determine; found "
            f"{len(chosen)} admissible solutions",
        )
    back = {m: sp.sqrt(MU), l_root: sp.sqrt(L_SMOOTH)}
    formulas = {u: _simplest(chosen[0][u]).subs(back) for u in unknowns}
    rate = _simplest(chosen[0][r]).subs(back)
    in_kappa = _simplest(sp.cancel(chosen[0][r].subs(l_root, sp.sqrt(KAPPA) * m)))
    text = ", ".join(f"{sp.sstr(e)} = 0" for e in equations)
    how = f"root +r of multiplicity {len(unknowns)} at lam = mu = m**2, root -r at lam = L = l**2"
    return formulas, rate, in_kappa, f"{how}: {text}"


def _as_values(name: str, value: Any) -> Any:
    if isinstance(value, sp.Basic):
        return value
    if isinstance(value, bool):
        raise invalid(name, value, "a positive number, an array of them, or a SymPy expression")
    if isinstance(value, numbers.Real):
        if not value > 0 or not np.isfinite(value):
            raise invalid(name, value, "a positive finite number")
        return float(value)
    array = np.asarray(value, dtype=float)
    if not np.all(np.isfinite(array)) or np.any(array <= 0):
        raise invalid(name, value, "positive finite values")
    return array


def optimal_hyperparameters(name: str, mu: Any, L: Any) -> Tuning:
    """Best constant hyperparameters on quadratics with spectrum in [mu, L], and their rate.

    Parameters
    ----------
    name : {"gd", "momentum", "nesterov", "heavy_ball"}
        The method (``"heavy_ball"`` is Polyak's form, hyperparameters ``a`` and ``b``).
    mu, L : float, array or SymPy expression
        Smallest and largest curvature, ``0 < mu <= L``; arrays broadcast.

    Returns
    -------
    Tuning
        ``gd``: ``lr = 2/(μ+L)``, rate ``(κ−1)/(κ+1)``. ``momentum``: ``lr = 4/(√L+√μ)²``,
        ``beta = ((√κ−1)/(√κ+1))²``, rate ``(√κ−1)/(√κ+1)``. ``nesterov``: ``lr = 4/(3L+μ)``,
        ``beta = (√(3κ+1)−2)/(√(3κ+1)+2)``, rate ``1 − 2/√(3κ+1)``. All derived from the
        characteristic polynomial of the update code (see the module notes).

    Examples
    --------
    >>> import convexkit as ck
    >>> t = ck.optimal_hyperparameters("momentum", mu=1.0, L=100.0)
    >>> round(t.rate, 6), round(t.hyperparameters["beta"], 6)
    (0.818182, 0.669421)
    """
    check_choice("name", name, _METHODS)
    mu_value = _as_values("mu", mu)
    l_value = _as_values("L", L)
    if not isinstance(mu_value, sp.Basic) and not isinstance(l_value, sp.Basic):
        if np.any(np.asarray(mu_value) > np.asarray(l_value)):
            raise invalid("mu", mu, f"values <= L (L={L!r})")
    formulas, rate, in_kappa, derivation = _derive(name)
    names = dict(_HYPER[name])
    symbolic = isinstance(mu_value, sp.Basic) or isinstance(l_value, sp.Basic)

    def evaluate(expr: sp.Expr) -> Any:
        if symbolic:
            return sp.simplify(expr.subs({MU: sp.sympify(mu_value), L_SMOOTH: sp.sympify(l_value)}))
        value = sp.lambdify((MU, L_SMOOTH), expr, modules="numpy")(mu_value, l_value)
        value = np.asarray(value, dtype=float)
        return float(value) if value.ndim == 0 else value

    hyper = {names[s]: evaluate(e) for s, e in formulas.items()}
    return Tuning(
        name,
        hyper,
        evaluate(rate),
        {names[s]: e for s, e in formulas.items()},
        rate,
        in_kappa,
        derivation,
    )


def worst_rate(
    name: str, mu: Any, L: Any, *, points: int = 257, **hyperparameters: Any
) -> np.ndarray:
    """``max_{λ ∈ [mu, L]}`` of the spectral radius for given hyperparameters, numerically.

    Parameters
    ----------
    name : {"gd", "momentum", "nesterov", "heavy_ball"}
        The method.
    mu, L : float
        The spectrum's ends.
    points : int, default 257
        Curvatures sampled in [mu, L] (ends included).
    **hyperparameters : float or array
        ``eta`` and, for two-parameter methods, ``beta`` (symbol names); arrays broadcast and
        give an array of worst rates.

    Returns
    -------
    numpy.ndarray
    """
    check_choice("name", name, _METHODS)
    region = stability_region(name)
    lam = np.linspace(float(mu), float(L), points)
    values = {k: np.asarray(v, dtype=float)[..., None] for k, v in hyperparameters.items()}
    return np.max(region.rate(lam=lam, **values), axis=-1)
