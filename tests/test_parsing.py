"""Safe parsing: the grammar, its refusals, and a corpus of hostile strings."""

from __future__ import annotations

import builtins
import contextlib
import math
import os
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import sympy as sp
from hypothesis import assume, given
from hypothesis import strategies as st

import convexkit as ck
from convexkit.errors import ParseError
from convexkit.symbolic import parsing
from convexkit.symbolic.parsing import parse_expression, parse_relation

x, y, z = sp.symbols("x y z", real=True)
x1, x2 = sp.symbols("x1 x2", real=True)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2*x^2 + 1", 2 * x**2 + 1),
        ("-x^2", -(x**2)),
        ("x^-1", 1 / x),
        ("2^3^2", sp.Integer(512)),
        ("x1 + 0.1*x2 - 1e-3", x1 + sp.Rational(1, 10) * x2 - sp.Rational(1, 1000)),
        ("2.5E2*x", 250 * x),
        ("1_000 + .5", sp.Rational(2001, 2)),
        ("0x10 * x", 16 * x),
        ("(x + y) / 2 / z", (x + y) / (2 * z)),
        ("x - y - z", x - y - z),
        ("+x", x),
        ("pi*e + E", sp.pi * sp.E + sp.E),
        ("exp(-oo) + x", x),
        ("inf", sp.oo),
        ("exp(x) + log(y) + sqrt(z)", sp.exp(x) + sp.log(y) + sp.sqrt(z)),
        ("log(x, 2)", sp.log(x) / sp.log(2)),
        ("abs(x) + Abs(y)", sp.Abs(x) + sp.Abs(y)),
        ("sin(x)*cos(y)*tan(z)", sp.sin(x) * sp.cos(y) * sp.tan(z)),
        ("asin(x) + acos(y) + atan(z)", sp.asin(x) + sp.acos(y) + sp.atan(z)),
        ("sinh(x) + cosh(y) + tanh(z)", sp.sinh(x) + sp.cosh(y) + sp.tanh(z)),
        ("sigmoid(x)", 1 / (1 + sp.exp(-x))),
        ("relu(x)", sp.Max(0, x)),
        ("softplus(x)", sp.log(1 + sp.exp(x))),
        ("max(x, y) - Min(x, y)", sp.Max(x, y) - sp.Min(x, y)),
        ("max(2, 7, 3)", sp.Integer(7)),
        ("sign(x) * erf(y)", sp.sign(x) * sp.erf(y)),
        ("where(x < 0, -x, x)", sp.Piecewise((-x, x < 0), (x, True))),
        (
            "where(x >= 0 and not y > 1, x, y)",
            sp.Piecewise((x, sp.And(x >= 0, sp.Not(y > 1))), (y, True)),
        ),
        (
            "where(0 < x < 1 or x == 3, 1, 0)",
            sp.Piecewise((1, sp.Or(sp.And(sp.Lt(0, x), sp.Lt(x, 1)), sp.Eq(x, 3))), (0, True)),
        ),
        ("sqrt(8)", 2 * sp.sqrt(2)),
        ("  x +\n\ty  ", x + y),
        ("x**1000", x**1000),
    ],
)
def test_grammar(text: str, expected: sp.Expr) -> None:
    assert parse_expression(text) == expected


def test_names_are_real_symbols_and_mapping_overrides() -> None:
    assert parse_expression("x").is_real
    a = sp.Symbol("a", positive=True)
    result = parse_expression("a*x + e", names={"a": a, "e": z})
    assert result == a * x + z
    with pytest.raises(ParseError, match="names"):
        parse_expression("x", names={"x": 3})


def test_constant_irrational_arguments_stay_unevaluated() -> None:
    # closed forms of tan(k*pi/q) and asin(sin(k)) cost SymPy milliseconds each
    result = parse_expression("tan(299*pi/301)")
    assert isinstance(result, sp.tan)
    assert math.isclose(float(result), math.tan(299 * math.pi / 301), rel_tol=1e-12)
    assert parse_expression("sin(0)") == 0  # rational arguments are evaluated


