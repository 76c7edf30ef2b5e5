"""The catalogue of proven results, each a :class:`Bound` with its formula, assumptions and source.

``ck.bounds`` is this module: ``ck.bounds.gd_convex``, ``ck.bounds.catalogue()``, ... Every
entry states what it bounds (``quantity``), the right-hand side as a SymPy expression
(``formula``), the method and hyperparameters it is proven for, the assumptions, and the
reference. ``bound.evaluate(**values)`` gives the right-hand side as NumPy numbers, and
:func:`convexkit.comparison.compare` holds it against a simulated trace.

Quantities
----------
``"dist"``, ``"dist_sq"``
    ``‖x_t − x*‖`` and its square, at every step t.
``"gap"``
    ``f(x_t) − f*`` at every step t.
``"rate"``
    The asymptotic factor per step, ``lim sup ‖x_t − x*‖^{1/t}``.
``"gap_avg"``
    ``E[f(x̄)] − f*`` for an average ``x̄`` of the iterates (stochastic).
``"second_moment"``, ``"variance"``
    ``E[(x_t − x*)²]`` per coordinate at step t, and its limit as t → ∞ (stochastic).
``"minibatch_variance"``, ``"newton_error"``, ``"regret"``
    Quantities that are not read from a trace: pass ``measured=`` to ``compare``.

Where quadratics and strongly convex functions part
---------------------------------------------------
A stability region or rate derived on ``f = λx²/2`` (:mod:`convexkit.theory.stability`) holds
for every quadratic whose spectrum lies in the range considered, because a quadratic
decouples into independent scalar problems along its eigenvectors. It does not in general
carry over to other μ-strongly convex, L-smooth functions, whose Hessian changes along the
path: gradient descent keeps its quadratic rate ``max(|1 − ημ|, |1 − ηL|)`` on the whole
class, but heavy-ball momentum with Polyak's tuning does not even converge on some of them
(:func:`heavy_ball_counterexample`), and Nesterov's method keeps a rate of order
``1 − 1/√κ`` only with its own proof (:data:`nesterov_strongly_convex`).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np
import sympy as sp

from ..errors import invalid

__all__ = [
    "Bound",
    "HeavyBallCounterexample",
    "adagrad_regret",
    "catalogue",
    "gd_convex",
    "gd_strongly_convex",
    "gd_strongly_convex_tuned",
    "gd_strongly_convex_value",
    "get",
    "heavy_ball_convex",
    "heavy_ball_counterexample",
    "heavy_ball_quadratic",
    "minibatch_variance_with_replacement",
    "minibatch_variance_without_replacement",
    "nesterov_convex",
    "nesterov_quadratic",
    "nesterov_quadratic_tuned",
    "nesterov_strongly_convex",
    "newton_local_quadratic",
    "sgd_constant_step_second_moment",
    "sgd_convex",
    "sgd_convex_constant_step",
    "sgd_noise_floor",
]

QUANTITIES = (
    "dist",
    "dist_sq",
    "gap",
    "rate",
    "gap_avg",
    "second_moment",
    "variance",
    "minibatch_variance",
    "newton_error",
    "regret",
)

# symbols shared by the catalogue (each Bound's ``variables`` says what they mean there)
t = sp.Symbol("t", integer=True, nonnegative=True)
T = sp.Symbol("T", integer=True, positive=True)
mu = sp.Symbol("mu", positive=True)
L = sp.Symbol("L", positive=True)
eta = sp.Symbol("eta", positive=True)
beta = sp.Symbol("beta", nonnegative=True)
lam = sp.Symbol("lam", positive=True)
R0 = sp.Symbol("R0", nonnegative=True)
D0 = sp.Symbol("D0", nonnegative=True)
r = sp.Symbol("r", positive=True)
G = sp.Symbol("G", positive=True)
S1 = sp.Symbol("S1", positive=True)
S2 = sp.Symbol("S2", nonnegative=True)
sigma = sp.Symbol("sigma", nonnegative=True)
x0 = sp.Symbol("x0", real=True)
b = sp.Symbol("b", integer=True, positive=True)
n = sp.Symbol("n", integer=True, positive=True)
M = sp.Symbol("M", nonnegative=True)
m = sp.Symbol("m", positive=True)
e0 = sp.Symbol("e0", nonnegative=True)
D_inf = sp.Symbol("D_inf", positive=True)
g_norms = sp.Symbol("g_norms", nonnegative=True)

kappa = L / mu


@dataclass(frozen=True, eq=False)
class Bound:
    """A proven result: ``quantity`` is at most (or, for ``relation == "=="``, equal to)
    ``formula``.

    Attributes
    ----------
    name : str
        Key in the catalogue.
    statement : str
        The result in one line of text.
    quantity : str
        What is bounded (see the module notes).
    formula : SymPy expression
        The right-hand side.
    relation : {"<=", "=="}
        A bound, or an exact value (stochastic exact values are compared within standard
        errors).
    method : str
        The algorithm and hyperparameters the result is proven for.
    assumptions : tuple of str
        What the function and the oracle must satisfy.
    reference : str
        Where it is proven.
    variables : dict
        Meaning of each symbol of ``formula``.
    stochastic : bool
        Whether ``quantity`` is an expectation (compared with a batch mean).
    notes : str
        Variants, tightness and where the result stops holding.
    derived : dict
        Inputs ``evaluate`` can compute from other arguments: symbol name → (argument
        name, function), e.g. ``S1`` from an array ``eta`` of step sizes.
    """

    name: str
    statement: str
    quantity: str
    formula: sp.Expr
    relation: str
    method: str
    assumptions: tuple[str, ...]
    reference: str
    variables: Mapping[str, str]
    stochastic: bool = False
    notes: str = ""
    derived: Mapping[str, tuple[str, Callable[[np.ndarray], np.ndarray]]] = field(
        default_factory=dict
    )

    @property
    def symbols(self) -> tuple[str, ...]:
        """Names of the symbols ``evaluate`` needs, sorted."""
        return tuple(sorted(s.name for s in self.formula.free_symbols))

    def evaluate(self, **values: Any) -> np.ndarray:
        """The right-hand side as NumPy numbers.

        Parameters
        ----------
        **values : float or array
            One value per symbol (see :attr:`symbols` and :attr:`variables`); arrays
            broadcast. For inputs listed in :attr:`derived`, the source argument may be given
            instead (``eta=`` step sizes with the last axis over steps).

        Returns
        -------
        numpy.ndarray
        """
        values = dict(values)
        for symbol, (source, function) in self.derived.items():
            if symbol not in values and source in values:
                values[symbol] = function(np.asarray(values[source], dtype=float))
        sources = {source for source, _ in self.derived.values()}
        for source in sources:
            values.pop(source, None)
        needed = self.symbols
        unknown = sorted(set(values) - set(needed))
        if unknown:
            raise invalid(unknown[0], values[unknown[0]], f"one of {list(needed)} for {self.name}")
        missing = [s for s in needed if s not in values]
        if missing:
            hint = {s: source for s, (source, _) in self.derived.items()}
            extra = f" (or {hint[missing[0]]}=)" if missing[0] in hint else ""
            raise invalid(missing[0], None, f"a value{extra}: {self.name} needs {list(needed)}")
        arrays = [np.asarray(values[s], dtype=float) for s in needed]
        result = _compiled(self.formula, needed)(*arrays)
        shape = np.broadcast_shapes(*(a.shape for a in arrays)) if arrays else ()
        return np.broadcast_to(np.asarray(result, dtype=float), shape).copy()

    def __repr__(self) -> str:
        lines = [
            f"Bound {self.name!r}: {self.statement}",
            f"  quantity   {self.quantity} {self.relation} {sp.sstr(self.formula)}",
            f"  method     {self.method}",
            f"  assumes    {'; '.join(self.assumptions)}",
            f"  reference  {self.reference}",
        ]
        if self.notes:
            lines.append(f"  notes      {self.notes}")
        return "\n".join(lines)

    def _repr_latex_(self) -> str:
        relation = r"\le" if self.relation == "<=" else "="
        return rf"$\text{{{self.quantity}}} {relation} {sp.latex(self.formula)}$"


@functools.lru_cache(maxsize=128)
def _compiled(formula: sp.Expr, names: tuple[str, ...]) -> Callable[..., Any]:
    by_name = {s.name: s for s in formula.free_symbols}
    return sp.lambdify([by_name[name] for name in names], formula, modules="numpy")


def _sum_last(values: np.ndarray) -> np.ndarray:
    return np.sum(values, axis=-1)


def _sum_squares_last(values: np.ndarray) -> np.ndarray:
    return np.sum(values * values, axis=-1)


# --------------------------------------------------------------------------- gradient descent

gd_strongly_convex = Bound(
    name="gd_strongly_convex",
    statement="||x_t - x*|| <= max(|1 - eta*mu|, |1 - eta*L|)^t ||x_0 - x*||",
    quantity="dist",
    formula=sp.Max(sp.Abs(1 - eta * mu), sp.Abs(1 - eta * L)) ** t * R0,
    relation="<=",
    method="gradient descent x <- x - eta*grad f(x), constant 0 < eta < 2/L",
    assumptions=("f is mu-strongly convex and L-smooth (0 < mu <= L)",),
    reference=(
        "Polyak (1987), Introduction to Optimization, section 1.4 (twice differentiable f); "
        "Lessard, Recht & Packard (2016), SIAM J. Optim. 26(1):57-95 (all of F_{mu,L}); "
        "tight on quadratics"
    ),
    variables={
        "eta": "step size",
        "mu": "strong convexity",
        "L": "smoothness",
        "t": "step",
        "R0": "||x_0 - x*||",
    },
    notes=(
        "Proof: f - mu|x|^2/2 has an (L - mu)-cocoercive gradient, so x - eta grad f(x) = "
        "(1 - eta (mu + L)/2) x - eta (L - mu)/2 N(x) with N nonexpansive, whose Lipschitz "
        "constant is |1 - eta (mu + L)/2| + eta (L - mu)/2 = max(|1 - eta mu|, |1 - eta L|). "
        "eta = 1/L gives (1 - mu/L)^t on the distance, i.e. (1 - mu/L)^(2t) on its square; "
        "eta = 2/(mu+L) gives ((kappa-1)/(kappa+1))^t (gd_strongly_convex_tuned). The rate equals "
        "the spectral radius of the quadratic model at the worst curvature: the one case where "
        "the quadratic region carries over to the whole class."
    ),
)

gd_strongly_convex_tuned = Bound(
    name="gd_strongly_convex_tuned",
    statement="||x_t - x*||^2 <= ((kappa - 1)/(kappa + 1))^(2t) ||x_0 - x*||^2, eta = 2/(mu + L)",
    quantity="dist_sq",
    formula=((kappa - 1) / (kappa + 1)) ** (2 * t) * R0**2,
    relation="<=",
    method="gradient descent with eta = 2/(mu + L)",
    assumptions=("f is mu-strongly convex and L-smooth",),
    reference="Nesterov (2004), Introductory Lectures on Convex Optimization, Thm 2.1.15",
    variables={"mu": "strong convexity", "L": "smoothness", "t": "step", "R0": "||x_0 - x*||"},
    notes="The distance itself contracts by (kappa-1)/(kappa+1) per step: the squared variant.",
)

gd_strongly_convex_value = Bound(
    name="gd_strongly_convex_value",
    statement="f(x_t) - f* <= (1 - mu/L)^t (f(x_0) - f*), eta = 1/L",
    quantity="gap",
    formula=(1 - mu / L) ** t * D0,
    relation="<=",
    method="gradient descent with eta = 1/L",
    assumptions=(
        "f is L-smooth and satisfies the Polyak-Lojasiewicz inequality with constant mu "
        "(implied by mu-strong convexity)",
    ),
    reference=("Karimi, Nutini & Schmidt (2016), ECML-PKDD, Thm 1; Polyak (1963)"),
    variables={"mu": "PL / strong convexity", "L": "smoothness", "t": "step", "D0": "f(x_0) - f*"},
    notes=(
        "The (1 - mu/L)^t variant: it needs no convexity. For mu-strongly convex f the tight "
        "rate is (1 - mu/L)^(2t) (Taylor, Hendrickx & Glineur 2018, J. Optim. Theory Appl. "
        "178:455-476)."
    ),
)

gd_convex = Bound(
    name="gd_convex",
    statement="f(x_t) - f* <= L ||x_0 - x*||^2 / (2t), eta = 1/L",
    quantity="gap",
    formula=L * R0**2 / (2 * t),
    relation="<=",
    method="gradient descent with eta = 1/L",
    assumptions=("f is convex and L-smooth, with a minimizer x*",),
    reference="Beck (2017), First-Order Methods in Optimization, Thm 10.21",
    variables={"L": "smoothness", "t": "step (t >= 1)", "R0": "||x_0 - x*||"},
    notes=(
        "Within a factor 2 of the exact worst case L R0^2 / (4t + 2) (Drori & Teboulle 2014), "
        "which a Huber function attains."
    ),
)

# --------------------------------------------------------------------------- momentum

_polyak_rate = (sp.sqrt(kappa) - 1) / (sp.sqrt(kappa) + 1)

heavy_ball_quadratic = Bound(
    name="heavy_ball_quadratic",
    statement=(
        "heavy ball with Polyak's tuning: rate (sqrt(kappa) - 1)/(sqrt(kappa) + 1) on quadratics"
    ),
    quantity="rate",
    formula=_polyak_rate,
    relation="<=",
    method=(
        "momentum v <- beta v + g, x <- x - eta v (= Polyak's x+ = x - a g + b (x - x_prev) "
        "with a = eta, b = beta), eta = 4/(sqrt(L) + sqrt(mu))^2, "
        "beta = ((sqrt(kappa) - 1)/(sqrt(kappa) + 1))^2"
    ),
    assumptions=("f is a quadratic whose Hessian has its spectrum in [mu, L]",),
    reference="Polyak (1964), USSR Comput. Math. Math. Phys. 4(5); Polyak (1987), section 3.2",
    variables={"mu": "smallest eigenvalue", "L": "largest eigenvalue"},
    notes=(
        "An asymptotic rate: the iteration matrix has a double eigenvalue at the ends of the "
        "spectrum, so ||x_t - x*|| ~ C t rho^t. Does NOT carry over to non-quadratic strongly "
        "convex functions: see heavy_ball_counterexample() (Lessard, Recht & Packard 2016)."
    ),
)

heavy_ball_convex = Bound(
    name="heavy_ball_convex",
    statement=(
        "f(x_bar_T) - f* <= ||x_0 - x*||^2 / (2(T+1)) (L beta/(1 - beta) + (1 - beta)/eta), "
        "x_bar_T = mean(x_0..x_T)"
    ),
    quantity="gap_avg",
    formula=R0**2 / (2 * (T + 1)) * (L * beta / (1 - beta) + (1 - beta) / eta),
    relation="<=",
    method=(
        "heavy ball x+ = x - eta g + beta (x - x_prev), x_prev = x_0 (ck.optim.momentum(eta, "
        "beta)), 0 <= beta < 1, 0 < eta <= (1 - beta)/L; Cesaro average of x_0 .. x_T"
    ),
    assumptions=("f is convex and L-smooth, with a minimizer x*",),
    reference=(
        "Ghadimi, Feyzmahdavian & Johansson (2015), Global convergence of the heavy-ball "
        "method for convex optimization, ECC, Thm 1"
    ),
    variables={
        "L": "smoothness",
        "beta": "momentum",
        "eta": "step size",
        "T": "last step",
        "R0": "||x_0 - x*||",
    },
    notes="A bound on the average of the iterates, not on the last one.",
)

# --------------------------------------------------------------------------- Nesterov

nesterov_quadratic = Bound(
    name="nesterov_quadratic",
    statement=(
        "Nesterov with eta = 1/L, beta = (sqrt(kappa)-1)/(sqrt(kappa)+1): rate 1 - "
        "1/sqrt(kappa) on quadratics"
    ),
    quantity="rate",
    formula=1 - 1 / sp.sqrt(kappa),
    relation="<=",
    method="ck.optim.nesterov(1/L, (sqrt(kappa) - 1)/(sqrt(kappa) + 1))",
    assumptions=("f is a quadratic whose Hessian has its spectrum in [mu, L]",),
    reference=(
        "Lessard, Recht & Packard (2016), SIAM J. Optim. 26(1):57-95 (quadratic analysis); "
        "the spectral radius of ck.stability_region('nesterov') maximized over [mu, L]"
    ),
    variables={"mu": "smallest eigenvalue", "L": "largest eigenvalue"},
    notes="The worst case is a double eigenvalue at curvature mu (a factor t in front of rho^t).",
)

nesterov_quadratic_tuned = Bound(
    name="nesterov_quadratic_tuned",
    statement=(
        "Nesterov with eta = 4/(3L + mu), beta = (sqrt(3 kappa + 1) - 2)/(sqrt(3 kappa + "
        "1) + 2): rate 1 - 2/sqrt(3 kappa + 1)"
    ),
    quantity="rate",
    formula=1 - 2 / sp.sqrt(3 * kappa + 1),
    relation="<=",
    method="ck.optim.nesterov with the tuning of optimal_hyperparameters('nesterov', mu, L)",
    assumptions=("f is a quadratic whose Hessian has its spectrum in [mu, L]",),
    reference=(
        "Lessard, Recht & Packard (2016), SIAM J. Optim. 26(1):57-95 (quadratic-optimal "
        "Nesterov tuning); derived here by ck.optimal_hyperparameters('nesterov', mu, L)"
    ),
    variables={"mu": "smallest eigenvalue", "L": "largest eigenvalue"},
)

nesterov_strongly_convex = Bound(
    name="nesterov_strongly_convex",
    statement="f(x_t) - f* <= (1 - sqrt(mu/L))^t (f(x_0) - f* + mu/2 ||x_0 - x*||^2)",
    quantity="gap",
    formula=(1 - sp.sqrt(mu / L)) ** t * (D0 + mu / 2 * R0**2),
    relation="<=",
    method=(
        "Nesterov's constant-momentum scheme y_k = x_k + beta (x_k - x_{k-1}), "
        "x_{k+1} = y_k - grad f(y_k)/L, x_{-1} = x_0, beta = (sqrt(kappa) - 1)/(sqrt(kappa) + 1). "
        "ck.optim.nesterov(1/L, beta) iterates the points y_k; x_{k+1} = y_k - grad f(y_k)/L"
    ),
    assumptions=("f is mu-strongly convex and L-smooth",),
    reference=(
        "Nesterov (2004), Introductory Lectures on Convex Optimization, Thm 2.2.3 with "
        "gamma_0 = mu (the constant step scheme)"
    ),
    variables={
        "mu": "strong convexity",
        "L": "smoothness",
        "t": "step",
        "D0": "f(x_0) - f*",
        "R0": "||x_0 - x*||",
    },
    notes=(
        "Unlike heavy ball, this rate holds on every strongly convex L-smooth function; on "
        "quadratics the same tuning contracts at 1 - 1/sqrt(kappa) (nesterov_quadratic)."
    ),
)

nesterov_convex = Bound(
    name="nesterov_convex",
    statement="f(x_t) - f* <= 2 L ||x_0 - x*||^2 / (t + 1)^2",
    quantity="gap",
    formula=2 * L * R0**2 / (t + 1) ** 2,
    relation="<=",
    method=(
        "Nesterov / FISTA: x_{k} = y_k - grad f(y_k)/L, s_{k+1} = (1 + sqrt(1 + 4 s_k^2))/2, "
        "y_{k+1} = x_k + (s_k - 1)/s_{k+1} (x_k - x_{k-1}), s_1 = 1, y_1 = x_0"
    ),
    assumptions=("f is convex and L-smooth, with a minimizer x*",),
    reference="Beck & Teboulle (2009), SIAM J. Imaging Sci. 2(1), Thm 4.4",
    variables={"L": "smoothness", "t": "step (t >= 1)", "R0": "||x_0 - x*||"},
    notes=(
        "Needs the increasing momentum (s_k - 1)/s_{k+1} ~ (k - 1)/(k + 2); a constant "
        "beta does not give it."
    ),
)

# --------------------------------------------------------------------------- SGD

_sgd_formula = (r**2 + G**2 * S2) / (2 * S1)

sgd_convex = Bound(
    name="sgd_convex",
    statement=(
        "E[f(x_bar)] - f* <= (r^2 + L^2 sum_t eta_t^2) / (2 sum_t eta_t), "
        "x_bar = sum_t eta_t x_t / sum_t eta_t"
    ),
    quantity="gap_avg",
    formula=_sgd_formula,
    relation="<=",
    method="SGD x_{t+1} = x_t - eta_t g_t for t = 0 .. T-1, averaged with weights eta_t",
    assumptions=(
        "f is convex with a minimizer x*, ||x_0 - x*|| <= r",
        "g_t is an unbiased stochastic (sub)gradient with E||g_t||^2 <= L^2 (the seeds' L)",
    ),
    reference=(
        "Seeds, section 11.4.3 (d2l.ai 'Stochastic Gradient Descent', convergence for "
        "convex objectives)"
    ),
    variables={
        "r": "bound on ||x_0 - x*||",
        "G": "the seeds' L: bound on the root mean square norm of the stochastic gradients",
        "S1": "sum of the step sizes eta_0 .. eta_{T-1} (or pass eta=)",
        "S2": "sum of their squares (or pass eta=)",
    },
    stochastic=True,
    notes="G stands for the seeds' L so that it is not mistaken for a smoothness constant.",
    derived={"S1": ("eta", _sum_last), "S2": ("eta", _sum_squares_last)},
)


@functools.lru_cache(maxsize=1)
def _best_constant_step() -> tuple[sp.Expr, sp.Expr]:
    """Minimize the SGD bound over a constant step: S1 = T eta, S2 = T eta^2."""
    constant = _sgd_formula.subs({S1: T * eta, S2: T * eta**2})
    (best,) = [s for s in sp.solve(sp.diff(constant, eta), eta) if s.is_positive]
    return sp.simplify(best), sp.simplify(constant.subs(eta, best))


sgd_convex_constant_step = Bound(
    name="sgd_convex_constant_step",
    statement="with eta_t = r/(L sqrt(T)): E[f(x_bar)] - f* <= r L / sqrt(T)",
    quantity="gap_avg",
    formula=_best_constant_step()[1],
    relation="<=",
    method=(
        "SGD with the constant step eta = r/(L sqrt(T)) for T steps, x_bar the mean of "
        "x_0 .. x_{T-1} (step found by minimizing sgd_convex over constant steps: "
        f"eta = {sp.sstr(_best_constant_step()[0])})"
    ),
    assumptions=sgd_convex.assumptions,
    reference="Seeds, section 11.4.3; minimization of sgd_convex over eta",
    variables={
        "r": "bound on ||x_0 - x*||",
        "G": "the seeds' L (root mean square gradient norm bound)",
        "T": "number of steps",
    },
    stochastic=True,
)


def sgd_best_constant_step() -> sp.Expr:
    """The constant step minimizing :data:`sgd_convex`, ``r/(G sqrt(T))`` (G is the seeds' L)."""
    return _best_constant_step()[0]


_contraction = (1 - eta * lam) ** 2
_floor = eta * sigma**2 / (lam * (2 - eta * lam))

sgd_noise_floor = Bound(
    name="sgd_noise_floor",
    statement=(
        "constant-step SGD on lam x^2/2 with N(0, sigma^2) gradient noise: Var(x_inf) = "
        "eta sigma^2 / (lam (2 - eta lam))"
    ),
    quantity="variance",
    formula=_floor,
    relation="==",
    method="x <- x - eta (lam x + sigma xi), xi ~ N(0, 1) independent per step and coordinate",
    assumptions=(
        "f = lam ||x - x*||^2 / 2 (one coordinate of a diagonal quadratic)",
        "additive Gaussian gradient noise of variance sigma^2 per coordinate",
        "0 < eta lam < 2",
    ),
    reference=(
        "The stationary variance of the AR(1) recursion e+ = (1 - eta lam) e - eta sigma xi: "
        "v = eta^2 sigma^2 / (1 - (1 - eta lam)^2) (e.g. Hamilton (1994), Time Series "
        "Analysis, section 3.4); its continuous-time limit is Mandt, Hoffman & Blei (2017)"
    ),
    variables={"eta": "step size", "lam": "curvature", "sigma": "noise standard deviation"},
    stochastic=True,
    notes=(
        "E[f] - f* tends to lam v / 2 = eta sigma^2 / (2 (2 - eta lam)): a floor that only a "
        "decaying step removes. The small-step approximation eta sigma^2/(2 lam) is off by the "
        "factor 2/(2 - eta lam)."
    ),
)

sgd_constant_step_second_moment = Bound(
    name="sgd_constant_step_second_moment",
    statement=(
        "E[(x_t - x*)^2] = (1 - eta lam)^(2t) e0^2 + v (1 - (1 - eta lam)^(2t)), v the noise floor"
    ),
    quantity="second_moment",
    formula=_contraction**t * e0**2 + _floor * (1 - _contraction**t),
    relation="==",
    method=sgd_noise_floor.method,
    assumptions=sgd_noise_floor.assumptions[:2],
    reference="Unrolling the recursion: E e_{t+1}^2 = (1 - eta lam)^2 E e_t^2 + eta^2 sigma^2",
    variables={
        "eta": "step size",
        "lam": "curvature",
        "sigma": "noise standard deviation",
        "t": "step",
        "e0": "x_0 - x* (per coordinate)",
    },
    stochastic=True,
)

minibatch_variance_with_replacement = Bound(
    name="minibatch_variance_with_replacement",
    statement="E||g_B - grad f||^2 = sigma^2 / b for b indices drawn with replacement",
    quantity="minibatch_variance",
    formula=sigma**2 / b,
    relation="==",
    stochastic=True,
    method="g_B = (1/b) sum_{j=1..b} grad f_{i_j}, i_j independent and uniform on 1..n",
    assumptions=(
        "f = (1/n) sum_i f_i; sigma^2 = (1/n) sum_i ||grad f_i - grad f||^2 at the point",
    ),
    reference="Variance of a mean of b independent draws (the with-replacement case of the same)",
    variables={
        "sigma": "population standard deviation of the per-example gradients",
        "b": "batch size",
    },
)

minibatch_variance_without_replacement = Bound(
    name="minibatch_variance_without_replacement",
    statement="E||g_B - grad f||^2 = sigma^2 / b (n - b)/(n - 1) for b distinct indices",
    quantity="minibatch_variance",
    formula=sigma**2 / b * (n - b) / (n - 1),
    relation="==",
    stochastic=True,
    method="g_B = (1/b) sum_{i in B} grad f_i, B a uniformly random subset of size b",
    assumptions=minibatch_variance_with_replacement.assumptions,
    reference="Finite population correction, e.g. Lohr (2019), Sampling: Design and Analysis",
    variables={
        "sigma": "population standard deviation of the per-example gradients",
        "b": "batch size",
        "n": "number of examples (n >= 2)",
    },
    notes=(
        "Sampling without replacement (the seeds' section 11.4.4) has the smaller "
        "variance; b = n gives 0."
    ),
)

newton_local_quadratic = Bound(
    name="newton_local_quadratic",
    statement="||x+ - x*|| <= M / (2 m) ||x - x*||^2 for a full Newton step",
    quantity="newton_error",
    formula=M / (2 * m) * e0**2,
    relation="<=",
    method="Newton's method x+ = x - H(x)^{-1} grad f(x) (ck.optim.newton(1.0))",
    assumptions=(
        "H(x) >= m I at x and the Hessian is M-Lipschitz: ||H(u) - H(w)|| <= M ||u - w||",
    ),
    reference=(
        "Boyd & Vandenberghe (2004), section 9.5.3; Nesterov (2018), Thm 1.2.5 (the local "
        "version with m replaced by mu - M ||x - x*||)"
    ),
    variables={
        "M": "Lipschitz constant of the Hessian",
        "m": "lower bound of H(x)",
        "e0": "||x - x*||",
    },
    notes=(
        "Quadratic convergence: once ||x - x*|| < m/M the error is squared (up to M/(2m)) "
        "every step. Proof: x+ - x* = H(x)^{-1} int_0^1 (H(x) - H(x* + s(x - x*)))(x - x*) ds."
    ),
)

adagrad_regret = Bound(
    name="adagrad_regret",
    statement="sum_t f_t(x_t) - min_x sum_t f_t(x) <= sqrt(2) D_inf sum_i ||g_{1:T,i}||_2",
    quantity="regret",
    formula=sp.sqrt(2) * D_inf * g_norms,
    relation="<=",
    method=(
        "diagonal AdaGrad x <- P(x - eta g / sqrt(s)), s <- s + g^2 (s includes the current g), "
        "eta = D_inf / sqrt(2), P the projection onto the feasible box"
    ),
    assumptions=(
        "f_t convex; ||x - x*||_inf <= D_inf for all iterates x and the comparator x*",
        "online: f_t may be chosen after x_t is played",
    ),
    reference="Duchi, Hazan & Singer (2011), JMLR 12:2121-2159, Thm 5 (diagonal AdaGrad)",
    variables={
        "D_inf": "infinity-norm diameter of the feasible set",
        "g_norms": "sum over coordinates i of sqrt(sum_t g_{t,i}^2)",
    },
    notes="For a general eta: (D_inf^2/(2 eta) + eta) sum_i ||g_{1:T,i}||_2.",
)


# --------------------------------------------------------------------------- the counterexample


class HeavyBallCounterexample(NamedTuple):
    """Lessard, Recht and Packard's function on which heavy ball with Polyak's tuning cycles.

    Attributes
    ----------
    expression : SymPy Piecewise
        f(x) = 25x²/2 (x < 1), x²/2 + 24x − 12 (1 <= x < 2), 25x²/2 − 24x + 36 (x >= 2):
        1-strongly convex and 25-smooth, minimum 0 at x* = 0.
    value, grad : callable
        Vectorized f and f' on arrays of any shape.
    mu, L : float
        1 and 25.
    lr, beta : float
        Polyak's tuning for [mu, L]: 4/(sqrt(L)+sqrt(mu))² = 1/9 and ((5−1)/(5+1))² = 4/9.
    starts : tuple of float
        An interval of starting points (x_prev = x_0) that end on the cycle.
    cycle : tuple of float
        The attracting 3-cycle, exact to the digits shown (-1.8024, 2.1159, 0.6465).
    """

    expression: sp.Expr
    value: Callable[[Any], Any]
    grad: Callable[[Any], Any]
    mu: float
    L: float
    lr: float
    beta: float
    starts: tuple[float, float]
    cycle: tuple[float, float, float]


def heavy_ball_counterexample() -> HeavyBallCounterexample:
    """The strongly convex function on which heavy ball with Polyak's tuning fails to converge.

    Polyak's tuning makes heavy ball converge at ``(√κ−1)/(√κ+1)`` on every quadratic with
    spectrum in [μ, L] (:data:`heavy_ball_quadratic`), but on this 1-strongly convex, 25-smooth
    piecewise quadratic, started in [3.07, 3.46], it settles on a cycle of period 3
    (Lessard, Recht & Packard 2016, SIAM J. Optim. 26(1), section 4.6). The stability region
    derived on ``λx²/2`` therefore does not carry over to the strongly convex class.

    Returns
    -------
    HeavyBallCounterexample
    """
    x = sp.Symbol("x", real=True)
    expression = sp.Piecewise(
        (sp.Rational(25, 2) * x**2, x < 1),
        (x**2 / 2 + 24 * x - 12, x < 2),
        (sp.Rational(25, 2) * x**2 - 24 * x + 36, True),
    )

    def value(point: Any) -> Any:
        point = np.asarray(point, dtype=float)
        return np.where(
            point < 1,
            12.5 * point**2,
            np.where(
                point < 2, 0.5 * point**2 + 24 * point - 12, 12.5 * point**2 - 24 * point + 36
            ),
        )

    def grad(point: Any) -> Any:
        point = np.asarray(point, dtype=float)
        return np.where(point < 1, 25 * point, np.where(point < 2, point + 24, 25 * point - 24))

    mu_value, l_value = 1.0, 25.0
    lr = 4 / (np.sqrt(l_value) + np.sqrt(mu_value)) ** 2
    momentum = ((np.sqrt(l_value / mu_value) - 1) / (np.sqrt(l_value / mu_value) + 1)) ** 2
    return HeavyBallCounterexample(
        expression,
        value,
        grad,
        mu_value,
        l_value,
        float(lr),
        float(momentum),
        (3.07, 3.46),
        (-1.8024, 2.1159, 0.6465),
    )


# --------------------------------------------------------------------------- access

_ALL = (
    gd_strongly_convex,
    gd_strongly_convex_tuned,
    gd_strongly_convex_value,
    gd_convex,
    heavy_ball_quadratic,
    heavy_ball_convex,
    nesterov_quadratic,
    nesterov_quadratic_tuned,
    nesterov_strongly_convex,
    nesterov_convex,
    sgd_convex,
    sgd_convex_constant_step,
    sgd_noise_floor,
    sgd_constant_step_second_moment,
    minibatch_variance_with_replacement,
    minibatch_variance_without_replacement,
    newton_local_quadratic,
    adagrad_regret,
)


def catalogue() -> dict[str, Bound]:
    """Every bound of the catalogue, by name."""
    return {bound.name: bound for bound in _ALL}


def get(name: str) -> Bound:
    """The bound called ``name`` (see :func:`catalogue`)."""
    found = catalogue()
    if name not in found:
        raise invalid("name", name, "one of " + ", ".join(repr(k) for k in found))
    return found[name]
