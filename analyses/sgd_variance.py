"""SGD theory against simulation: gradient variance, the convex bound, noise floors, schedules.

1. **Variance against batch size.** For a finite sum ``f = (1/n) sum f_i`` with per-example
   gradients ``g_i`` at a fixed point, ``sigma^2 = (1/n) sum |g_i - g|^2``. A minibatch of b
   examples drawn with replacement has ``E|g_b - g|^2 = sigma^2 / b``; drawn without
   replacement (one slice of a shuffle) it has the finite-population correction
   ``(n - b) / (n - 1) * sigma^2 / b``. Measured by Monte Carlo over thousands of minibatches
   drawn at once by the trainer's own sampler and differentiated at once by the model.
2. **The convex SGD bound** (the book's 11.4.3): for convex f with ``E|g|^2 <= L^2`` and
   ``|x_0 - x*| <= r``, constant steps eta for T steps give
   ``(1/T) sum_t E f(x_t) - f* <= (r^2 + L^2 eta^2 T) / (2 eta T)``, smallest at
   ``eta* = r / (L sqrt(T))`` where it equals ``r L / sqrt(T)``. Measured on well-specified
   logistic regression (gradients bounded by ``L = max_i |(x_i, 1)|``), over a grid of steps
   trained at once.
3. **Noise floors and schedules, exactly.** For linear least squares and sampling with
   replacement the mean ``m_t`` and second moment ``C_t`` of ``e_t = x_t - x*`` obey a closed,
   linear recursion (``a_i = (x_i, 1)``, ``r_i`` the residual at the optimum, ``H`` the
   Hessian)::

       m' = (I - eta H) m
       C' = C - eta (H C + C H) + eta^2 [ (1 - 1/b) H C H
                                           + (1/b) (1/n) sum_i w_i a_i a_i^T ],
       w_i = a_i^T C a_i + 2 r_i a_i^T m + r_i^2,

   and ``E f(x_t) - f* = tr(H C_t) / 2`` exactly, for any step sequence. Its fixed point is the
   constant-step noise floor (about ``eta tr(Sigma*) / (4 b)`` for small steps, with
   ``Sigma* = (1/n) sum r_i^2 a_i a_i^T``); iterated with a schedule's steps it gives the
   exact expected loss of every schedule. Both are compared with the mean over many seeds.

Stochastic claims are checked within 6 standard errors of the Monte Carlo mean.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

import convexkit as ck
from analyses._common import row
from convexkit.training import epoch_order

Z = 6.0  # standard errors allowed between theory and simulation


# --------------------------------------------------------------------------------------------
# 1. gradient variance


def per_example_gradients(
    model: Any, params: np.ndarray, X: np.ndarray, y: np.ndarray
) -> np.ndarray:
    """Gradients of every example's loss at ``params`` (P,), shape (n, P): each example is a
    run of its own (batch axis n, one example per minibatch)."""
    n = X.shape[0]
    tiled = np.broadcast_to(params, (n, params.shape[-1])).copy()
    return model.loss_and_grad(tiled, X[:, None, :], y[:, None])[1]


def gradient_variance(G: np.ndarray, batch_size: int, replacement: bool) -> float:
    """Exact ``E|g_b - g|^2`` of the minibatch gradient from per-example gradients G (n, P):
    ``sigma^2 / b`` with replacement, ``(n - b) / (n - 1) * sigma^2 / b`` without."""
    n = G.shape[0]
    sigma2 = float(np.mean(np.sum((G - G.mean(axis=0)) ** 2, axis=1)))
    if replacement:
        return sigma2 / batch_size
    return (n - batch_size) / (n - 1) * sigma2 / batch_size if n > 1 else 0.0


def measured_variance(
    G: np.ndarray,
    batch_sizes: list[int],
    sampling: str,
    draws: int,
    seed: int = 0,
) -> list[tuple[float, float]]:
    """Monte Carlo ``E|g_b - g|^2`` and its standard error for each batch size.

    Each of ``draws`` minibatches is the first b indices of one epoch order of the trainer's own
    sampler (``sampling="shuffle"``: without replacement; ``"replacement"``: with), one seed per
    draw. A minibatch gradient is the mean of its examples' gradients, so the cumulative sums of
    G along each order give the minibatch gradients of every batch size at once.

    Parameters
    ----------
    G : array of shape (n, P)
        Per-example gradients (:func:`per_example_gradients`).
    batch_sizes : list of int
    sampling : {"shuffle", "replacement"}
    draws : int
        Minibatches per batch size.
    seed : int
        Draw i uses seed ``seed * draws + i``.

    Returns
    -------
    list of (mean, standard error)
    """
    n = G.shape[0]
    order = epoch_order(np.arange(draws) + seed * draws, 0, n, sampling)
    full = G.mean(axis=0)
    last = max(batch_sizes)
    squared = np.empty((len(batch_sizes), draws))
    chunk = max(1, 2_000_000 // (last * G.shape[1]))
    for start in range(0, draws, chunk):  # chunks of draws bound the memory
        prefix = np.cumsum(G[order[start : start + chunk, :last]], axis=1)  # sums of first b
        for k, b in enumerate(batch_sizes):
            squared[k, start : start + chunk] = np.sum((prefix[:, b - 1] / b - full) ** 2, axis=1)
    return [(float(v.mean()), float(v.std(ddof=1) / np.sqrt(draws))) for v in squared]


# --------------------------------------------------------------------------------------------
# 2. the convex bound


def convex_bound(r: float, L: float, lr: Any, steps: int) -> Any:
    """``(r^2 + L^2 eta^2 T) / (2 eta T)``: the bound on the average expected gap over T steps."""
    lr = np.asarray(lr, dtype=float)
    return (r**2 + L**2 * lr**2 * steps) / (2 * lr * steps)


def best_constant_step(r: float, L: float, steps: int) -> float:
    """The bound's minimiser ``r / (L sqrt(T))`` (where the bound is ``r L / sqrt(T)``)."""
    return r / (L * np.sqrt(steps))