def test_relations() -> None:
    relation = parse_relation("x1 + x2 >= 1")
    assert isinstance(relation, sp.GreaterThan)
    assert relation.lhs == x1 + x2 and relation.rhs == 1
    assert isinstance(parse_relation("x^2 + y^2 <= 1"), sp.LessThan)
    assert isinstance(parse_relation("x == 2"), sp.Equality)
    assert isinstance(parse_relation("x < 2"), sp.StrictLessThan)
    assert isinstance(parse_relation("x != 2"), sp.Unequality)
    trivial = parse_relation("1 <= 2")
    assert isinstance(trivial, sp.LessThan)  # not evaluated to True
    with pytest.raises(ParseError, match="chained comparison"):
        parse_relation("0 <= x <= 1")
    with pytest.raises(ParseError, match="where a comparison was expected"):
        parse_relation("x + 1")
    with pytest.raises(ParseError, match="use parse_relation"):
        parse_expression("x >= 1")


@pytest.mark.parametrize(
    ("text", "what", "position"),
    [
        ("x + y.z", "attribute access '.z'", 4),
        ("exp(x) + foo(y)", "unknown function 'foo'", 9),
        ("x + 'a'", "string literal", 4),
        ("1 + [x][0]", "subscript", 4),
        ("x + _y", "name '_y'", 4),
        ("exp(x, base=2)", "keyword argument 'base='", 7),
        ("x + (y := 2)", "assignment expression", 5),
        ("x ^ y ^ z.real", "attribute access", 8),
        ("x +\n  exp.y", "attribute access", 6),
        ("x % 2", "operator '%'", 0),
        ("x +* y", "syntax error", 3),
    ],
)
def test_errors_name_what_and_where(text: str, what: str, position: int) -> None:
    with pytest.raises(ParseError) as info:
        parse_expression(text)
    message = str(info.value)
    assert what in message
    assert f"position {position}" in message


def test_wrong_number_of_arguments() -> None:
    with pytest.raises(ParseError, match=r"'exp' with 2 arguments \(takes 1\)"):
        parse_expression("exp(x, y)")
    with pytest.raises(ParseError, match=r"'log' with 3 arguments \(takes 1 to 2\)"):
        parse_expression("log(x, y, z)")
    with pytest.raises(ParseError, match="'max' with 0 arguments"):
        parse_expression("max()")


# -- hostile input ---------------------------------------------------------------------

HOSTILE = [
    "__import__('os').system('touch SENTINEL')",
    "().__class__",
    "().__class__.__bases__[0].__subclasses__()",
    "x.real",
    "x.__dict__",
    "lambda: 1",
    "(lambda: __import__('os'))()",
    "[1][0]",
    '"a"',
    "b'a'",
    "f'{x}'",
    "open('SENTINEL', 'w')",
    "exec('import os')",
    "eval('1+1')",
    "compile('1', 'f', 'eval')",
    "getattr(x, 'real')",
    "globals()",
    "__builtins__",
    "_",
    "x._sympy_",
    "9**9**9**9",
    "2**(10**9)",
    "10**10**10 * x",
    "(1/2)**-(10**9)",
    "x**(10**9)",
    "x**(1/10**9)",
    "1" * 400,
    "1e999999",
    "(" * 100000,
    "(" * 150 + "x" + ")" * 150,
    "x+" * 500000 + "x",
    "-" * 9999 + "x",
    "x**" * 3000 + "x",
    "exp(" * 150 + "x" + ")" * 150,
    "x*" * 4999 + "x",
    "a" * 1_000_000,
    "ｅｘｅｃ('1')",
    "x\u200b+y",
    "x\x00",
    "x # comment",
    "x; y",
    "[x for x in (1,)]",
    "{x: 1}",
    "{x}",
    "(x, y)",
    "x if y else z",
    "not x",
    "x and y",
    "x or y",
    "x @ y",
    "x // y",
    "x << 2",
    "~x",
    "*x",
    "(y := 1)",
    "yield x",
    "await x",
    "True",
    "None",
    "...",
    "1j",
    "x)",
    "(x",
    "",
    "   ",
    "x\\\n+y",
    "exp(*[x])",
    "exp(**{'x': 1})",
    "max(x, key=abs)",
    "1/0",
    "0**-1",
    "x/0",
    "sin(oo)",
    "+".join(f"abs(x{i})" for i in range(300)),
]


