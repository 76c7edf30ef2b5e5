"""Convexity (seeds, section 11.2): functions and their chords, convex sets and projections.

* The chord test: for 0.5 x^2, cos(pi x) and exp(0.5 x), the segment between two points of the
  graph lies above the graph exactly for the convex ones; the verdicts come from
  :func:`convexkit.convexity`, the nonconvex one with its exact witness.
* Verdict against measurement: for a catalogue of functions (quadratics that are definite,
  singular and indefinite, exp, x log x, softplus, log-sum-exp, sin, x^3, Rosenbrock, ...),
  the proven verdict, mu and L are set beside the smallest and largest Hessian eigenvalues
  measured on a grid of the domain.
* Sets: an intersection of a ball and a half-space (convex: chords stay inside), a union of two
  balls (not convex: the witness from :meth:`Union.is_convex`), and projections onto a ball, a
  box and an intersection (Dykstra), with the obtuse-angle condition and non-expansiveness
  measured on random points.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import sympy as sp

from analyses._common import row
from convexkit.plotting import figure, savefig
from convexkit.symbolic import sets
from convexkit.symbolic.convexity import ConvexityReport, convexity

X, Y = sp.symbols("x y", real=True)
CHORD_FUNCTIONS = (
    ("0.5 x^2", X**2 / 2),
    ("cos(pi x)", sp.cos(sp.pi * X)),
    ("exp(0.5 x)", sp.exp(X / 2)),
)
CHORD = (-1.5, 1.0)


def _catalogue(quick: bool) -> list[tuple[str, sp.Expr, dict | None, tuple]]:
    """(name, f, domain, grid box per variable)."""
    wide, positive = (-3.0, 3.0), (0.05, 4.0)
    items = [
        ("0.5 x^2", X**2 / 2, None, (wide,)),
        ("cos(pi x)", sp.cos(sp.pi * X), None, (wide,)),
        ("exp(0.5 x)", sp.exp(X / 2), None, (wide,)),
        ("x^2 + x y + y^2", X**2 + X * Y + Y**2, None, (wide, wide)),
        ("(x + y)^2", (X + Y) ** 2, None, (wide, wide)),
        ("x^2 - y^2", X**2 - Y**2, None, (wide, wide)),
        ("x log x", X * sp.log(X), None, (positive,)),
        ("log(1 + e^x)", sp.log(1 + sp.exp(X)), None, (wide,)),
        ("log(e^x + e^y)", sp.log(sp.exp(X) + sp.exp(Y)), None, (wide, wide)),
        ("x^4", X**4, None, (wide,)),
        ("sin x", sp.sin(X), None, (wide,)),
        ("x^3", X**3, None, (wide,)),
        ("x^3 on x > 0", X**3, {X: (0, None)}, (positive,)),
        ("Rosenbrock", (1 - X) ** 2 + 100 * (Y - X**2) ** 2, None, (wide, wide)),
        ("log x", sp.log(X), None, (positive,)),
        ("1/x on (1, 2)", 1 / X, {X: (1, 2)}, ((1.0, 2.0),)),
    ]
    if quick:
        keep = {"0.5 x^2", "cos(pi x)", "exp(0.5 x)", "x^2 + x y + y^2", "x^2 - y^2", "sin x"}
        items = [item for item in items if item[0] in keep]
    return items


def _grid(box: tuple, points: int) -> np.ndarray:
    axes = [np.linspace(lo, hi, points) for lo, hi in box]
    mesh = np.meshgrid(*axes, indexing="ij")
    return np.stack([m.ravel() for m in mesh], axis=1)


def _eigen_on_grid(report: ConvexityReport, box: tuple, points: int) -> tuple[float, float]:
    """Smallest eigenvalue and largest absolute eigenvalue of the Hessian on a grid."""
    variables = report.variables
    n = len(variables)
    hess = sp.hessian(report.expr, variables)
    fn = sp.lambdify(variables, hess.tolist(), modules="numpy")
    grid = _grid(box, points if n == 1 else int(np.sqrt(points)) + 1)
    table = fn(*grid.T)
    values = np.asarray(
        [
            [np.broadcast_to(np.asarray(table[i][j], dtype=float), len(grid)) for j in range(n)]
            for i in range(n)
        ]
    )
    matrices = np.moveaxis(values, (0, 1), (-2, -1))
    eig = np.linalg.eigvalsh(matrices)
    return float(eig[:, 0].min()), float(np.abs(eig).max())


def _agrees(report: ConvexityReport, low: float, top: float) -> bool | None:
    tol = 1e-9 * (1 + top)
    kind = report.curvature
    if kind == "unknown":
        return None
    bound_ok = report.L is None or top <= float(report.L) + tol
    if kind == "strongly convex":
        return low >= float(report.mu) - tol and bound_ok
    if kind in ("convex", "affine"):
        return low >= -tol and bound_ok
    if kind == "concave":
        return bound_ok
    return low < 0


def _verdict_text(report: ConvexityReport) -> str:
    parts = [report.curvature]
    if report.mu is not None:
        parts.append(f"mu={_num(report.mu)}")
    if report.L is not None:
        parts.append(f"L={_num(report.L)}")
    if report.witness is not None:
        parts.append("witness " + "(" + ", ".join(str(c) for c in report.witness) + ")")
    return ", ".join(parts)


def _num(value: Any) -> str:
    number = float(value)
    return str(value) if isinstance(value, sp.Rational) else f"{number:.4g}"


def _functions(quick: bool, seed: int) -> dict[str, Any]:
    rows, entries = [], []
    points = 201 if quick else 801
    for name, expr, domain, box in _catalogue(quick):
        report = convexity(expr, domain, seed=seed)
        low, top = _eigen_on_grid(report, box, points)
        agrees = _agrees(report, low, top)
        rows.append(
            row(
                f"convexity of {name}",
                _verdict_text(report),
                f"Hessian eigenvalues on a grid: min {low:.4g}, max |.| {top:.4g}",
                agrees,
            )
        )
        entries.append(
            {
                "name": name,
                "curvature": report.curvature,
                "min_eig": low,
                "max_abs_eig": top,
                "mu": None if report.mu is None else float(report.mu),
                "L": None if report.L is None else float(report.L),
                "witness": None if report.witness is None else [float(c) for c in report.witness],
                "reason": report.reason,
            }
        )
    return {"rows": rows, "entries": entries}


def _chords() -> list[dict[str, Any]]:
    out = []
    xs = np.linspace(-2.0, 2.0, 401)
    a, b = CHORD
    for name, expr in CHORD_FUNCTIONS:
        report = convexity(expr)
        fn = sp.lambdify(X, expr, modules="numpy")
        ys = np.broadcast_to(np.asarray(fn(xs), dtype=float), xs.shape)
        inside = (xs >= a) & (xs <= b)
        chord = fn(a) + (fn(b) - fn(a)) * (xs - a) / (b - a)
        gap = float(np.max(ys[inside] - chord[inside]))
        out.append({"name": name, "x": xs, "y": ys, "chord_gap": gap, "report": report})
    return out


def _sets(seed: int, quick: bool) -> dict[str, Any]:
    rng = np.random.default_rng(seed)
    convex_set = sets.Intersection(sets.Ball([0.0, 0.0], 1.2), sets.HalfSpace([1.0, 1.0], 0.8))
    union = sets.Union(sets.Ball([-1.0, 0.0], 0.8), sets.Ball([1.2, 0.3], 0.6))
    union_verdict = union.is_convex(seed=seed)
    ball = sets.Ball([0.0, 0.0], 1.0)
    box = sets.Box([-1.0, -0.5], [1.0, 0.5])
    both = sets.Intersection(
        sets.Ball([0.0, 0.0], 1.0), sets.Box([-0.4, -2.0], [2.0, 0.6]), tol=1e-13
    )
    count = 12
    starts = rng.uniform(-2.2, 2.2, size=(count, 2))
    many = rng.normal(scale=2.0, size=(200 if quick else 2000, 2))
    rows = []
    checks = {}
    for name, s in (("ball", ball), ("box", box), ("ball and box (Dykstra)", both)):
        p = s.project(many)
        inner = s.project(rng.normal(scale=2.0, size=(64, 2)))
        obtuse = np.einsum("bd,bzd->bz", many - p, inner[None, :, :] - p[:, None, :]).max()
        pairs = rng.permutation(len(many))
        shrink = np.linalg.norm(p - p[pairs], axis=1) / np.maximum(
            np.linalg.norm(many - many[pairs], axis=1), 1e-300
        )
        checks[name] = {"obtuse": float(obtuse), "lipschitz": float(shrink.max())}
        rows.append(
            row(
                f"projection onto {name}: max <x - P(x), z - P(x)>",
                "<= 0",
                f"{obtuse:.3g}",
                bool(obtuse <= 1e-8),
            )
        )
        rows.append(
            row(
                f"projection onto {name}: max |P(x) - P(y)| / |x - y|",
                "<= 1",
                f"{shrink.max():.6f}",
                bool(shrink.max() <= 1 + 1e-9),
            )
        )
    witness_outside = None
    if union_verdict.witness is not None:
        point = np.array([[float(c) for c in union_verdict.point]])
        nearest = union.project(point)
        witness_outside = float(np.linalg.norm(point - nearest))
    rows.append(
        row(
            "union of two balls is convex",
            union_verdict.convex,
            "distance of the witness combination from the union: "
            + (f"{witness_outside:.4g}" if witness_outside is not None else "n/a"),
            bool(union_verdict.convex is False and witness_outside and witness_outside > 0),
        )
    )
    return {
        "convex_set": convex_set,
        "union": union,
        "union_verdict": union_verdict,
        "ball": ball,
        "box": box,
        "both": both,
        "starts": starts,
        "checks": checks,
        "rows": rows,
    }


def run(quick: bool = False, seed: int = 0) -> dict[str, Any]:
    """Verdicts, chords and set computations; ``result["summary"]`` compares proven and measured.

    Parameters
    ----------
    quick : bool
        Fewer functions and grid points.
    seed : int
        Seed of the witness searches and of the random points.
    """
    functions = _functions(quick, seed)
    chords = _chords()
    chord_rows = [
        row(
            f"chord of {c['name']} on [{CHORD[0]}, {CHORD[1]}] lies above the graph",
            c["report"].is_convex,
            f"max (f - chord) = {c['chord_gap']:.4g}",
            c["report"].is_convex == (c["chord_gap"] <= 1e-12),
        )
        for c in chords
    ]
    geometry = _sets(seed, quick)
    return {
        "functions": functions["entries"],
        "chords": chords,
        "sets": geometry,
        "summary": chord_rows + functions["rows"] + geometry["rows"],
    }


def _shade(ax: Any, s: sets.Set, color: str, extent: tuple = (-2.5, 2.5)) -> None:
    axis = np.linspace(*extent, 301)
    gx, gy = np.meshgrid(axis, axis)
    inside = s.contains(np.stack([gx.ravel(), gy.ravel()], axis=1)).reshape(gx.shape)
    ax.contourf(gx, gy, inside.astype(float), levels=[0.5, 1.5], colors=[color], alpha=0.35)
    ax.contour(gx, gy, inside.astype(float), levels=[0.5], colors=[color], linewidths=1.0)
    ax.set_aspect("equal")
    ax.set_xlim(*extent)
    ax.set_ylim(*extent)


def plot(result: dict[str, Any], outdir: str | Path) -> list[Path]:
    """Write the chapter's figures (``convexity_*.png``) into ``outdir``."""
    outdir = Path(outdir)
    written = []

    fig, axes = figure(3, width=3.6, height=3.0)
    a, b = CHORD
    for ax, chord in zip(axes[0], result["chords"], strict=True):
        report = chord["report"]
        fn = sp.lambdify(X, report.expr, modules="numpy")
        ax.plot(chord["x"], chord["y"], color="C0", label="f")
        ax.plot([a, b], [fn(a), fn(b)], color="C3", marker="o", label="chord")
        if report.witness is not None and report.chord is not None:
            left, right, _ = report.chord
            w = float(report.witness[0])
            ax.plot(
                [float(left[0]), float(right[0])],
                [fn(float(left[0])), fn(float(right[0]))],
                color="C2",
                lw=2,
                label="witness chord",
            )
            ax.plot([w], [fn(w)], "k*", ms=8)
        ax.set_title(f"{chord['name']}: {report.curvature}")
        ax.legend(loc="upper center", fontsize=7)
    written.append(savefig(fig, outdir / "convexity_functions.png"))

    entries = result["functions"]
    fig, axes = figure(1, width=7.5, height=3.6)
    ax = axes[0][0]
    colours = {
        "strongly convex": "C2",
        "convex": "C0",
        "affine": "C7",
        "concave": "C1",
        "nonconvex": "C3",
        "unknown": "C4",
    }
    names = [e["name"] for e in entries]
    lows = [e["min_eig"] for e in entries]
    ax.bar(range(len(entries)), lows, color=[colours[e["curvature"]] for e in entries])
    proven = [(i, e["mu"]) for i, e in enumerate(entries) if e["mu"] is not None]
    if proven:
        ax.plot(*zip(*proven, strict=True), "k_", ms=14, mew=2, label="proven mu")
    ax.set_yscale("symlog", linthresh=1e-2)
    ax.axhline(0.0, color="k", lw=0.8)
    ax.set_xticks(range(len(entries)), names, rotation=60, ha="right", fontsize=7)
    ax.set_ylabel("min Hessian eigenvalue on grid")
    for kind, colour in colours.items():
        if any(e["curvature"] == kind for e in entries):
            ax.bar([0], [0], color=colour, label=kind)
    ax.legend(fontsize=7, loc="lower left")
    ax.set_title("proven verdicts against measured curvature")
    fig.tight_layout()
    written.append(savefig(fig, outdir / "convexity_verdicts.png"))

    geometry = result["sets"]
    fig, axes = figure(3, width=3.4, height=3.4)
    ax = axes[0][0]
    _shade(ax, geometry["convex_set"], "C0")
    p, q = np.array([-0.9, -0.5]), np.array([0.4, 0.3])
    ax.plot(*np.stack([p, q]).T, "k-o", ms=3)
    ax.set_title("ball ∩ half-space: convex")
    ax = axes[0][1]
    _shade(ax, geometry["union"], "C1")
    verdict = geometry["union_verdict"]
    if verdict.witness is not None:
        wa, wb, _ = verdict.witness
        pts = np.array([[float(c) for c in wa], [float(c) for c in wb]])
        ax.plot(*pts.T, "k-o", ms=3)
        ax.plot(*[float(c) for c in verdict.point], "r*", ms=10, label="outside")
        ax.legend(fontsize=7, loc="lower right")
    ax.set_title("union of balls: not convex")
    ax = axes[0][2]
    _shade(ax, geometry["both"].sets[1], "C7")
    _shade(ax, geometry["both"], "C2")
    starts = geometry["starts"]
    ends = geometry["both"].project(starts)
    for s, e in zip(starts, ends, strict=True):
        ax.annotate("", e, s, arrowprops={"arrowstyle": "->", "lw": 0.8})
    ax.set_title("intersection, Dykstra projection")
    written.append(savefig(fig, outdir / "convexity_sets.png"))

    fig, axes = figure(2, width=3.6, height=3.6)
    for ax, key, colour in ((axes[0][0], "ball", "C0"), (axes[0][1], "box", "C2")):
        s = geometry[key]
        _shade(ax, s, colour)
        ends = s.project(starts)
        ax.plot(*starts.T, "k.", ms=4)
        for start, end in zip(starts, ends, strict=True):
            ax.annotate("", end, start, arrowprops={"arrowstyle": "->", "lw": 0.8})
        check = geometry["checks"][key]
        ax.set_title(
            f"projection onto the {key}\nmax obtuse {check['obtuse']:.1e}, "
            f"Lipschitz {check['lipschitz']:.3f}",
            fontsize=8,
        )
    written.append(savefig(fig, outdir / "convexity_projections.png"))
    return written
