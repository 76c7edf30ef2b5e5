"""Fused CPU kernels generated from the optimizers' own update code.

An optimizer's update rule, written once against ``xp``, is run on SymPy symbols (the same
route the theory layer takes to derive stability regions). Its hyperparameters become symbols
too, so one compiled kernel serves every value. The resulting expressions are shared by common
subexpression elimination, the terms that depend only on hyperparameters and the step are
hoisted out of the element loop, and the code is printed for numba:

* :func:`fused_update` gives an elementwise kernel that updates parameters and state in place
  in one pass over memory (Adam reads four arrays and writes three; unfused NumPy makes about
  a dozen passes);
* :func:`fused_trajectories` gives a kernel that runs whole trajectories of a problem with
  few variables: a block of trajectories stays in cache while every step is taken, so a sweep
  over a hyperparameter grid costs a fraction of one copy of its state per step.

Generated sources are written to a cache folder (``$CONVEXKIT_CACHE``, else
``~/.cache/convexkit``) and imported from there, so numba's on-disk cache serves a second
process without compiling again.

Exactness: the update is traced with SymPy's evaluation switched off, so each node of the
expression tree is one operation of the update code, with the same operands in the same
grouping (up to the order of the two operands of a sum or product, which IEEE arithmetic
does not see). Constants and scalar hyperparameters are combined in float64 and rounded where
they meet array values, as NumPy does with Python scalars. The kernels therefore agree with
the plain path bit for bit, in float32 and float64, non-finite values included; no fused
multiply-add is emitted (numba's default, non-fast math). The tests check this for every
optimizer that has a fused form.
"""

from __future__ import annotations

import hashlib
import importlib.util
import math
import numbers
import os
import sys
import tempfile
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import invalid

__all__ = [
    "FusedUpdate",
    "UpdateForm",
    "cache_dir",
    "fused_trajectories",
    "fused_update",
    "pre_table",
    "run_in_pieces",
    "update_form",
]

try:
    import numba  # noqa: F401
except ImportError:  # pragma: no cover - numba is in the test extra
    numba = None


# Kernels are serial and release the GIL; a pool of threads runs pieces of one call. (numba's
# parallel=True does the same from inside, but compiling its parallel loops costs seconds.)
_JIT = '@numba.njit(cache=True, nogil=True, error_model="numpy")'
_POOL: ThreadPoolExecutor | None = None
_POOL_LOCK = threading.Lock()


def _forget_pool() -> None:
    # a forked child inherits the pool object but not its threads
    global _POOL
    _POOL = None


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_pool)