@contextlib.contextmanager
def tripwires() -> Iterator[list[str]]:
    """Replace the ways text could run code with recorders for the duration of the block.

    ``eval``/``exec`` are recorded when handed source text (the import system hands them
    code objects); ``open``, ``os.system``, ``os.popen`` and ``subprocess.Popen`` always.
    """
    fired: list[str] = []
    real_eval, real_exec = builtins.eval, builtins.exec

    def guard(name: str, real: Callable[..., Any]) -> Callable[..., Any]:
        def guarded(source: Any, *args: Any, **kwargs: Any) -> Any:
            if isinstance(source, str | bytes):
                fired.append(f"{name}({source!r:.40})")
                raise AssertionError(f"{name} of source text while parsing")
            return real(source, *args, **kwargs)

        return guarded

    def record(name: str) -> Callable[..., Any]:
        def recorded(*args: Any, **kwargs: Any) -> Any:
            fired.append(name)
            raise AssertionError(f"{name} called while parsing")

        return recorded

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(builtins, "eval", guard("eval", real_eval))
        patch.setattr(builtins, "exec", guard("exec", real_exec))
        patch.setattr(builtins, "open", record("open"))
        patch.setattr(os, "system", record("os.system"))
        patch.setattr(os, "popen", record("os.popen"))
        patch.setattr(subprocess, "Popen", record("subprocess.Popen"))
        yield fired


def test_hostile_corpus_is_large() -> None:
    assert len(HOSTILE) >= 30
    assert len(set(HOSTILE)) == len(HOSTILE)


