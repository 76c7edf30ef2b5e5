"""CuPy kernels generated from the optimizers' own update code.

The update is traced on SymPy symbols exactly as for the CPU kernels (:mod:`.fused`), and the
same :class:`~convexkit.kernels.fused._Program` prints it, here in CUDA C++:

* :func:`cuda_update`: one ``cupy.ElementwiseKernel`` per optimizer structure and dtype reads
  x, the gradient and the state once and writes the new x and state once, instead of the dozen
  array passes of the array code. Hyperparameters and the terms that depend only on them and
  the step are computed on the host (as the array code computes them) and passed per row.
* :func:`cuda_trajectories`: one ``cupy.RawKernel`` thread per trajectory runs every step of
  a Problem with few variables in registers (gradient, update, divergence test, records), so
  a sweep touches memory only to record.

Exactness: the kernel is compiled with ``--fmad=false``, so no multiply-add is contracted;
CUDA's ``+ - * /`` and ``sqrt`` round correctly by default, so the results equal the array
path's bit for bit wherever the update uses only these (and abs, sign, max/min, branches).
Transcendental functions and general powers agree to rounding only (CUDA's libdevice
against the host's libm).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from .fused import (
    UpdateForm,
    _narrow_names,
    _trajectory_programs,
    _trajectory_tables,
    _update_program,
    pre_table,
    update_form,
)

__all__ = [
    "CUDA_OPTIONS",
    "PREAMBLE",
    "ElementwiseUpdate",
    "cuda_trajectories",
    "cuda_update",
    "elementwise_parts",
    "trajectory_source",
]

#: NVRTC options of every generated kernel: no fused multiply-add, so rounding is per operation
CUDA_OPTIONS = ("--fmad=false",)

_CTYPES = {"float32": "float", "float64": "double"}

#: Device helpers of the generated kernels, with the NaN rules of the numba helpers
PREAMBLE = """
template <typename T> __device__ T ck_sign(T a) {
    if (a != a) return a;
    return a > T(0) ? T(1) : (a < T(0) ? T(-1) : T(0));
}
template <typename T> __device__ T ck_maximum(T a, T b) {
    if (a != a || b != b) return a + b;
    return a >= b ? a : b;
}
template <typename T> __device__ T ck_minimum(T a, T b) {
    if (a != a || b != b) return a + b;
    return a <= b ? a : b;
}
template <typename T> __device__ T ck_power(T a, T e) {
    // NumPy's fast paths for ``array ** scalar``; pow otherwise
    if (e == T(2)) return a * a;
    if (e == T(1)) return a;
    if (e == T(0.5)) return sqrt(a);
    if (e == T(-1)) return T(1) / a;
    if (e == T(0)) return T(1);
    return pow(a, e);
}
"""


class _Cuda:
    """How :class:`~convexkit.kernels.fused._Program` spells operations in CUDA C++ for an
    element type ``ctype`` ("float" or "double"); every value is ``const auto``, its type
    fixed by explicit casts as in the numba kernels."""

    true = "true"
    _calls = {"abs": "fabs", "_sign": "ck_sign", "_maximum": "ck_maximum"}
    _calls |= {"_minimum": "ck_minimum", "_power": "ck_power"}

    def __init__(self, ctype: str) -> None:
        self.ctype = ctype

    def cast(self, name: str) -> str:
        return f"(({self.ctype})({name}))"

    def number(self, value: float) -> str:
        # NVRTC has no <cmath>, so no INFINITY or NAN macros: IEEE division makes them
        if value != value:
            return "(0.0 / 0.0)"
        if value in (np.inf, -np.inf):
            return "(1.0 / 0.0)" if value > 0 else "(-1.0 / 0.0)"
        text = repr(float(value))
        return f"({text})" if text.startswith("-") else text

    def one(self, narrow: bool) -> str:
        return f"(({self.ctype})1.0)" if narrow else "1.0"

    def assign(self, name: str, code: str, narrow: bool) -> str:
        return f"const auto {name} = {code};"

    def call(self, function: str, *args: str) -> str:
        return f"{self._calls.get(function, function)}({', '.join(args)})"

    def power(self, base: str, exponent: str) -> str:
        return f"pow({base}, {exponent})"

    def select(self, condition: str, then: str, otherwise: str) -> str:
        return f"(({condition}) ? {then} : {otherwise})"


def elementwise_parts(form: UpdateForm, dtype: Any) -> dict[str, Any]:
    """The arguments of ``cupy.ElementwiseKernel`` for ``form``'s update in ``dtype``.

    Parameters: ``x_in``, ``g_in``, one ``<state>_in`` per state entry, then one float64
    ``p_<name>`` per hyperparameter and hoisted term (the rows of :func:`pre_table`, shaped
    (rows, 1) to broadcast); outputs ``x_out`` and ``<state>_out``. Inputs are read into
    locals before any output is written, so outputs may be the input arrays (in place).
    """
    name = np.dtype(dtype).name
    if name not in _CTYPES:
        raise ValueError(f"dtype={name!r} is not allowed: expected float32 or float64")
    ctype = _CTYPES[name]
    program, results = _update_program(form, _Cuda(ctype))
    x, g, *states = form.inputs
    elements = [x.name, g.name, *(s.name for s in states)]
    narrow = _narrow_names(form)
    leaves = [(h, h in narrow) for h in form.hyper]
    nodes = [(n, is_narrow) for n, _, is_narrow in program.hoisted_nodes]
    in_params = [f"{name} {e}_in" for e in elements] + [f"float64 p_{n}" for n, _ in leaves + nodes]
    outputs = [x.name, *(s.name for s in states)]
    out_params = [f"{name} {e}_out" for e in outputs]
    body = [f"const {ctype} {e} = {e}_in;" for e in elements]
    body += [
        f"const {ctype if is_narrow else 'double'} {n} = p_{n};" for n, is_narrow in leaves + nodes
    ]
    body += program.inner
    body += [f"{e}_out = {value};" for e, value in zip(outputs, results, strict=True)]
    return {
        "in_params": ", ".join(in_params),
        "out_params": ", ".join(out_params),
        "operation": "\n".join(body),
        "name": f"convexkit_{form.name}_{name}",
        "preamble": PREAMBLE,
        "options": CUDA_OPTIONS,
    }


class ElementwiseUpdate:
    """An optimizer's update as one generated elementwise kernel on CuPy arrays.

    :meth:`update` has the optimizer's contract, ``update(x, grad, state, step) -> (x_next,
    state_next)``, returning new arrays; :meth:`step_inplace` overwrites x and the state.
    """

    def __init__(self, optimizer: Any, form: UpdateForm, kernel_factory: Callable) -> None:
        self.optimizer = optimizer
        self.form = form
        self._factory = kernel_factory
        self._program, _ = _update_program(form)
        self._kernels: dict[str, Any] = {}

    def kernel(self, dtype: Any) -> Any:
        """The compiled elementwise kernel for ``dtype`` (built on first use)."""
        key = np.dtype(dtype).name
        if key not in self._kernels:
            self._kernels[key] = self._factory(**elementwise_parts(self.form, key))
        return self._kernels[key]

    def _arguments(self, x: Any, step: int) -> list[Any]:
        from array_api_compat import array_namespace

        xp = array_namespace(x)
        rows = int(x.shape[0])
        table = pre_table(self.form, self._program, rows, step, np.dtype(str(x.dtype)))
        table = xp.asarray(table, device=x.device)  # x's GPU, not the current one
        columns = len(self.form.hyper) + len(self._program.hoisted_nodes)
        return [table[i][:, None] for i in range(columns)]

    def update(
        self, x: Any, grad: Any, state: tuple, step: int, oracle: Any = None
    ) -> tuple[Any, Any]:
        """The optimizer's pure update, computed by the kernel into new arrays."""
        outputs = self.kernel(x.dtype)(x, grad, *state, *self._arguments(x, step))
        outputs = outputs if isinstance(outputs, tuple) else (outputs,)
        x_next, *state_next = outputs
        state_type = self.form.state_type
        return x_next, state_type(*state_next) if hasattr(state_type, "_fields") else tuple(
            state_next
        )

    def step_inplace(self, x: Any, grad: Any, state: tuple, step: int) -> None:
        """Overwrite ``x`` and the arrays of ``state`` with their values after one step."""
        self.kernel(x.dtype)(x, grad, *state, *self._arguments(x, step), x, *state)