def run_in_pieces(call: Callable[[int, int], None], jobs: int, serial_below: int = 2) -> None:
    """Run ``call(lo, hi)`` over ``range(jobs)`` in contiguous pieces on numba's thread count.

    The calling thread takes pieces too; a few pieces per thread balance uneven work (blocks of
    trajectories that diverge and are replayed). Fewer than ``serial_below`` jobs run inline.
    """
    global _POOL
    threads = min(numba.get_num_threads() if numba is not None else 1, jobs)
    if threads <= 1 or jobs < serial_below:
        call(0, jobs)
        return
    n_pieces = min(jobs, 4 * threads)
    bounds = [jobs * i // n_pieces for i in range(n_pieces + 1)]
    pieces = iter(zip(bounds[:-1], bounds[1:], strict=True))
    taking = threading.Lock()

    def work() -> None:
        while True:
            with taking:
                piece = next(pieces, None)
            if piece is None:
                return
            call(*piece)

    with _POOL_LOCK:
        if _POOL is None:
            _POOL = ThreadPoolExecutor(max_workers=max(1, os.cpu_count() or 1))
        pool = _POOL
    helpers = [pool.submit(work) for _ in range(threads - 1)]
    try:
        work()
    finally:
        # the arrays stay in use until every piece is done, whatever raised
        for helper in helpers:
            helper.result()


def cache_dir() -> Path:
    """Folder of generated kernel sources and numba's compiled cache."""
    root = os.environ.get("CONVEXKIT_CACHE")
    if root:
        return Path(root) / "kernels"
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "convexkit" / "kernels"


# ---- the symbolic form of an update -----------------------------------------------------------


@dataclass(frozen=True)
class UpdateForm:
    """An optimizer's update as SymPy expressions.

    Attributes
    ----------
    name : str
        Optimizer name.
    inputs : tuple of Symbol
        Element symbols: x, g, then one per state entry.
    hyper : tuple of str
        Names of the hyperparameters that are kernel arguments (one value per row).
    schedules : dict
        Hyperparameters given as schedules: name -> schedule (evaluated per step on the host).
    outputs : tuple of Expr
        x_next, then each state entry's next value.
    state_type : type
        The state's NamedTuple class (or tuple).
    """

    name: str
    inputs: tuple
    hyper: tuple[str, ...]
    schedules: dict[str, Callable[[Any], Any]]
    outputs: tuple
    state_type: Any
    hyper_values: dict[str, Any] = field(default_factory=dict)

    @property
    def n_state(self) -> int:
        return len(self.inputs) - 2


# traced update forms by (optimizer name, hyperparameter structure), and compiled kernels by
# their source: tracing and printing cost SymPy time that a sweep's chunks must not pay again
_FORMS: dict[Any, Any] = {}
_KERNELS: dict[Any, Any] = {}


def _is_continuous(value: Any) -> bool:
    if isinstance(value, bool):
        return False
    if isinstance(value, float) or isinstance(value, np.floating):
        return True
    return isinstance(value, np.ndarray) and value.dtype.kind == "f"


def update_form(optimizer: Any) -> tuple[UpdateForm | None, str]:
    """The symbolic form of ``optimizer``'s update, or (None, reason) where there is none.

    Float and array hyperparameters become symbols (kernel arguments); schedules become
    symbols fed per step; integers, strings and flags are kept as they are (structure).
    """
    import sympy as sp
    from sympy.core.parameters import evaluate

    from .. import optim

    if optimizer.needs != frozenset({"grad"}):
        return None, f"{optimizer.name} needs {sorted(optimizer.needs)} from the oracle"
    factory = getattr(optim, optimizer.name, None)
    if factory is None:
        return None, f"{optimizer.name} is not a factory of convexkit.optim"
    kwargs: dict[str, Any] = {}
    hyper: list[str] = []
    schedules: dict[str, Any] = {}
    values: dict[str, Any] = {}
    structure: list[tuple[str, Any]] = []
    for key, value in optimizer.hyperparams.items():
        if callable(value) and not hasattr(value, "shape"):
            schedules[key] = value
            kwargs[key] = sp.Symbol(key, real=True)
            hyper.append(key)
            structure.append((key, "schedule"))
        elif _is_continuous(value):
            if isinstance(value, np.ndarray) and value.ndim > 1:
                return None, f"hyperparameter {key} has shape {value.shape}, not (B,)"
            kwargs[key] = sp.Symbol(key, real=True)
            hyper.append(key)
            values[key] = value
            structure.append((key, "array" if isinstance(value, np.ndarray) else "scalar"))
        elif isinstance(value, (numbers.Number, str, type(None))):
            kwargs[key] = value
            structure.append((key, ("value", value)))
        else:
            return None, f"hyperparameter {key} of type {type(value).__name__} has no symbolic form"
    cache_key = (optimizer.name, tuple(structure))
    cached = _FORMS.get(cache_key)
    if cached is not None:
        inputs, outputs, state_type = cached
        return UpdateForm(
            optimizer.name, inputs, tuple(hyper), schedules, outputs, state_type, values
        ), "fused"
    try:
        symbolic = factory(**kwargs)
        x, g = sp.symbols("x g", real=True)
        state0 = symbolic.init(x)
        states = sp.symbols(f"s0:{len(state0)}", real=True) if len(state0) else ()
        if any(not isinstance(s, sp.Basic) for s in state0):
            return None, f"{optimizer.name}'s state is not elementwise"
        step = sp.Symbol("t", integer=True, nonnegative=True)
        rebuilt = type(state0)(*states) if hasattr(state0, "_fields") else tuple(states)
        # unevaluated, the trees keep the grouping of the update code's own operations
        with evaluate(False):
            x_next, state_next = symbolic.update(x, g, rebuilt, step)
    except (TypeError, ValueError, AttributeError) as err:
        return None, f"{optimizer.name} did not run on symbols: {err}"
    outputs = tuple(v if isinstance(v, sp.Basic) else sp.Float(v) for v in (x_next, *state_next))
    allowed = {x, g, step, *states, *(sp.Symbol(h, real=True) for h in hyper)}
    if any(not expr.free_symbols <= allowed for expr in outputs):
        return None, f"{optimizer.name}'s update involves more than its element and hyperparameters"
    _FORMS[cache_key] = ((x, g, *states), outputs, type(state0))
    form = UpdateForm(
        optimizer.name, (x, g, *states), tuple(hyper), schedules, outputs, type(state0), values
    )
    return form, "fused"


# ---- printing numba code ----------------------------------------------------------------------

_HELPERS = """
@numba.njit(inline="always")
def _sign(a):
    if a != a:
        return a
    return F(1.0) if a > 0 else (F(-1.0) if a < 0 else F(0.0))


@numba.njit(inline="always")
def _power(a, e):
    # NumPy's fast paths for ``array ** scalar``; libm's pow otherwise
    if e == 2.0:
        return a * a
    if e == 1.0:
        return a
    if e == 0.5:
        return math.sqrt(a)
    if e == -1.0:
        return F(1.0) / a
    if e == 0.0:
        return F(1.0)
    return a ** e


@numba.njit(inline="always")
def _maximum(a, b):
    if a != a or b != b:
        return a + b
    return a if a >= b else b


@numba.njit(inline="always")
def _minimum(a, b):
    if a != a or b != b:
        return a + b
    return a if a <= b else b
"""

_MATH = {
    "exp": "math.exp",
    "log": "math.log",
    "tanh": "math.tanh",
    "sin": "math.sin",
    "cos": "math.cos",
    "cosh": "math.cosh",
    "sinh": "math.sinh",
    "atan": "math.atan",
    "erf": "math.erf",
}
_RELATIONS = {
    "StrictGreaterThan": ">",
    "GreaterThan": ">=",
    "StrictLessThan": "<",
    "LessThan": "<=",
    "Equality": "==",
    "Unequality": "!=",
}


class _Python:
    """How :class:`_Program` spells operations in a numba kernel (``F``: the kernel's float
    type, ``D``: float64; both are numba type objects called as conversions)."""

    true = "True"

    def cast(self, name: str) -> str:
        return f"F({name})"

    def number(self, value: float) -> str:
        return f"D({value!r})"

    def one(self, narrow: bool) -> str:
        return "F(1.0)" if narrow else "D(1.0)"

    def assign(self, name: str, code: str, narrow: bool) -> str:
        return f"{name} = {code}"

    def call(self, function: str, *args: str) -> str:
        names = {"sqrt": "math.sqrt", "abs": "abs", **{f: f"math.{f}" for f in _MATH}}
        return f"{names.get(function, function)}({', '.join(args)})"

    def power(self, base: str, exponent: str) -> str:
        return f"{base} ** {exponent}"

    def select(self, condition: str, then: str, otherwise: str) -> str:
        return f"({then} if {condition} else {otherwise})"


class _Program:
    """Straight-line code for a set of expressions: one assignment per distinct subtree.

    Every node of the (unevaluated) expression trees becomes one binary operation or call, in
    the grouping the tree holds, so the kernel performs the same operations as the array code
    the tree was traced from. Identical subtrees are computed once.

    Types follow NumPy's promotion of Python scalars: a node that involves none of the
    ``narrow`` symbols (array values: elements, array hyperparameters) is computed in float64,
    as Python would compute a scalar, and rounded to the kernel's type ``F`` where it meets an
    array value. Nodes that involve none of the ``loop`` symbols are kept apart in
    ``hoisted``, to be computed outside the loop. ``dialect`` spells the operations (numba's
    Python by default, CUDA C++ for the CuPy kernels).
    """

    def __init__(self, narrow: set, loop: set, prefix: str, dialect: Any = None) -> None:
        self.narrow = narrow
        self.loop = loop
        self.prefix = prefix
        self.dialect = dialect if dialect is not None else _Python()
        self.names: dict[Any, tuple[str, bool]] = {}
        self.hoisted: list[str] = []
        self.hoisted_nodes: list[tuple[str, Any, bool]] = []
        self.inner: list[str] = []

    def __call__(self, expr: Any) -> str:
        """Emit ``expr`` and return the name holding its value in the kernel's type F."""
        name, is_narrow = self._emit(expr)
        return name if is_narrow else self.dialect.cast(name)

    def _emit(self, expr: Any) -> tuple[str, bool]:
        import sympy as sp

        if expr in self.names:
            return self.names[expr]
        if isinstance(expr, sp.Symbol):
            return expr.name, expr in self.narrow
        if expr.is_Number or expr in (sp.pi, sp.E):
            return self.dialect.number(float(expr)), False
        if expr is sp.true:
            return self.dialect.true, False
        is_narrow = bool(expr.free_symbols & self.narrow)
        code = self._code(expr, is_narrow)
        name = f"{self.prefix}{len(self.names)}"
        self.names[expr] = (name, is_narrow)
        line = self.dialect.assign(name, code, is_narrow)
        if expr.free_symbols & self.loop:
            self.inner.append(line)
        else:
            self.hoisted.append(line)
            self.hoisted_nodes.append((name, expr, is_narrow))
        return name, is_narrow

    def _operand(self, expr: Any, narrow: bool) -> str:
        name, is_narrow = self._emit(expr)
        return self.dialect.cast(name) if narrow and not is_narrow else name

    def _code(self, expr: Any, narrow: bool) -> str:
        import sympy as sp

        def op(e: Any) -> str:
            return self._operand(e, narrow)

        spell = self.dialect
        one = spell.one(narrow)
        if isinstance(expr, sp.Add):
            terms = [op(a) for a in expr.args]
            code = terms[0]
            for term in terms[1:]:
                code = f"{code} + {term}"
            return code
        if isinstance(expr, sp.Mul):
            negative = False
            numerator, denominator = [], []
            for factor in expr.args:
                if factor == -1:
                    negative = not negative
                elif isinstance(factor, sp.Pow) and factor.exp == -1:
                    denominator.append(op(factor.base))
                else:
                    numerator.append(op(factor))
            code = numerator[0] if numerator else one
            for factor in numerator[1:]:
                code = f"({code}) * {factor}"
            for factor in denominator:
                code = f"({code}) / {factor}"
            return f"-({code})" if negative else code
        if isinstance(expr, sp.Pow):
            base, exponent = expr.args
            if exponent == sp.Rational(1, 2):
                return spell.call("sqrt", op(base))
            if exponent == -1:
                return f"{one} / {op(base)}"
            if exponent == 2:
                b = op(base)
                return f"{b} * {b}"
            if narrow:
                return spell.call("_power", op(base), op(exponent))
            return spell.power(op(base), op(exponent))
        if isinstance(expr, sp.Abs):
            return spell.call("abs", op(expr.args[0]))
        if isinstance(expr, sp.sign):
            return spell.call("_sign", op(expr.args[0]))
        if isinstance(expr, (sp.Max, sp.Min)):
            helper = "_maximum" if isinstance(expr, sp.Max) else "_minimum"
            args = [op(a) for a in expr.args]
            code = args[0]
            for a in args[1:]:
                code = spell.call(helper, code, a)
            return code
        if isinstance(expr, sp.Piecewise):
            *pieces, (last, _) = expr.args
            code = op(last)
            for value, condition in reversed(pieces):
                code = spell.select(self._emit(condition)[0], op(value), code)
            return code
        name = type(expr).__name__
        if name in _RELATIONS:
            return f"{op(expr.lhs)} {_RELATIONS[name]} {op(expr.rhs)}"
        if name in _MATH:
            return spell.call(name, op(expr.args[0]))
        raise invalid(
            "expression",
            expr,
            "arithmetic, powers, abs, sign, max/min, piecewise and " + ", ".join(sorted(_MATH)),
        )


def _host_value(expr: Any, env: dict, memo: dict) -> Any:
    """Evaluate a hoisted node on the host with NumPy and Python scalars, the way the plain
    path computes it (NumPy's own vectorized ``power``, ``sqrt``, ... on array values)."""
    import sympy as sp

    if expr in memo:
        return memo[expr]
    if isinstance(expr, sp.Symbol):
        return env[expr.name]
    if expr.is_Number or expr in (sp.pi, sp.E):
        return float(expr)

    def ev(e: Any) -> Any:
        return _host_value(e, env, memo)

    if isinstance(expr, sp.Add):
        value = ev(expr.args[0])
        for a in expr.args[1:]:
            value = value + ev(a)
    elif isinstance(expr, sp.Mul):
        negative = False
        numerator, denominator = [], []
        for factor in expr.args:
            if factor == -1:
                negative = not negative
            elif isinstance(factor, sp.Pow) and factor.exp == -1:
                denominator.append(ev(factor.base))
            else:
                numerator.append(ev(factor))
        value = numerator[0] if numerator else 1.0
        for f in numerator[1:]:
            value = value * f
        for f in denominator:
            value = value / f
        value = -value if negative else value
    elif isinstance(expr, sp.Pow):
        base, exponent = ev(expr.base), ev(expr.exp)
        if expr.exp == sp.Rational(1, 2):
            value = np.sqrt(base) if isinstance(base, np.ndarray) else math.sqrt(base)
        elif expr.exp == -1:
            value = 1.0 / base
        else:
            value = base**exponent
    elif isinstance(expr, sp.Abs):
        value = abs(ev(expr.args[0]))
    elif isinstance(expr, sp.sign):
        value = np.sign(ev(expr.args[0]))
    elif isinstance(expr, (sp.Max, sp.Min)):
        combine = np.maximum if isinstance(expr, sp.Max) else np.minimum
        value = ev(expr.args[0])
        for a in expr.args[1:]:
            value = combine(value, ev(a))
    elif type(expr).__name__ in _MATH:
        value = getattr(np, type(expr).__name__)(ev(expr.args[0]))
    else:
        raise invalid("expression", expr, "a node the host evaluator knows")
    memo[expr] = value
    return value


def _load_module(source: str, kind: str) -> Any:
    """Import generated ``source`` from a file in :func:`cache_dir` (so numba can cache it)."""
    digest = hashlib.sha256(source.encode()).hexdigest()[:20]
    name = f"convexkit_kernel_{kind}_{digest}"
    if name in sys.modules:
        return sys.modules[name]
    folder = cache_dir()
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.py"
    if not path.exists() or path.read_text(encoding="utf-8") != source:
        handle, temporary = tempfile.mkstemp(dir=folder, suffix=".tmp")
        with os.fdopen(handle, "w", encoding="utf-8") as stream:
            stream.write(source)
        os.replace(temporary, path)
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def _header(dtype: np.dtype, origin: str) -> str:
    return (
        f'"""Generated by convexkit.kernels.fused from {origin}."""\n'
        "import math\n\nimport numba\nimport numpy as np\n\n"
        f"F = numba.{np.dtype(dtype).name}\nD = numba.float64\n" + _HELPERS
    )


# ---- elementwise update kernels ---------------------------------------------------------------


def _update_program(form: UpdateForm, dialect: Any = None) -> tuple[_Program, list[str]]:
    import sympy as sp

    arrays = {
        sp.Symbol(h, real=True)
        for h in form.hyper
        if isinstance(form.hyper_values.get(h), np.ndarray) or h in form.schedules
    }
    program = _Program(set(form.inputs) | arrays, set(form.inputs), "c", dialect)
    results = [program(out) for out in form.outputs]
    return program, results


def _update_source(form: UpdateForm, dtype: np.dtype) -> str:
    x, g, *states = form.inputs
    program, results = _update_program(form)
    arrays = ["x", "g", *(s.name for s in states)]
    lines = [
        _header(dtype, f"optim.{form.name}"),
        "",
        _JIT,
        f"def step_inplace({', '.join(a + '_a' for a in arrays)}, pre, chunk, job_lo, job_hi):",
        "    # pre: (n, rows) per-row values computed on the host: hyperparameters and the",
        "    # terms that involve only them and the step; runs jobs job_lo .. job_hi - 1 of",
        "    # the rows * blocks pieces of ``chunk`` elements",
        "    rows, cols = x_a.shape",
        "    blocks = (cols + chunk - 1) // chunk",
        "    for job in range(job_lo, job_hi):",
        "        r = job // blocks",
        "        start = (job % blocks) * chunk",
        "        stop = min(start + chunk, cols)",
    ]
    leaves = [(h, h in _narrow_names(form)) for h in form.hyper]
    nodes = [(name, narrow) for name, _, narrow in program.hoisted_nodes]
    for i, (name, narrow) in enumerate(leaves + nodes):
        lines.append(f"        {name} = {'F' if narrow else 'D'}(pre[{i}, r])")
    # 1-D views indexed from 0: provably non-negative indices let LLVM vectorize the loop
    lines += [f"        {a}_v = {a}_a[r, start:stop]" for a in arrays]
    lines += ["        for c in range(stop - start):"]
    lines += [f"            {a} = {a}_v[c]" for a in arrays]
    lines += [f"            {line}" for line in program.inner]
    targets = ["x_v", *(f"{s.name}_v" for s in states)]
    lines += [f"            {t}[c] = {v}" for t, v in zip(targets, results, strict=True)]
    return "\n".join(lines) + "\n"


def _narrow_names(form: UpdateForm) -> set[str]:
    return {
        h
        for h in form.hyper
        if isinstance(form.hyper_values.get(h), np.ndarray) or h in form.schedules
    }


def pre_table(
    form: UpdateForm, program: _Program, rows: int, step: int, dtype: np.dtype
) -> np.ndarray:
    """Per-row values of an update kernel at ``step``: the hyperparameters, then the hoisted
    terms of ``program``, computed on the host as the plain path computes them; shape
    (n, rows), float64 (array hyperparameters rounded to ``dtype`` first, as NumPy does)."""
    env: dict[str, Any] = {"t": step}
    for name in form.hyper:
        value = form.schedules[name](step) if name in form.schedules else form.hyper_values[name]
        if isinstance(value, np.ndarray) or name in form.schedules:
            value = np.asarray(value, dtype=dtype)
            if value.ndim and value.shape[0] not in (1, rows):
                raise invalid(name, f"<array {value.shape}>", f"a scalar or shape ({rows},)")
        env[name] = value
    memo: dict = {}
    values = [env[h] for h in form.hyper]
    values += [_host_value(expr, env, memo) for _, expr, _ in program.hoisted_nodes]
    table = np.empty((max(1, len(values)), rows), dtype=np.float64)
    for i, value in enumerate(values):
        table[i] = value
    return table


class FusedUpdate:
    """A fused, in-place elementwise update for one optimizer (NumPy arrays, float32/64).

    Use :meth:`step_inplace` inside a runner that owns its buffers, or :meth:`update` for the
    optimizer's pure contract ``update(x, grad, state, step) -> (x_next, state_next)``.
    """

    def __init__(self, optimizer: Any, form: UpdateForm) -> None:
        self.optimizer = optimizer
        self.form = form
        self._program, _ = _update_program(form)
        self._modules: dict[str, Any] = {}

    def _kernel(self, dtype: np.dtype) -> Callable[..., None]:
        key = np.dtype(dtype).name
        if key not in self._modules:
            self._modules[key] = _load_module(_update_source(self.form, dtype), self.form.name)
        return self._modules[key].step_inplace

    def pre_table(self, rows: int, step: int, dtype: np.dtype) -> np.ndarray:
        """Per-row values at ``step`` (see :func:`pre_table`)."""
        return pre_table(self.form, self._program, rows, step, dtype)

    def step_inplace(
        self, x: np.ndarray, grad: np.ndarray, state: tuple, step: int, chunk: int = 65536
    ) -> None:
        """Overwrite ``x`` and the arrays of ``state`` with their values after one step."""
        rows, cols = x.shape
        kernel = self._kernel(x.dtype)
        pre = self.pre_table(rows, step, x.dtype)
        jobs = rows * -(-cols // chunk)
        run_in_pieces(lambda lo, hi: kernel(x, grad, *state, pre, chunk, lo, hi), jobs)

    def update(
        self, x: np.ndarray, grad: np.ndarray, state: tuple, step: int, oracle: Any = None
    ) -> tuple[np.ndarray, tuple]:
        """The optimizer's pure update, computed by the fused kernel on copies."""
        x_next = np.array(x, copy=True)
        state_next = tuple(np.array(s, copy=True) for s in state)
        self.step_inplace(x_next, np.ascontiguousarray(grad), state_next, step)
        return x_next, self.form.state_type(*state_next) if hasattr(
            self.form.state_type, "_fields"
        ) else tuple(state_next)


def fused_update(optimizer: Any) -> tuple[FusedUpdate | None, str]:
    """A :class:`FusedUpdate` for ``optimizer``, or (None, reason) where none applies."""
    if numba is None:
        return None, "numba is not installed (pip install 'convexkit[fast]')"
    form, reason = update_form(optimizer)
    if form is None:
        return None, reason
    return FusedUpdate(optimizer, form), "fused"


# ---- whole-trajectory kernels -----------------------------------------------------------------


def _keeps_nonfinite(expr: Any, leaf: Any) -> bool:
    """Whether ``expr`` is non-finite whenever ``leaf`` is, in IEEE arithmetic as the kernels
    compute it: ``leaf`` is reached through sums, factors of products, positive constant
    powers and abs only (inf + finite = inf, inf + -inf = NaN, inf * 0 = NaN, NaN sticks).
    Division by, max/min with, sign of, exp of or a branch on ``leaf`` may lose it."""
    import sympy as sp

    if expr == leaf:
        return True
    if isinstance(expr, sp.Add):
        return any(_keeps_nonfinite(a, leaf) for a in expr.args)
    if isinstance(expr, sp.Mul):
        return any(
            _keeps_nonfinite(a, leaf)
            for a in expr.args
            if not (isinstance(a, sp.Pow) and a.exp == -1)
        )
    if isinstance(expr, sp.Pow):
        exponent = expr.exp
        return bool(exponent.is_Number and exponent > 0) and _keeps_nonfinite(expr.base, leaf)
    if isinstance(expr, sp.Abs):
        return _keeps_nonfinite(expr.args[0], leaf)
    return False


@dataclass
class _TrajectoryPrograms:
    """One step of every coordinate of a Problem, printed: gradient (names ``g{k}``), update
    (``updates[k]``: x's new value, then each state entry's) and the objective's value, over
    locals ``x{k}``, ``{state}_{k}``, the hyperparameters, the problem's parameters and ``t``."""

    d: int
    params: list
    state_names: list[str]
    arrays: set
    scheduled: list[str]
    gradient_program: _Program
    gradient: list[str]
    step_program: _Program
    updates: list[list[str]]
    value_program: _Program
    value: str


def _trajectory_programs(
    form: UpdateForm, problem: Any, dialect: Any = None
) -> _TrajectoryPrograms:
    import sympy as sp
    from sympy.core.parameters import evaluate

    variables = list(problem.variables)
    params = list(problem.params)
    d = len(variables)
    xs = sp.symbols(f"x0:{d}", real=True)
    gs = sp.symbols(f"g0:{d}", real=True)
    to_local = dict(zip(variables, xs, strict=True))
    x, g, *states = form.inputs
    state_names = [s.name for s in states]
    state_symbols = {n: sp.symbols(f"{n}_0:{d}", real=True) for n in state_names}
    hyper = [sp.Symbol(h, real=True) for h in form.hyper]
    # everything but the step varies per trajectory; only step terms are hoisted
    element = {*xs, *gs, *(s for group in state_symbols.values() for s in group)}
    arrays = {
        sp.Symbol(h, real=True)
        for h in form.hyper
        if isinstance(form.hyper_values.get(h), np.ndarray)
    }
    narrow = element | arrays | set(params)
    loop = element | set(hyper) | set(params)

    gradient_program = _Program(narrow, loop, "q", dialect)
    gradient = [gradient_program(sp.sympify(gi).xreplace(to_local)) for gi in problem.gradient()]
    step_program = _Program(narrow, loop, "u", dialect)
    updates = []
    for k in range(d):
        local = {x: xs[k], g: gs[k]}
        local.update({s: state_symbols[s.name][k] for s in states})
        with evaluate(False):  # keep the traced grouping while renaming
            renamed = [out.xreplace(local) for out in form.outputs]
        updates.append([step_program(out) for out in renamed])
    value_program = _Program(narrow, loop, "v", dialect)
    value = value_program(sp.sympify(problem.expr).xreplace(to_local))
    return _TrajectoryPrograms(
        d,
        params,
        state_names,
        arrays,
        [h for h in form.hyper if h in form.schedules],
        gradient_program,
        gradient,
        step_program,
        updates,
        value_program,
        value,
    )


@dataclass
class _TrajectoryTables:
    """Host arrays of a trajectory kernel: the problem's parameters (n_params, B) in the
    kernel's dtype; hyperparameters (n_hyper, B) and scheduled ones per step (n_scheduled,
    steps) in float64 (scalars stay float64 as Python scalars do; array values are rounded
    in the kernel); ``rows_of`` (steps + 1,), the output row of each step or -1."""

    params: np.ndarray
    hyper: np.ndarray
    sched: np.ndarray
    rows_of: np.ndarray
    n_rec: int


def _trajectory_tables(
    problem: Any,
    form: UpdateForm,
    values: dict[str, Any],
    batch: int,
    dtype: np.dtype,
    steps: int,
    record_steps: Any,
) -> _TrajectoryTables:
    def host(value: Any) -> Any:
        # CuPy arrays among the values: NumPy does not convert them implicitly
        return value.get() if hasattr(value, "get") and not isinstance(value, np.ndarray) else value

    param_table = np.empty((max(1, len(problem.params)), batch), dtype=dtype)
    for i, p in enumerate(problem.params):
        param_table[i] = np.asarray(host(values[p.name]), dtype=dtype)
    hyper = np.zeros((max(1, len(form.hyper)), batch), dtype=np.float64)
    scheduled = [h for h in form.hyper if h in form.schedules]
    sched = np.zeros((max(1, len(scheduled)), max(1, steps)), dtype=np.float64)
    t = np.arange(steps)
    for i, h in enumerate(form.hyper):
        if h in form.schedules:
            sched[scheduled.index(h)] = np.asarray(form.schedules[h](t), dtype=np.float64)
        else:
            hyper[i] = np.asarray(host(form.hyper_values[h]), dtype=np.float64)
    chosen = np.arange(steps + 1) if record_steps is None else np.asarray(record_steps, dtype=int)
    rows_of = np.full(steps + 1, -1, dtype=np.int64)
    rows_of[chosen] = np.arange(chosen.size)
    return _TrajectoryTables(param_table, hyper, sched, rows_of, int(chosen.size))


def _trajectory_source(
    form: UpdateForm, problem: Any, dtype: np.dtype, check_span_end: bool = False
) -> str:
    """Source of the trajectory kernel. ``check_span_end``: divergence means only "became
    non-finite" and the x update keeps non-finite values (:func:`_keeps_nonfinite`), so the
    unrolled pass tests the iterate once per span instead of after every step."""
    import sympy as sp

    programs = _trajectory_programs(form, problem)
    d, params, state_names = programs.d, programs.params, programs.state_names
    arrays = programs.arrays
    gradient_program, gradient = programs.gradient_program, programs.gradient
    step_program, updates = programs.step_program, programs.updates
    value_program, value = programs.value_program, programs.value

    def load(indent: str) -> list[str]:
        out = [f"{indent}x{k} = xb{k}[j]" for k in range(d)]
        return out + [f"{indent}{p.name} = pb{i}[j]" for i, p in enumerate(params)]

    def record(indent: str, row: str) -> list[str]:
        out = load(indent) + [f"{indent}{line}" for line in value_program.hoisted]
        out += [f"{indent}{line}" for line in value_program.inner]
        out += [f"{indent}if keep_loss:", f"{indent}    loss_out[{row}, lo + j] = {value}"]
        out += [f"{indent}if keep_x:"]
        return out + [f"{indent}    x_out[{row}, lo + j, {k}] = x{k}" for k in range(d)]

    state_args = "".join(f", {n}_a" for n in state_names)
    scheduled = programs.scheduled
    lines = [
        _header(dtype, f"optim.{form.name} on f = {problem.expr}"),
        "",
        _JIT,
        f"def trajectories(x_a{state_args}, hyper, sched, params, steps, rows_of,",
        "                 loss_out, x_out, threshold, diverged_at, block, b_lo, b_hi):",
        "    # x_a and the state arrays are (d, B), updated in place; hyper (n, B); params (p, B);",
        "    # sched (n_scheduled, steps) holds the scheduled hyperparameters' values per step;",
        "    # rows_of[t] is the output row of step t, or -1 where step t is not recorded",
        "    # runs blocks b_lo .. b_hi - 1 of ``block`` trajectories",
        "    batch = x_a.shape[1]",
        "    keep_x = x_out.shape[0] > 0",
        "    keep_loss = loss_out.shape[0] > 0",
        "    for b in range(b_lo, b_hi):",
        "        lo = b * block",
        "        n = min(lo + block, batch) - lo",
        "        # one contiguous 1-D array per coordinate, indexed from 0, so the loop over",
        "        # the block's trajectories vectorizes; selects, not branches, for that reason",
    ]
    lines += [f"        xb{k} = x_a[{k}, lo:lo + n].copy()" for k in range(d)]
    for name in state_names:
        lines += [f"        {name}b{k} = {name}_a[{k}, lo:lo + n].copy()" for k in range(d)]
    lines += [f"        hb{i} = hyper[{i}, lo:lo + n].copy()" for i in range(len(form.hyper))]
    lines += [f"        pb{i} = params[{i}, lo:lo + n].copy()" for i in range(len(params))]
    inside0 = " and ".join(f"abs(xb{k}[j]) <= threshold" for k in range(d))
    # divergence bookkeeping in float arrays: masks of bools or ints stop LLVM vectorizing
    lines += [
        "        dead = np.empty(n, dtype=x_a.dtype)",
        "        at = np.empty(n, dtype=np.float64)",
        "        for j in range(n):",
        f"            bad = not ({inside0})",
        "            dead[j] = 1.0 if bad else 0.0",
        "            at[j] = 0.0 if bad else -1.0",
    ]
    lines += [
        "        if rows_of[0] >= 0 and (keep_loss or keep_x):",
        "            for j in range(n):",
    ]
    lines += record("                ", "rows_of[0]")

    def step_body(indent: str, exact: bool) -> list[str]:
        # one step of trajectory j; ``exact`` adds the freezing, else only the "ever bad" flag
        out = load(indent)
        for i, h in enumerate(form.hyper):
            source = f"sched[{scheduled.index(h)}, step]" if h in form.schedules else f"hb{i}[j]"
            if sp.Symbol(h, real=True) in arrays:
                source = f"F({source})"
            out.append(f"{indent}{h} = {source}")
        for name in state_names:
            out += [f"{indent}{name}_{k} = {name}b{k}[j]" for k in range(d)]
        out += [f"{indent}{line}" for line in gradient_program.inner]
        out += [f"{indent}g{k} = {gradient[k]}" for k in range(d)]
        out += [f"{indent}{line}" for line in step_program.inner]
        if exact:
            # a frozen trajectory keeps its values: select, do not branch
            out.append(f"{indent}frozen = dead[j] > 0")
        for k in range(d):
            if exact:
                out.append(f"{indent}n{k} = x{k} if frozen else {updates[k][0]}")
            else:
                out.append(f"{indent}n{k} = {updates[k][0]}")
            out.append(f"{indent}xb{k}[j] = n{k}")
            for name, target in zip(state_names, updates[k][1:], strict=True):
                value = f"{name}_{k} if frozen else {target}" if exact else target
                out.append(f"{indent}{name}b{k}[j] = {value}")
        inside = " and ".join(f"abs(n{k}) <= threshold" for k in range(d))
        out.append(f"{indent}bad = 0.0 if ({inside}) else 1.0")
        if exact:
            out += [
                f"{indent}at[j] = after if bad > dead[j] else at[j]",
                f"{indent}dead[j] = max(dead[j], bad)",
            ]
        else:
            out.append(f"{indent}ever[j] = max(ever[j], bad)")
        return out

    saved = [f"xb{k}" for k in range(d)]
    saved += [f"{name}b{k}" for name in state_names for k in range(d)]
    hoisted = gradient_program.hoisted + step_program.hoisted

    def unrolled(indent: str, span: int) -> list[str]:
        # ``span`` steps of trajectory j with its values in registers: loaded and stored
        # once, the unchanging hyperparameters and parameters loaded once; the loop over j
        # stays innermost, so it still vectorizes. Instead of a test per step, the sum of
        # the |coordinates| over the chunk, tested once after it: a sum of non-negative
        # terms is at least each term (rounding is monotone) and NaN sticks, so a chunk
        # where some coordinate left [-threshold, threshold] or became NaN always fails
        # "sum <= threshold" (no miss); a false alarm (large but bounded values) only
        # costs an exact replay
        out = load(indent)
        for i, h in enumerate(form.hyper):
            if h not in form.schedules:
                source = f"hb{i}[j]"
                if sp.Symbol(h, real=True) in arrays:
                    source = f"F({source})"
                out.append(f"{indent}{h} = {source}")
        for name in state_names:
            out += [f"{indent}{name}_{k} = {name}b{k}[j]" for k in range(d)]
        if not check_span_end:
            out.append(f"{indent}ever_j = 0.0")
        for u in range(span):
            out += [f"{indent}step = first + {u}", f"{indent}t = D(step)"]
            out += [f"{indent}{line}" for line in hoisted]
            for h in scheduled:
                source = f"sched[{scheduled.index(h)}, step]"
                if sp.Symbol(h, real=True) in arrays:
                    source = f"F({source})"
                out.append(f"{indent}{h} = {source}")
            out += [f"{indent}{line}" for line in gradient_program.inner]
            out += [f"{indent}g{k} = {gradient[k]}" for k in range(d)]
            out += [f"{indent}{line}" for line in step_program.inner]
            for k in range(d):
                out.append(f"{indent}n{k} = {updates[k][0]}")
                for name, target in zip(state_names, updates[k][1:], strict=True):
                    out.append(f"{indent}m_{name}_{k} = {target}")
            for k in range(d):
                out.append(f"{indent}x{k} = n{k}")
                out += [f"{indent}{name}_{k} = m_{name}_{k}" for name in state_names]
            total = " + ".join(f"abs(n{k})" for k in range(d))
            if not check_span_end:
                out.append(f"{indent}ever_j = ever_j + ({total})")
        if check_span_end:
            # non-finite values stick: one test per span. A coordinate that became non-finite
            # is still non-finite at the span's end, and a sum of |values| is non-finite if
            # one is (or overflows: a false alarm)
            out.append(f"{indent}# non-finite values stick: one test per span")
            out.append(f"{indent}ever_j = {total}")
        out += [f"{indent}xb{k}[j] = x{k}" for k in range(d)]
        for name in state_names:
            out += [f"{indent}{name}b{k}[j] = {name}_{k}" for k in range(d)]
        if check_span_end:
            out.append(f"{indent}ever[j] = max(ever[j], 0.0 if ever_j <= threshold else 1.0)")
        else:
            out.append(f"{indent}ever[j] = ever[j] + ever_j")
        return out

    # steps unrolled per pass over the block: fewer loads and stores per update, bounded so
    # the source (and the compile time) of a large problem does not grow much
    size = len(hoisted + gradient_program.inner + step_program.inner) + d * (3 + len(state_names))
    span = 4
    while span > 1 and span * size > 96:
        span //= 2
    # Steps run in chunks of ``chunk``: first fast, with no freezing and only an "ever left
    # the box" flag per trajectory, from a copy saved at the chunk start. Trajectories frozen
    # before the chunk get their saved values back (frozen values never change); those that
    # went bad inside the chunk are restored and replayed step by step with the exact logic,
    # alone, so the results equal the per-step freezing loop bit for bit at a fraction of
    # its cost where nothing diverges.
    lines += [f"        s{name} = np.empty(n, dtype=x_a.dtype)" for name in saved]
    lines += [
        "        ever = np.empty(n, dtype=x_a.dtype)",
        "        redo = np.empty(n, dtype=np.int64)",
        "        chunk = 64",
        "        for c0 in range(0, steps, chunk):",
        "            c1 = min(c0 + chunk, steps)",
        "            for j in range(n):",
    ]
    lines += [f"                s{name}[j] = {name}[j]" for name in saved]
    lines += [
        "                ever[j] = 0.0",
        "            plain = c1 - c0 < chunk",
        "            for step in range(c0 + 1, c1 + 1):",
        "                plain = plain or rows_of[step] >= 0",
        "            if not plain:",
        f"                for first in range(c0, c1, {span}):",
        "                    for j in range(n):",
    ]
    lines += unrolled("                        ", span)
    if not check_span_end:
        lines += [
            "                for j in range(n):",
            "                    ever[j] = 0.0 if ever[j] <= threshold else 1.0",
        ]
    lines += ["            else:"]
    lines += [
        "                for step in range(c0, c1):",
        "                    t = D(step)",
        "                    after = step + 1.0",
    ]
    lines += [f"                    {line}" for line in hoisted]
    lines += ["                    for j in range(n):"]
    lines += step_body("                        ", exact=False)
    # records in a fast chunk: a frozen trajectory reports its saved (frozen) values; those
    # of trajectories replayed below are overwritten by the replay
    fast_record = record("                            ", "row")
    for k in range(d):
        fast_record[k] = (
            f"                            x{k} = sxb{k}[j] if dead[j] > 0 else xb{k}[j]"
        )
    lines += [
        "                    row = rows_of[step + 1]",
        "                    if row >= 0 and (keep_loss or keep_x):",
        "                        for j in range(n):",
    ]
    lines += fast_record
    lines += ["            for j in range(n):", "                frozen = dead[j] > 0"]
    lines += [f"                {name}[j] = s{name}[j] if frozen else {name}[j]" for name in saved]
    lines += [
        # a count first: it vectorizes, the branchy gathering runs only where needed
        "            count = 0",
        "            for j in range(n):",
        "                count += 1 if ever[j] > dead[j] else 0",
        "            if count == 0:",
        "                continue",
        "            count = 0",
        "            for j in range(n):",
        "                if ever[j] > dead[j]:",
        "                    redo[count] = j",
        "                    count += 1",
        "            for jj in range(count):",
        "                j = redo[jj]",
    ]
    lines += [f"                {name}[j] = s{name}[j]" for name in saved]
    lines += [
        "            for step in range(c0, c1):",
        "                t = D(step)",
        "                after = step + 1.0",
    ]
    lines += [f"                {line}" for line in hoisted]
    lines += ["                for jj in range(count):", "                    j = redo[jj]"]
    lines += step_body("                    ", exact=True)
    lines += [
        "                row = rows_of[step + 1]",
        "                if row >= 0 and (keep_loss or keep_x):",
        "                    for jj in range(count):",
        "                        j = redo[jj]",
    ]
    lines += record("                        ", "row")
    # element loops, not slice assignment: numba compiles the latter for seconds
    lines.append("        for j in range(n):")
    lines += [f"            x_a[{k}, lo + j] = xb{k}[j]" for k in range(d)]
    for name in state_names:
        lines += [f"            {name}_a[{k}, lo + j] = {name}b{k}[j]" for k in range(d)]
    lines.append("            diverged_at[lo + j] = np.int64(at[j])")
    return "\n".join(lines) + "\n"


def fused_trajectories(
    problem: Any,
    optimizer: Any,
    x0: np.ndarray,
    steps: int,
    *,
    params: dict[str, Any] | None = None,
    record_steps: Any = None,
    keep_x: bool = True,
    keep_loss: bool = True,
    threshold: float = np.inf,
    block: int = 256,
) -> tuple[dict[str, Any] | None, str]:
    """Run ``steps`` steps of ``optimizer`` on ``problem`` for every row of ``x0`` (B, d).

    Parameters
    ----------
    problem : Problem
        The objective; its symbolic gradient and value are compiled into the kernel.
    optimizer : Optimizer
        Any optimizer with an elementwise symbolic form (see :func:`update_form`).
    x0 : numpy.ndarray of shape (B, d), float32 or float64
        Starting points (not modified).
    steps : int
        Number of steps.
    params : dict, optional
        Values of the problem's parameters: scalars or arrays of shape (B,).
    record_steps : sequence of int, optional
        Steps whose iterates and losses are kept (default: every step 0 .. steps).
    keep_x, keep_loss : bool
        Whether to keep iterates and losses at the recorded steps.
    threshold : float
        A trajectory whose coordinates leave [-threshold, threshold] or become non-finite is
        frozen from then on, as in :func:`convexkit.simulate.run`; ``inf`` freezes only those
        that become non-finite (and lets the kernel test each trajectory once per unrolled
        span where the update keeps non-finite values non-finite).
    block : int
        Trajectories per block kept in cache while every step is taken.

    Returns
    -------
    (result, reason)
        ``result`` has "x" (B, d), "state" (tuple of (B, d)), "loss" (n_rec, B) or None, "xs"
        (n_rec, B, d) or None and "diverged_at" (B,), -1 where a trajectory never diverged;
        or ``result`` is None and ``reason`` says why the fused path does not apply.
    """
    if numba is None:
        return None, "numba is not installed (pip install 'convexkit[fast]')"
    if not (isinstance(x0, np.ndarray) and x0.dtype in (np.float32, np.float64) and x0.ndim == 2):
        return None, "the fused path needs x0 as a NumPy float32/float64 array of shape (B, d)"
    if len(problem.variables) > 32:
        return None, f"{len(problem.variables)} variables: the fused path serves at most 32"
    form, reason = update_form(optimizer)
    if form is None:
        return None, reason
    batch, d = x0.shape
    dtype = x0.dtype
    values = dict(params or {})
    missing = [p.name for p in problem.params if p.name not in values]
    if missing:
        return None, f"parameters without values: {missing}"
    largest = float(np.finfo(dtype).max)
    threshold = min(float(threshold), largest)  # inf: |x| <= largest holds for finite x only
    x_symbol = form.inputs[0]
    check_span_end = threshold == largest and _keeps_nonfinite(form.outputs[0], x_symbol)
    kernel = _load_module(
        _trajectory_source(form, problem, dtype, check_span_end), f"traj_{form.name}"
    ).trajectories
    tables = _trajectory_tables(problem, form, values, batch, dtype, steps, record_steps)
    n_rec = tables.n_rec
    loss_out = np.empty((n_rec if keep_loss else 0, batch), dtype=dtype)
    x_out = np.empty((n_rec if keep_x else 0, batch, d), dtype=dtype)
    # (d, B) copies: the kernel works in place and must never touch the caller's arrays
    x_t = np.array(x0.T, dtype=dtype, order="C", copy=True)
    states = tuple(
        np.array(np.asarray(s).T, dtype=dtype, order="C", copy=True) for s in optimizer.init(x0)
    )
    diverged_at = np.full(batch, -1, dtype=np.int64)

    def blocks(lo: int, hi: int) -> None:
        kernel(
            x_t,
            *states,
            tables.hyper,
            tables.sched,
            tables.params,
            steps,
            tables.rows_of,
            loss_out,
            x_out,
            float(threshold),
            diverged_at,
            block,
            lo,
            hi,
        )

    run_in_pieces(blocks, -(-batch // block))
    result = {
        "x": x_t.T.copy(),
        "state": tuple(s.T.copy() for s in states),
        "loss": loss_out if keep_loss else None,
        "xs": x_out if keep_x else None,
        "diverged_at": diverged_at,
    }
    return result, "fused"