# --------------------------------------------------------------------------------------------
# 3. exact moments of SGD on least squares


def least_squares_problem(X: np.ndarray, y: np.ndarray) -> dict[str, np.ndarray]:
    """Design ``A = [X, 1]``, optimum, residuals at the optimum, Hessian, f* and Sigma*."""
    A = np.hstack([X, np.ones((X.shape[0], 1))])
    theta = np.linalg.lstsq(A, y, rcond=None)[0]
    residual = A @ theta - y
    n = A.shape[0]
    return {
        "A": A,
        "theta": theta,
        "residual": residual,
        "H": A.T @ A / n,
        "f_star": 0.5 * float(np.mean(residual**2)),
        "sigma_star": (A * residual[:, None] ** 2).T @ A / n,
    }


def sgd_moments(
    problem: dict[str, np.ndarray],
    lrs: np.ndarray,
    batch_size: int,
    m0: np.ndarray,
    C0: np.ndarray,
) -> np.ndarray:
    """Exact ``E f(x_t) - f*`` of minibatch SGD with replacement on least squares.

    Parameters
    ----------
    problem : dict
        From :func:`least_squares_problem`.
    lrs : array of shape (T, K)
        The step size of each of T steps for K step sequences (iterated together).
    batch_size : int
        b, examples per minibatch (drawn with replacement).
    m0 : array of shape (P,)
        ``E[x_0] - x*``.
    C0 : array of shape (P, P)
        ``E[(x_0 - x*)(x_0 - x*)^T]``.

    Returns
    -------
    numpy.ndarray of shape (T + 1, K)
        ``tr(H C_t) / 2`` for t = 0 .. T.
    """
    A, r, H = problem["A"], problem["residual"], problem["H"]
    n, P = A.shape
    lrs = np.asarray(lrs, dtype=float)
    T, K = lrs.shape
    outer = np.einsum("ni,nj->nij", A, A).reshape(n, P * P)  # rows vec(a_i a_i^T)
    weights_star = r**2
    m = np.broadcast_to(m0, (K, P)).copy()
    C = np.broadcast_to(C0, (K, P, P)).copy()
    out = np.empty((T + 1, K))
    out[0] = 0.5 * np.einsum("ij,kji->k", H, C)
    keep = 1.0 - 1.0 / batch_size
    for t in range(T):
        eta = lrs[t][:, None, None]
        w = C.reshape(K, P * P) @ outer.T + 2.0 * (m @ A.T) * r + weights_star  # (K, n)
        second = (w @ outer / n).reshape(K, P, P)  # (1/n) sum w_i a_i a_i^T
        HC = H @ C
        C = (
            C
            - eta * (HC + np.transpose(HC, (0, 2, 1)))
            + eta**2 * (keep * (HC @ H) + second / batch_size)
        )
        C = 0.5 * (C + np.transpose(C, (0, 2, 1)))  # keep C symmetric against rounding
        m = m - lrs[t][:, None] * (m @ H)
        out[t + 1] = 0.5 * np.einsum("ij,kji->k", H, C)
    return out