def cuda_update(
    optimizer: Any, kernel_factory: Callable | None = None
) -> tuple[ElementwiseUpdate | None, str]:
    """An :class:`ElementwiseUpdate` for ``optimizer``, or (None, reason) where none applies.

    ``kernel_factory`` builds a kernel from :func:`elementwise_parts`' keyword arguments;
    ``cupy.ElementwiseKernel`` by default.
    """
    if kernel_factory is None:
        try:
            import cupy
        except ImportError:
            return None, "CuPy is not installed (pip install 'convexkit[gpu]')"
        kernel_factory = cupy.ElementwiseKernel
    form, reason = update_form(optimizer)
    if form is None:
        return None, reason
    return ElementwiseUpdate(optimizer, form, kernel_factory), "fused"


# ---- whole trajectories, one thread each ---------------------------------------------------


def trajectory_source(form: UpdateForm, problem: Any, dtype: Any) -> str:
    """CUDA source of the kernel ``trajectories`` that runs ``form``'s optimizer on
    ``problem`` for every trajectory, one thread each.

    Arguments, in order: x (d, B) then each state entry (d, B), updated in place; hyper
    (n_hyper, B) float64; sched (n_scheduled, steps) float64; params (n_params, B); steps;
    rows_of (steps + 1,) int64, the output row of each step or -1; loss_out (rows, B); x_out
    (rows, B, d); keep_loss, keep_x (int32); threshold (float64); diverged_at (B,) int64;
    batch (int64). Per step as the array path: a trajectory whose new iterate has a
    coordinate beyond ``threshold`` (or not finite) keeps that iterate and is frozen.
    """
    import sympy as sp

    name = np.dtype(dtype).name
    if name not in _CTYPES:
        raise ValueError(f"dtype={name!r} is not allowed: expected float32 or float64")
    ctype = _CTYPES[name]
    programs = _trajectory_programs(form, problem, _Cuda(ctype))
    d, params, state_names = programs.d, programs.params, programs.state_names
    arrays, scheduled = programs.arrays, programs.scheduled
    gradient_program, gradient = programs.gradient_program, programs.gradient
    step_program, updates = programs.step_program, programs.updates
    value_program, value = programs.value_program, programs.value

    state_args = "".join(f", {ctype}* {n}_a" for n in state_names)
    lines = [
        PREAMBLE.replace("__device__", "__device__ inline"),
        'extern "C" __global__ void trajectories(',
        f"    {ctype}* x_a{state_args}, const double* hyper, const double* sched,",
        f"    const {ctype}* params, long long steps, const long long* rows_of,",
        f"    {ctype}* loss_out, {ctype}* x_out, int keep_loss, int keep_x, double threshold,",
        "    long long* diverged_at, long long batch) {",
        "  const long long j = (long long)blockIdx.x * blockDim.x + threadIdx.x;",
        "  if (j >= batch) return;",
    ]
    lines += [f"  {ctype} x{k} = x_a[{k} * batch + j];" for k in range(d)]
    for n in state_names:
        lines += [f"  {ctype} {n}_{k} = {n}_a[{k} * batch + j];" for k in range(d)]
    lines += [f"  const {ctype} {p.name} = params[{i} * batch + j];" for i, p in enumerate(params)]
    for i, h in enumerate(form.hyper):
        if h not in form.schedules:
            typed = ctype if sp.Symbol(h, real=True) in arrays else "double"
            lines.append(f"  const {typed} {h} = ({typed})hyper[{i} * batch + j];")
    inside = " && ".join(f"fabs(x{k}) <= threshold" for k in range(d))
    lines += [
        f"  bool dead = !({inside});",
        "  long long at = dead ? 0 : -1;",
    ]

    def record(row: str) -> list[str]:
        out = ["  {", f"    const long long row = {row};", "    if (row >= 0) {"]
        out += [f"      {line}" for line in value_program.hoisted + value_program.inner]
        out += [f"      if (keep_loss) loss_out[row * batch + j] = {value};"]
        out += [f"      if (keep_x) x_out[(row * batch + j) * {d} + {k}] = x{k};" for k in range(d)]
        return out + ["    }", "  }"]

    lines += record("rows_of[0]")
    lines += ["  for (long long step = 0; step < steps; ++step) {", "    if (!dead) {"]
    body = ["const double t = (double)step;"]
    body += [f"const double {h} = sched[{scheduled.index(h)} * steps + step];" for h in scheduled]
    body += gradient_program.hoisted + step_program.hoisted
    body += gradient_program.inner
    body += [f"const {ctype} g{k} = {gradient[k]};" for k in range(d)]
    body += step_program.inner
    for k in range(d):
        body.append(f"const {ctype} n{k} = {updates[k][0]};")
        body += [
            f"const {ctype} m_{n}_{k} = {target};"
            for n, target in zip(state_names, updates[k][1:], strict=True)
        ]
    for k in range(d):
        body.append(f"x{k} = n{k};")
        body += [f"{n}_{k} = m_{n}_{k};" for n in state_names]
    body += [f"if (!({inside})) {{ dead = true; at = step + 1; }}"]
    lines += [f"      {line}" for line in body]
    lines += ["    }"]
    lines += [f"  {line}" for line in record("rows_of[step + 1]")]
    lines += ["  }"]
    lines += [f"  x_a[{k} * batch + j] = x{k};" for k in range(d)]
    for n in state_names:
        lines += [f"  {n}_a[{k} * batch + j] = {n}_{k};" for k in range(d)]
    lines += ["  diverged_at[j] = at;", "}"]
    return "\n".join(lines) + "\n"


