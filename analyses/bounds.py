"""Every bound of ``ck.bounds`` against its measured counterpart.

Each panel runs the method a bound is proven for, with the library's optimizers and runner, on
an instance of the bound's function class (a tight one where the literature has one), and
draws the measured quantity next to the proven formula; ``ck.compare`` decides whether the
bound holds (stochastic bounds within 6 standard errors). The last panel is the caveat: heavy
ball with Polyak's tuning, proven to converge on quadratics, cycles on Lessard, Recht and
Packard's strongly convex function.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

import convexkit as ck
from analyses._common import row
from convexkit.simulate import FiniteSum
from convexkit.symbolic.sets import Box
from convexkit.theory import bounds

BOUNDS_LOG_X = {
    "gd_convex": True,
    "nesterov_convex": True,
    "heavy_ball_convex": True,
    "heavy_ball_quadratic": True,
    "nesterov_quadratic": True,
    "nesterov_quadratic_tuned": True,
    "sgd_convex_constant_step": True,
    "sgd_convex": True,
    "newton_local_quadratic": True,
    "adagrad_regret": True,
}
X_LABELS = {
    "gd_convex": "horizon N (one Huber instance each)",
    "heavy_ball_convex": "horizon T",
    "heavy_ball_quadratic": "κ = L/μ (rate)",
    "nesterov_quadratic": "κ = L/μ (rate)",
    "nesterov_quadratic_tuned": "κ = L/μ (rate)",
    "sgd_convex_constant_step": "steps T",
    "sgd_convex": "steps T",
    "sgd_noise_floor": "ηλ (stationary variance)",
    "minibatch_variance_with_replacement": "batch size b",
    "minibatch_variance_without_replacement": "batch size b (n = 12)",
    "newton_local_quadratic": "||x - x*|| before the step",
    "adagrad_regret": "rounds T (worst of 64 runs)",
}


class _LogCosh:
    """f(x) = sum_i mu x_i^2/2 + (L - mu) log cosh(x_i - a_i): mu-strongly convex, L-smooth."""

    def __init__(self, mu: float, big_l: float, a: np.ndarray):
        self.mu, self.L, self.a = mu, big_l, a
        reach = np.abs(a).max() + (big_l - mu) / mu + 1
        low, high = np.full(a.shape, -reach), np.full(a.shape, reach)
        for _ in range(200):
            mid = (low + high) / 2
            up = self.grad(mid) > 0
            high, low = np.where(up, mid, high), np.where(up, low, mid)
        self.x_star = (low + high) / 2
        self.f_star = self.value(self.x_star)

    def grad(self, x: np.ndarray) -> np.ndarray:
        return self.mu * x + (self.L - self.mu) * np.tanh(x - self.a)

    def value(self, x: np.ndarray) -> np.ndarray:
        s = np.abs(x - self.a)
        log_cosh = s + np.log1p(np.exp(-2 * s)) - np.log(2)
        return np.sum(self.mu * x**2 / 2 + (self.L - self.mu) * log_cosh, axis=-1)


class _Huber:
    """f(x) = L sum_i huber_delta(x_i): convex, L-smooth, minimum 0 at 0."""

    def __init__(self, delta: float, big_l: float = 1.0):
        self.delta, self.L = delta, big_l

    def grad(self, x: np.ndarray) -> np.ndarray:
        return self.L * np.clip(x, -self.delta, self.delta)

    def value(self, x: np.ndarray) -> np.ndarray:
        u = np.abs(x)
        inner = np.where(u <= self.delta, u**2 / 2, self.delta * u - self.delta**2 / 2)
        return self.L * np.sum(inner, axis=-1)


class _Norm:
    """f(x) = ||x||, with subgradient x/||x||."""

    def grad(self, x: np.ndarray) -> np.ndarray:
        norm = np.linalg.norm(x, axis=-1, keepdims=True)
        return np.where(norm > 0, x / np.where(norm > 0, norm, 1.0), 0.0)

    def value(self, x: np.ndarray) -> np.ndarray:
        return np.linalg.norm(x, axis=-1)


def _curve(
    name: str, t: np.ndarray, measured: Any, proven: Any, result: Any, steps: bool = True
) -> dict:
    """A panel: the measured quantity and the bound at the same abscissae. Where the abscissa
    is the step, the slack is taken from step 1 on (at t = 0 most bounds are equalities)."""
    measured, proven = np.asarray(measured, float), np.asarray(proven, float)
    use = ((np.asarray(t) >= 1) | (not steps)) & (proven > 1e-13 * np.max(proven))
    return {
        "name": name,
        "t": t,
        "measured": measured,
        "proven": proven,
        "holds": bool(result.holds),
        "margin": float(np.min(1 - measured[use] / proven[use])),
    }


def _flat_log_cosh(mu: float, big_l: float) -> tuple[_LogCosh, np.ndarray]:
    """A log-cosh instance whose minimizer lies where the curvature is mu (tanh saturated), and
    a start in the curved region: the worst curvature of the bounds governs the tail."""
    shift = 1.1 * (big_l - mu) / mu  # beyond |x*| = (L - mu)/mu, where tanh saturates
    problem = _LogCosh(mu, big_l, np.array([[-shift, shift]]))
    return problem, problem.a + np.array([[-2.0, 3.0]])


def _gd(steps: int) -> list[dict]:
    mu, big_l = 0.1, 10.0
    problem, x0 = _flat_log_cosh(mu, big_l)
    out = []
    trace = ck.run(problem, ck.optim.gd(1 / big_l), x0, steps)
    result = ck.compare(
        trace, bounds.gd_strongly_convex, x_star=problem.x_star, eta=1 / big_l, mu=mu, L=big_l
    )
    out.append(
        _curve("gd_strongly_convex", trace.t, result.empirical[:, 0], result.proven[:, 0], result)
    )
    result = ck.compare(
        trace,
        bounds.gd_strongly_convex_value,
        x_star=problem.x_star,
        f_star=problem.f_star,
        mu=mu,
        L=big_l,
    )
    out.append(
        _curve(
            "gd_strongly_convex_value", trace.t, result.empirical[:, 0], result.proven[:, 0], result
        )
    )
    tuned = ck.run(problem, ck.optim.gd(2 / (mu + big_l)), x0, steps)
    result = ck.compare(
        tuned, bounds.gd_strongly_convex_tuned, x_star=problem.x_star, mu=mu, L=big_l
    )
    out.append(
        _curve(
            "gd_strongly_convex_tuned", tuned.t, result.empirical[:, 0], result.proven[:, 0], result
        )
    )
    # Drori and Teboulle's worst case for eta = 1/L and horizon N: a Huber function of width
    # R/(2N + 1), where f(x_N) - f* = L R^2/(4N + 2). One run per horizon, all in one batch.
    horizons = np.unique(np.geomspace(1, steps, 24).astype(int))
    huber = _Huber(1 / (2 * horizons[:, None] + 1))
    trace = ck.run(huber, ck.optim.gd(1.0), np.ones((horizons.size, 1)), int(horizons.max()))
    gaps = trace.loss[horizons, np.arange(horizons.size)]
    result = ck.compare(None, bounds.gd_convex, measured=gaps, t=horizons, L=1.0, R0=1.0)
    out.append(_curve("gd_convex", horizons, gaps, result.proven, result))
    return out


def _momentum_and_nesterov(steps: int) -> list[dict]:
    out = []
    mu, big_l = 0.1, 10.0
    kappa = big_l / mu
    beta = (np.sqrt(kappa) - 1) / (np.sqrt(kappa) + 1)
    problem, x0 = _flat_log_cosh(mu, big_l)
    trace = ck.run(problem, ck.optim.nesterov(1 / big_l, beta), x0, steps)
    y = trace.x
    points = np.concatenate([y[:1], y[:-1] - np.stack([problem.grad(p) for p in y[:-1]]) / big_l])
    gaps = np.array([problem.value(p)[0] for p in points]) - problem.f_star[0]
    result = ck.compare(
        None,
        bounds.nesterov_strongly_convex,
        measured=gaps,
        atol=1e-12 * (1 + abs(problem.f_star[0])),
        t=trace.t,
        mu=mu,
        L=big_l,
        D0=gaps[0],
        R0=float(np.linalg.norm(x0 - problem.x_star)),
    )
    out.append(_curve("nesterov_strongly_convex", trace.t, gaps, result.proven, result))
    # FISTA on a narrow Huber function
    huber, x, y_point, s = _Huber(1e-3), np.ones((1, 1)), np.ones((1, 1)), 1.0
    gaps = []
    for _ in range(steps):
        x_next = y_point - huber.grad(y_point)
        s_next = (1 + np.sqrt(1 + 4 * s * s)) / 2
        y_point = x_next + ((s - 1) / s_next) * (x_next - x)
        x, s = x_next, s_next
        gaps.append(huber.value(x)[0])
    t = np.arange(1, steps + 1)
    result = ck.compare(None, bounds.nesterov_convex, measured=np.array(gaps), t=t, L=1.0, R0=1.0)
    out.append(_curve("nesterov_convex", t, np.array(gaps), result.proven, result))
    # heavy ball, averaged iterates: run i stops at horizon T_i on a Huber function of width
    # 1/(T_i + 1), the width that makes the bound tight for beta = 0; one batch for all T_i
    horizons = np.arange(1, steps + 1)
    huber = _Huber(1 / (horizons[:, None] + 1))
    beta, lr = 0.3, 0.5
    trace = ck.run(huber, ck.optim.momentum(lr, beta), np.ones((horizons.size, 1)), steps)
    cumulative = np.cumsum(trace.x[:, :, 0], axis=0)
    averages = cumulative[horizons, np.arange(horizons.size)] / (horizons + 1)
    measured = huber.value(averages[:, None])
    values = dict(R0=1.0, T=horizons, L=1.0, beta=beta, eta=lr)
    result = ck.compare(None, bounds.heavy_ball_convex, measured=measured, **values)
    out.append(_curve("heavy_ball_convex", horizons, measured, result.proven, result))
    return out


def _rate_bounds(quick: bool, rng: np.random.Generator) -> list[dict]:
    out = []
    kappas = np.geomspace(5.0, 300.0 if quick else 2000.0, 6 if quick else 12)
    dim = 6
    lam = 1 + (kappas - 1)[:, None] * rng.uniform(0, 1, (kappas.size, dim))
    lam[:, 0], lam[:, 1] = 1.0, kappas
    setups = {
        "heavy_ball_quadratic": ck.optim.momentum(
            **ck.optimal_hyperparameters("momentum", 1.0, kappas).hyperparameters
        ),
        "nesterov_quadratic": ck.optim.nesterov(
            1 / kappas, (np.sqrt(kappas) - 1) / (np.sqrt(kappas) + 1)
        ),
        "nesterov_quadratic_tuned": ck.optim.nesterov(
            **ck.optimal_hyperparameters("nesterov", 1.0, kappas).hyperparameters
        ),
    }
    for name, optimizer in setups.items():
        trace = ck.run(
            lambda x: lam * x, optimizer, np.ones((kappas.size, dim)), 1500 if quick else 5000
        )
        result = ck.compare(trace, bounds.get(name), mu=1.0, L=kappas)
        out.append(_curve(name, kappas, result.empirical, result.proven, result))
    return out


def _sgd(quick: bool, seed: int) -> list[dict]:
    out = []
    batch = 200 if quick else 2000
    sigma, r, dim = 0.5, 2.0, 2
    big_g = np.sqrt(1 + sigma**2 * dim)
    horizons = np.array([10, 30, 100, 300] if quick else [10, 30, 100, 300, 1000])
    means, errors, proven, holds = [], [], [], True
    x0 = np.array([r, 0.0])
    for steps in horizons:
        lr = r / (big_g * np.sqrt(steps))
        trace = ck.run(
            _Norm(), ck.optim.sgd(lr), x0, int(steps), noise=sigma, batch=batch, seed=seed
        )
        weights = np.append(np.ones(steps), 0.0)
        result = ck.compare(
            trace,
            bounds.sgd_convex_constant_step,
            objective=_Norm().value,
            weights=weights,
            r=r,
            G=big_g,
            T=int(steps),
        )
        means.append(result.empirical)
        errors.append(result.standard_error)
        proven.append(result.proven)
        holds &= result.holds
    out.append(
        {
            "name": "sgd_convex_constant_step",
            "t": horizons,
            "measured": np.array(means),
            "error": np.array(errors),
            "proven": np.array(proven),
            "holds": bool(holds),
            "margin": float(np.min(1 - np.array(means) / np.array(proven))),
        }
    )
    # the general bound with decaying steps eta_t = eta_0 / sqrt(t + 1): one run, and the
    # eta-weighted average of x_0 .. x_{T-1} for every horizon T
    steps = int(horizons.max())
    base = r / big_g
    eta = base / np.sqrt(np.arange(steps) + 1)
    trace = ck.run(
        _Norm(),
        ck.optim.sgd(lambda t: base / np.sqrt(t + 1)),
        x0,
        steps,
        noise=sigma,
        batch=batch,
        seed=seed + 1,
    )
    means, errors, proven, holds, slack = [], [], [], True, np.inf
    for horizon in horizons:
        weights = np.concatenate([eta[:horizon], np.zeros(steps + 1 - horizon)])
        result = ck.compare(
            trace,
            bounds.sgd_convex,
            objective=_Norm().value,
            weights=weights,
            r=r,
            G=big_g,
            eta=eta[:horizon],
        )
        means.append(result.empirical)
        errors.append(result.standard_error)
        proven.append(result.proven)
        holds &= result.holds
        slack = min(slack, result.margin)
    out.append(
        {
            "name": "sgd_convex",
            "t": horizons,
            "measured": np.array(means),
            "error": np.array(errors),
            "proven": np.array(proven),
            "holds": bool(holds),
            "margin": float(slack),
        }
    )
    # the noise floor of constant-step SGD on lam x^2/2 over a range of eta*lam
    lam, noise = 1.0, 1.0
    h = np.linspace(0.1, 1.9, 7 if quick else 19)
    floors, floor_errors, floor_holds, deviation = [], [], True, 0.0
    for value in h:
        repeated = ck.run(
            lambda x: lam * x,
            ck.optim.sgd(float(value)),
            [0.0],
            200,
            noise=noise,
            batch=batch,
            seed=seed + 2,
        )
        result = ck.compare(
            repeated, bounds.sgd_noise_floor, eta=float(value), lam=lam, sigma=noise
        )
        floors.append(result.empirical)
        floor_errors.append(result.standard_error)
        floor_holds &= result.holds
        deviation = min(deviation, result.margin)
    out.append(
        {
            "name": "sgd_noise_floor",
            "t": h,
            "measured": np.array(floors),
            "error": np.array(floor_errors),
            "proven": bounds.sgd_noise_floor.evaluate(eta=h, lam=lam, sigma=noise),
            "holds": bool(floor_holds),
            "margin": float(deviation),
        }
    )
    return out


def _minibatch(quick: bool, seed: int) -> list[dict]:
    rng = np.random.default_rng(seed)
    n, batch = 12, 1000 if quick else 20000
    per_example = rng.normal(size=(n, 3))
    mean = per_example.mean(axis=0)
    sigma = float(np.sqrt(np.mean(np.sum((per_example - mean) ** 2, axis=1))))
    sizes = np.arange(1, n + 1)
    out = []
    for replace, bound in (
        (True, bounds.minibatch_variance_with_replacement),
        (False, bounds.minibatch_variance_without_replacement),
    ):
        measured, errors, holds, deviation = [], [], True, 0.0
        for b in sizes:
            problem = FiniteSum(
                lambda x, idx: per_example[idx], n, batch_size=int(b), replace=replace
            )
            trace = ck.run(problem, ck.optim.sgd(1.0), np.zeros(3), 1, batch=batch, seed=seed)
            squared = np.sum((-trace.x[1] - mean) ** 2, axis=1)
            se = squared.std(ddof=1) / np.sqrt(batch)
            values = {"sigma": sigma, "b": int(b)} | ({} if replace else {"n": n})
            result = ck.compare(
                None,
                bound,
                measured=squared.mean(),
                standard_error=se,
                atol=1e-12 * sigma**2,
                **values,
            )
            measured.append(squared.mean())
            errors.append(se)
            holds &= result.holds
            deviation = min(deviation, result.margin)
        values = {"sigma": sigma, "b": sizes} | ({} if replace else {"n": n})
        out.append(
            {
                "name": bound.name,
                "t": sizes,
                "measured": np.array(measured),
                "error": np.array(errors),
                "proven": bound.evaluate(**values),
                "holds": bool(holds),
                "margin": float(deviation),
            }
        )
    return out


def _newton_and_adagrad(quick: bool, seed: int) -> list[dict]:
    rng = np.random.default_rng(seed)
    out = []
    m, big_m = 2.0, 4 / (3 * np.sqrt(3))
    u = np.arctanh(-1 / np.sqrt(3))
    a = -np.tanh(u) / m - u  # x* where |f'''| peaks: the bound's constant is nearly attained

    class Problem:
        def grad(self, x):
            return m * x + np.tanh(x - a)

        def hess(self, x):
            return (m + 1 / np.cosh(x - a) ** 2)[..., None]

        def value(self, x):
            return np.sum(m * x**2 / 2 + np.log(np.cosh(x - a)), axis=-1)

    x_star = -np.tanh(u) / m
    e0 = np.geomspace(1e-4, 0.5, 12 if quick else 40)
    trace = ck.run(Problem(), ck.optim.newton(1.0), (x_star + e0)[:, None], 1)
    after = np.abs(trace.x[1, :, 0] - x_star)
    result = ck.compare(None, bounds.newton_local_quadratic, measured=after, M=big_m, m=m, e0=e0)
    out.append(_curve("newton_local_quadratic", e0, after, result.proven, result, steps=False))

    width, runs = 2.0, 64
    horizons = np.array([30, 100, 300, 1000] if quick else [30, 100, 300, 1000, 3000])
    steps = int(horizons.max())
    targets = rng.uniform(-width / 2, width / 2, (steps, runs, 1))
    box = Box(-width / 2, width / 2, dim=1)
    seen = []

    def grad(x, t):
        g = np.sign(x - targets[t]) + (x == targets[t])
        seen.append(g)
        return g

    optimizer = ck.optim.projected(ck.optim.adagrad(width / np.sqrt(2), eps=0.0), box)
    trace = ck.run(grad, optimizer, np.zeros((runs, 1)), steps, online=True)
    g = np.stack(seen)
    regrets, proven, holds = [], [], True
    for horizon in horizons:
        x, z, gh = trace.x[:horizon], targets[:horizon], g[:horizon]
        loss = np.abs(x - z).sum(axis=(0, 2))
        best = np.abs(np.median(z, axis=0)[None] - z).sum(axis=(0, 2))
        norms = np.sqrt((gh**2).sum(axis=0)).sum(axis=-1)
        result = ck.compare(
            None, bounds.adagrad_regret, measured=loss - best, D_inf=width, g_norms=norms
        )
        regrets.append(np.max(loss - best))
        proven.append(float(np.min(result.proven)))
        holds &= result.holds
    out.append(
        {
            "name": "adagrad_regret",
            "t": horizons,
            "measured": np.array(regrets),
            "proven": np.array(proven),
            "holds": bool(holds),
            "margin": float(np.min(1 - np.array(regrets) / np.array(proven))),
        }
    )
    return out


def _counterexample(steps: int) -> dict:
    example = bounds.heavy_ball_counterexample()
    optimizer = ck.optim.momentum(example.lr, example.beta)
    cycle = ck.run(example.grad, optimizer, [3.3], steps)
    quadratic = ck.run(lambda x: np.array([[1.0, 25.0]]) * x, optimizer, [3.3, 3.3], steps)
    tail = cycle.x[-30:, 0, 0]
    return {
        "cycle": np.abs(cycle.x[:, 0, 0]),
        "quadratic": np.linalg.norm(quadratic.x[:, 0], axis=-1),
        "period_three": bool(np.allclose(tail[3:], tail[:-3], atol=1e-9)),
        "stays_away": float(np.abs(tail).max()),
        "rate": float(ck.empirical_rate(quadratic)[0]),
        "quadratic_holds": ck.compare(quadratic, bounds.heavy_ball_quadratic, mu=1.0, L=25.0).holds,
        "proven_rate": float(bounds.heavy_ball_quadratic.evaluate(mu=1.0, L=25.0)),
    }


def run(quick: bool = False, seed: int = 0) -> dict[str, Any]:
    """Run every instance; ``seed`` keys the stochastic ones."""
    rng = np.random.default_rng(seed)
    steps = 80 if quick else 300
    panels = []
    panels += _gd(steps)
    panels += _momentum_and_nesterov(steps)
    panels += _rate_bounds(quick, rng)
    panels += _sgd(quick, seed)
    panels += _minibatch(quick, seed)
    panels += _newton_and_adagrad(quick, seed)
    caveat = _counterexample(300 if quick else 900)
    summary = []
    for panel in panels:
        bound = bounds.get(panel["name"])
        summary.append(
            row(
                f"{bound.name}: {bound.statement}",
                f"{bound.quantity} {bound.relation} {bound.formula}",
                (
                    f"smallest relative slack {panel['margin']:.3g}"
                    if bound.relation == "<="
                    else f"largest relative deviation {-panel['margin']:.3g} (6 SE allowed)"
                ),
                panel["holds"],
            )
        )
    summary.append(
        row(
            "heavy ball, Polyak's tuning for [1, 25]: rate on quadratics vs. Lessard et al.'s "
            "strongly convex function (a 3-cycle, no convergence)",
            f"rate {caveat['proven_rate']:.4f} on quadratics; no guarantee off them",
            f"rate {caveat['rate']:.4f} on a quadratic (a double eigenvalue); cycle of period 3: "
            f"{caveat['period_three']}, |x| stays up to {caveat['stays_away']:.3f}",
            caveat["period_three"] and caveat["quadratic_holds"],
        )
    )
    return {"panels": panels, "counterexample": caveat, "summary": summary}


def plot(result: dict[str, Any], outdir: str | Path) -> list[Path]:
    """One figure: a panel per bound (measured against proven), and the counterexample."""
    from convexkit.plotting import figure, savefig

    panels = result["panels"]
    columns = 4
    rows = (len(panels) + 1 + columns - 1) // columns
    fig, axes = figure(columns, rows, width=3.2, height=2.7)
    flat = axes.ravel()
    for ax, panel in zip(flat, panels, strict=False):
        name = panel["name"]
        x = panel["t"]
        if "error" in panel:
            ax.errorbar(
                x,
                panel["measured"],
                yerr=6 * panel["error"],
                fmt="o",
                ms=3,
                color="C0",
                label="measured ± 6 SE",
            )
        else:
            ax.plot(
                x,
                panel["measured"],
                "o" if len(x) < 50 else "-",
                ms=3,
                color="C0",
                label="measured",
            )
        ax.plot(x, panel["proven"], "-", color="C3", lw=1.2, label="proven")
        proven = np.asarray(panel["proven"], dtype=float)
        if np.all(proven > 0) and proven.max() / proven.min() > 10:
            ax.set_yscale("log")
            ax.set_ylim(bottom=max(proven.min() * 1e-3, 1e-17))
        if BOUNDS_LOG_X.get(name, False):
            ax.set_xscale("log")
        ax.set_xlabel(X_LABELS.get(name, "step t"), fontsize=7)
        ax.set_title(("" if panel["holds"] else "FAILS: ") + name, fontsize=8)
        ax.legend(fontsize=6)
    ax = flat[len(panels)]
    caveat = result["counterexample"]
    ax.semilogy(caveat["cycle"] + 1e-300, color="C3", label="Lessard et al.'s f: 3-cycle")
    ax.semilogy(caveat["quadratic"] + 1e-300, color="C0", label="quadratic, λ ∈ {1, 25}")
    ax.set_ylim(1e-17, 1e2)
    ax.set_title("heavy ball, Polyak's tuning (caveat)", fontsize=8)
    ax.set_xlabel("step t")
    ax.legend(fontsize=6)
    for extra in flat[len(panels) + 1 :]:
        extra.set_visible(False)
    fig.tight_layout()
    return [savefig(fig, Path(outdir) / "bounds.png")]