def noise_floor(problem: dict[str, np.ndarray], lr: float, batch_size: int) -> float:
    """The constant-step noise floor: ``tr(H C) / 2`` at the fixed point of the recursion of
    :func:`sgd_moments` (a linear system in the P^2 entries of C)."""
    A, H = problem["A"], problem["H"]
    n, P = A.shape
    eye = np.eye(P)
    outer = np.einsum("ni,nj->nij", A, A).reshape(n, P * P)
    M = outer.T @ outer / n  # vec(C) -> vec((1/n) sum (a^T C a) a a^T)
    operator = (
        -lr * (np.kron(H, eye) + np.kron(eye, H))
        + lr**2 * (1 - 1 / batch_size) * np.kron(H, H)
        + lr**2 / batch_size * M
    )
    rhs = -(lr**2) / batch_size * problem["sigma_star"].reshape(-1)
    C = np.linalg.solve(operator, rhs).reshape(P, P)
    return 0.5 * float(np.trace(H @ C))


# --------------------------------------------------------------------------------------------
# the study


def _schedules(steps: int) -> list[tuple[str, Any]]:
    eta0 = 0.05
    return [
        ("constant 0.05", ck.schedules.constant(eta0)),
        ("exponential, rate 2e-3", ck.schedules.exponential(eta0, 2e-3)),
        ("polynomial, α 0.5, β 0.01", ck.schedules.polynomial(eta0, 0.5, 0.01)),
        ("inverse time, rate 0.01", ck.schedules.inverse_time(eta0, 0.01)),
        ("square root", ck.schedules.square_root(eta0)),
        ("factor 0.998, floor 1e-3", ck.schedules.factor(0.998, 1e-3, eta0)),
        (
            "multi-factor ×0.1 at 1/3, 2/3",
            ck.schedules.multi_factor([steps // 3, 2 * steps // 3], 0.1, eta0),
        ),
        ("cosine to 0", ck.schedules.cosine(steps, eta0, 0.0)),
    ]


def run(quick: bool = False, seed: int = 0) -> dict[str, Any]:
    """Every comparison of the module docstring.

    Parameters
    ----------
    quick : bool
        Fewer draws, seeds and steps.
    seed : int
        Seed of every random stream.

    Returns
    -------
    dict
        ``"variance"``, ``"bound"``, ``"floors"``, ``"schedules"`` and the ``"summary"`` rows.
    """
    X, y = ck.data.airfoil()
    model = ck.models.linear_regression(5)
    summary = []

    # 1. variance against batch size, at the book's initial point
    params = model.init(seed)[0]
    G = per_example_gradients(model, params, X, y)
    n = X.shape[0]
    draws = 500 if quick else 3000
    batch_sizes = [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 1500]
    variance = {"batch_sizes": batch_sizes, "draws": draws}
    for sampling, replacement in (("replacement", True), ("shuffle", False)):
        exact = [gradient_variance(G, b, replacement) for b in batch_sizes]
        measured = measured_variance(G, batch_sizes, sampling, draws, seed)
        variance[sampling] = {
            "exact": exact,
            "measured": [m for m, _ in measured],
            "se": [s for _, s in measured],
        }
        for b, e, (m, s) in zip(batch_sizes, exact, measured, strict=True):
            if b in (1, 10, 100, 1000, 1500):
                formula = "σ²/b" if replacement else "(n-b)/(n-1)·σ²/b"
                summary.append(
                    row(
                        f"E|g_b - g|² {'with' if replacement else 'without'} replacement, b={b} "
                        f"({formula}; {draws} minibatches)",
                        e,
                        f"{m:.6g} ± {s:.2g}",
                        abs(m - e) <= Z * s + 1e-12 * max(e, 1.0),
                    )
                )
    small_n, small_b = 20, 10
    G_small = per_example_gradients(model, params, X[:small_n], y[:small_n])
    with_fpc = gradient_variance(G_small, small_b, replacement=False)
    without_fpc = gradient_variance(G_small, small_b, replacement=True)
    ((m, s),) = measured_variance(G_small, [small_b], "shuffle", 20 * draws, seed)
    variance["small"] = {
        "n": small_n,
        "b": small_b,
        "fpc": with_fpc,
        "no_fpc": without_fpc,
        "measured": m,
        "se": s,
    }
    summary.append(
        row(
            f"finite-population factor at n={small_n}, b={small_b}: (n-b)/(n-1)·σ²/b, not σ²/b = "
            f"{without_fpc:.4g}",
            with_fpc,
            f"{m:.5g} ± {s:.2g} ({abs(m - without_fpc) / s:.0f} SE from σ²/b)",
            abs(m - with_fpc) <= Z * s and abs(m - without_fpc) > Z * s,
        )
    )

    # 2. the convex bound on logistic regression: T steps of batch 1 (one epoch of T examples)
    steps = 200 if quick else 400
    problem = ck.data.logistic_regression_data(steps, 5, seed=seed)
    design = np.hstack([problem.X, np.ones((steps, 1))])
    L = float(np.max(np.linalg.norm(design, axis=1)))
    r = float(np.linalg.norm(problem.optimum))  # x_0 = 0
    eta_star = best_constant_step(r, L, steps)
    factors = 2.0 ** np.arange(-3, 4)
    per_step = 12 if quick else 32
    grid = np.repeat(eta_star * factors, per_step)
    classifier = ck.models.logistic_regression(5)
    history = ck.train(
        classifier,
        ck.optim.sgd(grid),
        (problem.X, problem.y),
        batch_size=1,
        epochs=1,
        seed=[seed * grid.size + i for i in range(grid.size)],
        sampling="replacement",
        eval_every=1,
        init=np.zeros(classifier.n_params),
    )
    gaps = (history.loss[:-1].mean(axis=0) - problem.optimal_loss).reshape(len(factors), per_step)
    measured_gap = gaps.mean(axis=1)
    gap_se = gaps.std(axis=1, ddof=1) / np.sqrt(per_step)
    bounds = convex_bound(r, L, eta_star * factors, steps)
    best = int(np.argmin(measured_gap))
    bound = {
        "lr": eta_star * factors,
        "eta_star": eta_star,
        "bound": bounds,
        "measured": measured_gap,
        "se": gap_se,
        "r": r,
        "L": L,
        "steps": steps,
    }
    summary += [
        row(
            f"convex SGD bound at η* = r/(L√T) = {eta_star:.3g}: rL/√T (r={r:.3g}, L={L:.3g}, "
            f"T={steps}) vs (1/T)Σ E f(x_t) - f*",
            float(bounds[3]),
            f"{measured_gap[3]:.4g} ± {gap_se[3]:.2g}",
            bool(measured_gap[3] <= bounds[3]),
        ),
        row(
            f"convex SGD bound holds at all {len(factors)} steps η*·2^k, k = -3..3",
            "measured <= (r² + L²η²T)/(2ηT)",
            f"largest measured/bound {np.max(measured_gap / bounds):.3g}",
            bool(np.all(measured_gap <= bounds)),
        ),
        row(
            "best constant step: the bound's η* against the best measured on the grid (the bound "
            "is worst-case; they need not coincide)",
            eta_star,
            float(eta_star * factors[best]),
            None,
        ),
    ]

    # 3a. constant-step noise floors on airfoil, from the optimum, sampling with replacement
    ls = least_squares_problem(X, y)
    P = ls["A"].shape[1]
    count = 16 if quick else 48
    horizon = 600 if quick else 2000
    floors = []
    for batch_size, lrs in ((1, (0.002, 0.005, 0.01)), (10, (0.02, 0.05, 0.1))):
        grid = np.repeat(np.asarray(lrs), count)
        epochs = horizon * batch_size / n
        history = ck.train(
            model,
            ck.optim.sgd(grid),
            (X, y),
            batch_size=batch_size,
            epochs=epochs,
            seed=[seed * grid.size + i for i in range(grid.size)],
            sampling="replacement",
            eval_every=max(1, horizon * batch_size // 60),
            init=ls["theta"],
        )
        steps_at = np.rint(history.epochs * n / batch_size).astype(int)
        exact = sgd_moments(
            ls,
            np.tile(np.asarray(lrs), (steps_at[-1], 1)),
            batch_size,
            np.zeros(P),
            np.zeros((P, P)),
        )[steps_at]
        gaps = (history.loss - ls["f_star"]).reshape(len(steps_at), len(lrs), count)
        tail = steps_at >= steps_at[-1] // 2
        measured_tail = gaps[tail].mean(axis=0)  # (lrs, count): each run's time average
        for k, lr in enumerate(lrs):
            floor = noise_floor(ls, lr, batch_size)
            approx = lr * float(np.trace(ls["sigma_star"])) / (4 * batch_size)
            exact_tail = float(exact[tail, k].mean())
            mean = float(measured_tail[k].mean())
            se = float(measured_tail[k].std(ddof=1) / np.sqrt(count))
            floors.append(
                {
                    "lr": lr,
                    "batch_size": batch_size,
                    "steps": steps_at,
                    "exact": exact[:, k],
                    "measured": gaps[:, k].mean(axis=1),
                    "floor": floor,
                    "approx": approx,
                }
            )
            summary.append(
                row(
                    f"constant step η={lr}, b={batch_size}: E f - f* averaged over steps "
                    f"{steps_at[-1] // 2}..{steps_at[-1]} from x*, exact recursion "
                    f"(floor {floor:.4g}; "
                    f"ητr(Σ*)/(4b) = {approx:.4g})",
                    exact_tail,
                    f"{mean:.4g} ± {se:.2g}",
                    abs(mean - exact_tail) <= Z * se,
                )
            )

    # 3b. schedules: the book's minibatch-10 run continued for 10 epochs, from the book's init
    steps = 300 if quick else 1200
    std = np.zeros(P)
    std[:-1] = 0.01  # the book's initialisation: w ~ N(0, 0.01^2), b = 0
    m0 = -ls["theta"]
    C0 = np.outer(m0, m0) + np.diag(std**2)
    schedules = []
    for label, schedule in _schedules(steps):
        lrs = np.asarray([float(schedule(t)) for t in range(steps)])[:, None]
        history = ck.train(
            model,
            ck.optim.sgd(schedule),
            (X, y),
            batch_size=10,
            epochs=steps * 10 / n,
            seed=[seed * count + i for i in range(count)],
            sampling="replacement",
            eval_every=steps * 10 // 20,
        )
        steps_at = np.rint(history.epochs * n / 10).astype(int)
        exact = sgd_moments(ls, lrs, 10, m0, C0)[steps_at, 0]
        gaps = history.loss - ls["f_star"]
        mean = gaps.mean(axis=1)
        se = gaps.std(axis=1, ddof=1) / np.sqrt(count)
        schedules.append(
            {
                "label": label,
                "steps": steps_at,
                "exact": exact,
                "measured": mean,
                "se": se,
                "lr": lrs[:, 0],
            }
        )
        summary.append(
            row(
                f"schedule {label}: E f(x_T) - f* after T={steps} steps of batch 10 "
                "(exact recursion)",
                float(exact[-1]),
                f"{mean[-1]:.4g} ± {se[-1]:.2g}",
                abs(mean[-1] - exact[-1]) <= Z * se[-1],
            )
        )
    return {
        "variance": variance,
        "bound": bound,
        "floors": floors,
        "schedules": schedules,
        "f_star": ls["f_star"],
        "seeds": count,
        "summary": summary,
    }


def plot(result: dict[str, Any], outdir: str | Path) -> list[Path]:
    """Four figures: variance against batch size, the convex bound, noise floors, schedules."""
    from convexkit.plotting import figure, savefig

    outdir = Path(outdir)
    paths = []

    v = result["variance"]
    fig, axes = figure(2, width=4.4, height=3.4)
    ax = axes[0][0]
    sizes = np.asarray(v["batch_sizes"])
    for sampling, label, marker in (
        ("replacement", "with replacement: σ²/b", "o"),
        ("shuffle", "without: (n-b)/(n-1)·σ²/b", "s"),
    ):
        exact = np.asarray(v[sampling]["exact"])
        measured = np.asarray(v[sampling]["measured"])
        positive = exact > 0
        line = ax.plot(sizes[positive], exact[positive], label=label)[0]
        ax.errorbar(
            sizes[positive],
            measured[positive],
            yerr=Z * np.asarray(v[sampling]["se"])[positive],
            fmt=marker,
            markersize=3,
            color=line.get_color(),
            label=f"measured ({v['draws']} minibatches, ±6 SE)",
        )
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("batch size b")
    ax.set_ylabel("E|g_b - g|²")
    ax.set_title("airfoil, n = 1500")
    ax.legend(fontsize=7)
    ax = axes[0][1]
    small = v["small"]
    names = ["σ²/b (no correction)", "(n-b)/(n-1)·σ²/b", "measured"]
    ax.bar(
        names,
        [small["no_fpc"], small["fpc"], small["measured"]],
        yerr=[0, 0, Z * small["se"]],
        color=["0.7", "C1", "C2"],
    )
    ax.set_title(f"n = {small['n']}, b = {small['b']}: the finite-population factor")
    ax.tick_params(axis="x", labelsize=7)
    fig.tight_layout()
    paths.append(savefig(fig, outdir / "sgd_variance_batch_size.png"))

    b = result["bound"]
    fig, axes = figure(1, width=4.6, height=3.4)
    ax = axes[0][0]
    dense = np.geomspace(b["lr"][0], b["lr"][-1], 200)
    ax.plot(
        dense, convex_bound(b["r"], b["L"], dense, b["steps"]), label="bound (r² + L²η²T)/(2ηT)"
    )
    ax.errorbar(
        b["lr"],
        b["measured"],
        yerr=Z * b["se"],
        fmt="o",
        markersize=3,
        label="measured (1/T)Σ E f(x_t) - f*",
    )
    ax.axvline(b["eta_star"], color="black", linestyle="--", linewidth=0.8, label="η* = r/(L√T)")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("constant step η")
    ax.set_title(f"convex SGD bound, logistic regression, T = {b['steps']}")
    ax.legend(fontsize=7)
    fig.tight_layout()
    paths.append(savefig(fig, outdir / "sgd_convex_bound.png"))

    fig, axes = figure(1, width=5.0, height=3.6)
    ax = axes[0][0]
    for entry in result["floors"]:
        line = ax.plot(
            entry["steps"][1:],
            entry["exact"][1:],
            label=f"η={entry['lr']}, b={entry['batch_size']}",
        )[0]
        ax.plot(
            entry["steps"][1:], entry["measured"][1:], ".", color=line.get_color(), markersize=3
        )
        ax.axhline(entry["floor"], color=line.get_color(), linestyle=":", linewidth=0.8)
    ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.set_ylabel("E f - f* (lines exact, dots measured)")
    ax.set_title("constant-step noise floors (dotted: fixed point)")
    ax.legend(fontsize=7)
    fig.tight_layout()
    paths.append(savefig(fig, outdir / "sgd_noise_floors.png"))

    fig, axes = figure(1, width=5.4, height=3.8)
    ax = axes[0][0]
    for entry in result["schedules"]:
        line = ax.plot(entry["steps"], entry["exact"], label=entry["label"])[0]
        ax.plot(entry["steps"], entry["measured"], ".", color=line.get_color(), markersize=3)
    ax.set_yscale("log")
    ax.set_xlabel("step (batch 10)")
    ax.set_ylabel("E f - f* (lines exact, dots measured)")
    ax.set_title(f"schedules on airfoil, mean over {result['seeds']} seeds")
    ax.legend(fontsize=6)
    fig.tight_layout()
    paths.append(savefig(fig, outdir / "sgd_variance_schedules.png"))
    return paths