def cuda_trajectories(
    problem: Any,
    optimizer: Any,
    x0: Any,
    steps: int,
    *,
    params: dict[str, Any] | None = None,
    record_steps: Any = None,
    keep_x: bool = True,
    keep_loss: bool = True,
    threshold: float = np.inf,
    kernel_factory: Callable | None = None,
    threads_per_block: int = 128,
) -> tuple[dict[str, Any] | None, str]:
    """Run ``steps`` steps of ``optimizer`` on ``problem`` for every row of ``x0`` (B, d), a
    CuPy array, one GPU thread per trajectory. Arguments and result as
    :func:`convexkit.kernels.fused.fused_trajectories` (arrays on x0's device).

    ``kernel_factory(code, name, options=...)`` builds the kernel; ``cupy.RawKernel`` by
    default. The kernel is called as ``kernel((blocks,), (threads_per_block,), args)``.
    """
    import contextlib

    import array_api_compat

    if kernel_factory is None:
        try:
            import cupy
        except ImportError:
            return None, "CuPy is not installed (pip install 'convexkit[gpu]')"
        kernel_factory = cupy.RawKernel
    on_gpu = array_api_compat.is_cupy_array(x0)
    if on_gpu:
        import cupy as module
    else:
        module = np  # host arrays: only for kernel factories that run on the host
    dtype = np.dtype(str(x0.dtype))
    if dtype.name not in _CTYPES or x0.ndim != 2:
        return None, "the GPU kernel needs x0 as a float32/float64 array of shape (B, d)"
    if len(problem.variables) > 32:
        return None, f"{len(problem.variables)} variables: the kernel serves at most 32"
    form, reason = update_form(optimizer)
    if form is None:
        return None, reason
    values = dict(params or {})
    missing = [p.name for p in problem.params if p.name not in values]
    if missing:
        return None, f"parameters without values: {missing}"
    batch, d = int(x0.shape[0]), int(x0.shape[1])
    source = trajectory_source(form, problem, dtype)
    kernel = _TRAJECTORY_KERNELS.get(source)
    if kernel is None:
        kernel = kernel_factory(source, "trajectories", options=CUDA_OPTIONS)
        _TRAJECTORY_KERNELS[source] = kernel
    tables = _trajectory_tables(problem, form, values, batch, dtype, steps, record_steps)
    n_rec = tables.n_rec
    with x0.device if on_gpu else contextlib.nullcontext():
        # (d, B) copies: the kernel works in place and must never touch the caller's arrays
        x_t = module.array(x0.T, order="C", copy=True)
        states = tuple(module.array(s.T, order="C", copy=True) for s in optimizer.init(x0))
        loss_out = module.empty((n_rec if keep_loss else 0, batch), dtype=dtype)
        x_out = module.empty((n_rec if keep_x else 0, batch, d), dtype=dtype)
        diverged_at = module.empty(batch, dtype=np.int64)
        args = (
            x_t,
            *states,
            module.asarray(tables.hyper),
            module.asarray(tables.sched),
            module.asarray(tables.params),
            np.int64(steps),
            module.asarray(tables.rows_of),
            loss_out,
            x_out,
            np.int32(keep_loss),
            np.int32(keep_x),
            np.float64(min(float(threshold), float(np.finfo(dtype).max))),
            diverged_at,
            np.int64(batch),
        )
        kernel((-(-batch // threads_per_block),), (threads_per_block,), args)
        result = {
            "x": module.ascontiguousarray(x_t.T),
            "state": tuple(module.ascontiguousarray(s.T) for s in states),
            "loss": loss_out if keep_loss else None,
            "xs": x_out if keep_x else None,
            "diverged_at": diverged_at,
        }
    return result, "fused"


_TRAJECTORY_KERNELS: dict[str, Any] = {}