@pytest.mark.parametrize("text", HOSTILE, ids=lambda t: repr(t[:24]) + f"[{len(t)}]")
def test_hostile_strings_are_refused_quickly_and_run_nothing(
    text: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    for parse in (parse_expression, parse_relation):
        with tripwires() as fired:
            start = time.perf_counter()
            with pytest.raises(ParseError):
                parse(text)
            elapsed = time.perf_counter() - start
        assert elapsed < 1.0
        assert fired == []
    assert list(tmp_path.iterdir()) == []


def test_tripwires_fire() -> None:
    # the recorders above would notice code being run
    with tripwires() as fired, pytest.raises(AssertionError):
        builtins.eval("1 + 1")
    assert fired == ["eval('1 + 1')"]


def test_problem_refuses_hostile_text_with_the_public_error() -> None:
    with pytest.raises(ck.ParseError, match="attribute access"):
        ck.Problem("x.__class__")
    with pytest.raises(ck.ParseError, match="unknown function 'system'"):
        ck.Problem("x**2", constraints=["system(x) <= 1"])


def test_non_text_is_refused() -> None:
    with pytest.raises(ParseError, match="not text"):
        parse_expression(3)  # type: ignore[arg-type]
    with pytest.raises(ParseError, match="not text"):
        parse_expression(b"x")  # type: ignore[arg-type]


def test_limits_are_at_their_documented_values() -> None:
    longest = "x+" * ((parsing.MAX_LENGTH - 1) // 2) + "x"
    assert len(longest) <= parsing.MAX_LENGTH
    start = time.perf_counter()
    assert parse_expression(longest) == ((parsing.MAX_LENGTH - 1) // 2 + 1) * x
    assert time.perf_counter() - start < 2.0
    deepest = "(" * parsing.MAX_DEPTH + "x" + ")" * parsing.MAX_DEPTH
    assert parse_expression(deepest) == x
    with pytest.raises(ParseError, match="nested deeper"):
        parse_expression("(" + deepest + ")")
    assert parse_expression(f"x**{parsing.MAX_EXPONENT}") == x**parsing.MAX_EXPONENT
    assert parse_expression("2**996") == sp.Integer(2) ** 996
    with pytest.raises(ParseError, match="more than"):
        parse_expression("2**1000 * 2**1000")
    calls = "+".join(["exp(x)"] * parsing.MAX_CALLS)
    assert parse_expression(calls) == parsing.MAX_CALLS * sp.exp(x)
    with pytest.raises(ParseError, match="function calls"):
        parse_expression(calls + "+exp(x)")


# -- agreement with Python's own arithmetic on generated text ---------------------------

_FUNCTIONS = {
    "sin": math.sin,
    "cos": math.cos,
    "tanh": math.tanh,
    "exp": math.exp,
    "abs": abs,
    "sigmoid": lambda v: 1 / (1 + math.exp(-v)),
    "relu": lambda v: max(0.0, v),
    "softplus": lambda v: math.log1p(math.exp(v)),
}


def _leaves() -> st.SearchStrategy[str]:
    return st.one_of(
        st.sampled_from(["x", "y", "x1", "pi", "e"]),
        st.integers(0, 9).map(str),
        st.sampled_from(["0.5", "2.25", "1e-1", "3E0"]),
    )


def _extend(children: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    return st.one_of(
        st.tuples(children, st.sampled_from(["+", "-", "*"]), children).map(
            lambda t: f"{t[0]} {t[1]} {t[2]}"
        ),
        st.tuples(children, st.sampled_from(["^2", "**3", "^ 2"])).map(lambda t: f"({t[0]}){t[1]}"),
        st.tuples(children, children).map(lambda t: f"{t[0]}/({t[1]} + 10)"),
        children.map(lambda c: f"-{c}"),
        children.map(lambda c: f"({c})"),
        st.tuples(st.sampled_from(sorted(_FUNCTIONS)), children).map(lambda t: f"{t[0]}({t[1]})"),
        st.tuples(children, children).map(lambda t: f"max({t[0]}, {t[1]})"),
        st.tuples(children, children, children).map(
            lambda t: f"where({t[0]} < {t[1]}, {t[1]}, {t[2]})"
        ),
    )


EXPRESSIONS = st.recursive(_leaves(), _extend, max_leaves=12)


@given(
    text=EXPRESSIONS,
    xv=st.floats(-2, 2, allow_nan=False),
    yv=st.floats(0.1, 2, allow_nan=False),
)
def test_parsed_value_matches_python_arithmetic(text: str, xv: float, yv: float) -> None:
    # The test (not the library) evaluates its own generated text with Python, as an
    # independent reading of precedence and function semantics.
    namespace = dict(_FUNCTIONS, x=xv, y=yv, x1=0.75, pi=math.pi, e=math.e, max=max)
    python_text = text.replace("^", "**")
    python_text = _where_to_python(python_text)
    try:
        expected = builtins.eval(python_text, {"__builtins__": {}}, namespace)  # noqa: S307
    except (OverflowError, ZeroDivisionError, ValueError):
        assume(False)
    assume(isinstance(expected, float | int) and math.isfinite(expected) and abs(expected) < 1e12)
    try:
        expr = parse_expression(text)
    except ParseError as err:
        # nested cubes can pass the exponent limit; nothing else may be refused
        assert "exponent" in str(err) or "digits" in str(err)
        return
    values = {x: xv, y: yv, x1: 0.75}
    got = complex(expr.evalf(30, subs=values))
    assert abs(got.imag) <= 1e-9 * max(1.0, abs(expected))
    assert math.isclose(got.real, expected, rel_tol=1e-9, abs_tol=1e-9)


def _where_to_python(text: str) -> str:
    # where(c, a, b) -> (a if c else b), innermost first
    while "where(" in text:
        start = text.rindex("where(")
        depth, parts, current = 0, [], start + len("where(")
        for index in range(start + len("where("), len(text)):
            char = text[index]
            if char == "(":
                depth += 1
            elif char == ")":
                if depth == 0:
                    parts.append(text[current:index])
                    end = index
                    break
                depth -= 1
            elif char == "," and depth == 0:
                parts.append(text[current:index])
                current = index + 1
        condition, a, b = parts
        text = f"{text[:start]}(({a}) if ({condition}) else ({b})){text[end + 1 :]}"
    return text
