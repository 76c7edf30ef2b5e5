"""Safe parsing of mathematical text into SymPy objects.

Text is read with Python's :mod:`ast` parser (which only builds a tree and never runs it) and
the tree is walked against a strict whitelist; the SymPy objects are built here, node by
node. Nothing from the text is ever evaluated as Python: no ``eval``, no ``sympify`` of
strings, no ``parse_expr``.

The grammar
-----------
- numbers: integers, decimals and scientific notation; decimals become exact rationals
  (``0.1`` is ``1/10``);
- names: ASCII identifiers not starting with ``_``; each becomes ``Symbol(name, real=True)``
  unless ``names`` maps it to another object. ``pi``, ``E``/``e`` and ``oo``/``inf`` are
  constants;
- ``+ - * / **`` and ``^`` (a power, with the precedence of ``**``), unary ``+``/``-`` and
  parentheses;
- calls of the functions in :data:`FUNCTIONS`, with positional arguments only;
- ``where(cond, a, b)`` (a ``Piecewise``), whose condition may use comparisons and
  ``and``/``or``/``not``;
- comparisons ``<, <=, >, >=, ==, !=`` at the top of :func:`parse_relation`.

Everything else raises :class:`~convexkit.errors.ParseError`, naming what was refused and its
position (a 0-based index into the text). Pathological input is refused before any expensive
work: text longer than :data:`MAX_LENGTH`, brackets nested deeper than :data:`MAX_DEPTH`,
numbers with more than :data:`MAX_DIGITS` digits, and powers whose exact value would be
enormous (``9**9**9**9``) or whose numeric exponent exceeds :data:`MAX_EXPONENT` in size, and
more than :data:`MAX_CALLS` function calls. Functions of constant irrational arguments
(``tan(2*pi/7)``) and ``Max``/``Min`` of non-numbers are kept unevaluated, since SymPy's search
for their closed forms can take long.
"""

from __future__ import annotations

import ast
import math
import re
import sys
import threading
from collections.abc import Callable, Mapping
from fractions import Fraction
from typing import Any, TypeVar

import sympy as sp
from sympy.calculus.accumulationbounds import AccumBounds
from sympy.core.relational import Relational

from convexkit.errors import ParseError

__all__ = [
    "CONSTANTS",
    "FUNCTIONS",
    "MAX_CALLS",
    "MAX_DEPTH",
    "MAX_DIGITS",
    "MAX_EXPONENT",
    "MAX_LENGTH",
    "parse_expression",
    "parse_relation",
]

_T = TypeVar("_T")

MAX_LENGTH = 10_000
"""Longest text accepted, in characters."""

MAX_DEPTH = 100
"""Deepest nesting accepted: brackets in the text, and nested operators and calls in the tree."""

MAX_DIGITS = 300
"""Most decimal digits in any exact number met while building the expression."""

MAX_EXPONENT = 1000
"""Largest magnitude of a numeric exponent on a symbolic base (``x**1000`` is the limit)."""

MAX_CALLS = 256
"""Most function calls in one text (each may cost SymPy milliseconds of simplification)."""

CONSTANTS: dict[str, sp.Expr] = {
    "pi": sp.pi,
    "E": sp.E,
    "e": sp.E,
    "oo": sp.oo,
    "inf": sp.oo,
}
"""Names that denote constants rather than symbols."""


def _sigmoid(x: sp.Expr, *, evaluate: bool = True) -> sp.Expr:
    return 1 / (1 + sp.exp(-x, evaluate=evaluate))


def _relu(x: sp.Expr, *, evaluate: bool = True) -> sp.Expr:
    return sp.Max(0, x, evaluate=evaluate)


def _softplus(x: sp.Expr, *, evaluate: bool = True) -> sp.Expr:
    return sp.log(1 + sp.exp(x, evaluate=evaluate), evaluate=evaluate)


def _log(x: sp.Expr, base: sp.Expr | None = None, *, evaluate: bool = True) -> sp.Expr:
    if base is None:
        return sp.log(x, evaluate=evaluate)
    return sp.log(x, evaluate=evaluate) / sp.log(base, evaluate=evaluate)


def _extremum(kind: type) -> Callable[..., sp.Expr]:
    def build(*args: sp.Expr, evaluate: bool = True) -> sp.Expr:
        if len(args) == 1:
            return args[0]
        # SymPy's Max/Min compare every pair of arguments through the assumptions system,
        # which costs seconds for a dozen symbols; only all-number calls are evaluated.
        numbers = all(isinstance(arg, sp.Rational) for arg in args)
        return kind(*args, evaluate=evaluate and numbers)

    return build


def _where(condition: sp.Basic, a: sp.Expr, b: sp.Expr, *, evaluate: bool = True) -> sp.Expr:
    return sp.Piecewise((a, condition), (b, True))


# name -> (fewest arguments, most arguments or None for any number, builder)
_FunctionSpec = tuple[int, int | None, Callable[..., sp.Expr]]
FUNCTIONS: dict[str, _FunctionSpec] = {
    "exp": (1, 1, sp.exp),
    "log": (1, 2, _log),
    "sqrt": (1, 1, lambda x, *, evaluate=True: sp.Pow(x, sp.S.Half, evaluate=evaluate)),
    "abs": (1, 1, sp.Abs),
    "Abs": (1, 1, sp.Abs),
    "sin": (1, 1, sp.sin),
    "cos": (1, 1, sp.cos),
    "tan": (1, 1, sp.tan),
    "asin": (1, 1, sp.asin),
    "acos": (1, 1, sp.acos),
    "atan": (1, 1, sp.atan),
    "sinh": (1, 1, sp.sinh),
    "cosh": (1, 1, sp.cosh),
    "tanh": (1, 1, sp.tanh),
    "sigmoid": (1, 1, _sigmoid),
    "relu": (1, 1, _relu),
    "softplus": (1, 1, _softplus),
    "Max": (1, None, _extremum(sp.Max)),
    "max": (1, None, _extremum(sp.Max)),
    "Min": (1, None, _extremum(sp.Min)),
    "min": (1, None, _extremum(sp.Min)),
    "sign": (1, 1, sp.sign),
    "erf": (1, 1, sp.erf),
    "where": (3, 3, _where),
}
"""The functions a text may call: name -> (fewest arguments, most arguments, builder).

Each builder takes the SymPy arguments and ``evaluate``; ``where``'s first argument is a
condition.
"""

_SMALL = 10**12


def _cheap(value: sp.Basic) -> bool:
    """Whether SymPy's automatic evaluation of a function at ``value`` is cheap.

    Symbolic arguments and small exact rationals are. Constant irrational arguments are not
    always: ``tan(299*pi/301)`` or ``asin(sin(5))`` look for closed forms, ``sign`` of a
    difference of close algebraic numbers refines its precision step by step. Such calls
    are left unevaluated, which keeps a long text from costing seconds.
    """
    if value.free_symbols:
        return True
    if isinstance(value, sp.Rational):
        return abs(value.p) < _SMALL and value.q < _SMALL
    return value in (sp.oo, -sp.oo)


# What each refused kind of node is called in an error message.
_NODE_WORDS: dict[type, str] = {
    ast.Attribute: "attribute access",
    ast.Subscript: "subscript",
    ast.Slice: "slice",
    ast.Lambda: "lambda",
    ast.List: "list display",
    ast.Tuple: "tuple",
    ast.Set: "set display",
    ast.Dict: "dict display",
    ast.ListComp: "list comprehension",
    ast.SetComp: "set comprehension",
    ast.DictComp: "dict comprehension",
    ast.GeneratorExp: "generator expression",
    ast.Starred: "starred expression",
    ast.NamedExpr: "assignment expression (:=)",
    ast.IfExp: "conditional expression (a if c else b)",
    ast.JoinedStr: "f-string",
    ast.FormattedValue: "f-string field",
    ast.Await: "await",
    ast.Yield: "yield",
    ast.YieldFrom: "yield from",
}

_OPERATOR_SYMBOLS: dict[type, str] = {
    ast.Mod: "%",
    ast.FloorDiv: "//",
    ast.MatMult: "@",
    ast.LShift: "<<",
    ast.RShift: ">>",
    ast.BitOr: "|",
    ast.BitAnd: "&",
    ast.BitXor: "^",
    ast.Invert: "~",
    ast.Not: "not",
    ast.And: "and",
    ast.Or: "or",
    ast.Is: "is",
    ast.IsNot: "is not",
    ast.In: "in",
    ast.NotIn: "not in",
}

_RELATIONS: dict[type, Callable[..., sp.Basic]] = {
    ast.Lt: sp.Lt,
    ast.LtE: sp.Le,
    ast.Gt: sp.Gt,
    ast.GtE: sp.Ge,
    ast.Eq: sp.Eq,
    ast.NotEq: sp.Ne,
}

_DECIMAL = re.compile(r"^(?P<mantissa>[0-9_]*\.?[0-9_]*)(?:[eE](?P<exponent>[+-]?[0-9_]+))?$")
_REFUSED_CHARACTERS = {
    "#": "comment",
    ";": "statement separator ';'",
    "$": "character '$'",
    "?": "character '?'",
    "`": "backtick",
}
# ast.parse converts its tree recursively; a sum of a few thousand terms is a left-deep chain
# that needs more than the default recursion limit. The lock keeps concurrent parses from
# restoring each other's limit.
_PARSE_LOCK = threading.Lock()
_PARSE_RECURSION_LIMIT = 4 * MAX_LENGTH


class _Source:
    """The text as given, the code handed to ``ast`` and a map between their positions."""

    def __init__(self, text: str) -> None:
        self.text = text
        # "^" is a power; replacing it by "**" before parsing gives it the precedence of "**"
        # (Python's "^" binds more loosely than "+", so "2*x^2+1" would mean (2x)^3).
        # Line breaks and tabs are spaces, and the whole text goes in parentheses, so that
        # leading blanks and line breaks parse; the brackets are balanced (checked before).
        pieces: list[str] = ["("]
        self.origin: list[int] = [0]
        for index, char in enumerate(text):
            if char == "^":
                pieces.append("**")
                self.origin.extend((index, index))
            else:
                pieces.append(" " if char in "\t\n\r" else char)
                self.origin.append(index)
        pieces.append(")")
        self.origin.extend((len(text), len(text)))
        self.code = "".join(pieces)

    def position(self, node: ast.AST | None = None, *, column: int = 0) -> int:
        """0-based index into the original text of a node, or of a column of the code."""
        if node is not None:
            column = getattr(node, "col_offset", 0)
        return self.origin[min(max(column, 0), len(self.code))]

    def refuse(self, what: str, node: ast.AST | None = None) -> ParseError:
        """A ParseError naming ``what`` and where it stands."""
        where = self.position(node)
        return ParseError(f"{what} refused at position {where} in {_excerpt(self.text, where)}")


def _excerpt(text: str, where: int, width: int = 30) -> str:
    start = max(where - width, 0)
    stop = min(where + width, len(text))
    head = "..." if start > 0 else ""
    tail = "..." if stop < len(text) else ""
    return repr(head + text[start:stop] + tail)


def _check_text(text: Any, argument: str) -> _Source:
    if not isinstance(text, str):
        raise ParseError(f"{argument}={text!r:.80} is not text: expected a str")
    if len(text) > MAX_LENGTH:
        raise ParseError(
            f"{argument} has {len(text)} characters: refused, the limit is {MAX_LENGTH}"
        )
    depth = 0
    for index, char in enumerate(text):
        code = ord(char)
        if code > 126 or (code < 32 and char not in "\t\n\r"):
            # Non-ASCII letters are folded by Python's parser (NFKC), so "ｅｘｅｃ" would read
            # as "exec"; refusing them keeps names exactly what they look like.
            raise ParseError(
                f"character U+{code:04X} ({char!r}) refused at position {index} in "
                f"{_excerpt(text, index)}: write names and operators in ASCII"
            )
        if char in _REFUSED_CHARACTERS:
            raise ParseError(
                f"{_REFUSED_CHARACTERS[char]} refused at position {index} in "
                f"{_excerpt(text, index)}"
            )
        if char in "([{":
            depth += 1
            if depth > MAX_DEPTH:
                raise ParseError(
                    f"brackets nested deeper than {MAX_DEPTH} refused at position {index} in "
                    f"{_excerpt(text, index)}"
                )
        elif char in ")]}":
            depth -= 1
            if depth < 0:
                raise ParseError(
                    f"unbalanced {char!r} refused at position {index} in {_excerpt(text, index)}"
                )
    if depth:
        raise ParseError(f"unclosed bracket refused in {_excerpt(text, len(text))}")
    if not text.strip():
        raise ParseError(f"{argument} is empty: expected a mathematical expression")
    return _Source(text)


def _parse_tree(source: _Source) -> ast.expr:
    with _PARSE_LOCK:
        previous = sys.getrecursionlimit()
        sys.setrecursionlimit(max(previous, _PARSE_RECURSION_LIMIT))
        try:
            return ast.parse(source.code, mode="eval").body
        except SyntaxError as err:
            at = source.position(column=(err.offset or 1) - 1)
            raise ParseError(
                f"syntax error ({err.msg}) at position {at} in {_excerpt(source.text, at)}"
            ) from None
        except (RecursionError, MemoryError):
            raise ParseError(
                f"expression nested too deeply to parse: {_excerpt(source.text, 0)}"
            ) from None
        except ValueError as err:
            raise ParseError(f"text refused: {err}") from None
        finally:
            sys.setrecursionlimit(previous)


def _count_calls(tree: ast.AST, source: _Source) -> None:
    calls = 0
    for node in ast.walk(tree):  # breadth first, without recursion
        if isinstance(node, ast.Call):
            calls += 1
            if calls > MAX_CALLS:
                raise source.refuse(f"more than {MAX_CALLS} function calls", node)


def _digits(value: int) -> int:
    """Decimal digits of ``|value|``."""
    return int(math.log10(abs(value))) + 1 if value else 1


def _check_number(number: sp.Expr, source: _Source | None, node: ast.AST | None) -> sp.Expr:
    if isinstance(number, sp.Rational):
        if max(_digits(number.p), _digits(number.q)) > MAX_DIGITS:
            message = f"number with more than {MAX_DIGITS} digits"
            if source is None:
                raise ParseError(message + " refused")
            raise source.refuse(message, node)
    return number


def _power(base: sp.Expr, exponent: sp.Expr, source: _Source | None, node: ast.AST | None = None):
    """``base**exponent`` after checking that its exact value stays of reasonable size."""

    def refuse(what: str) -> ParseError:
        return ParseError(what + " refused") if source is None else source.refuse(what, node)

    if isinstance(exponent, sp.Rational) and not exponent.is_Integer and exponent.q > MAX_EXPONENT:
        raise refuse(f"root of order above {MAX_EXPONENT}")
    if isinstance(exponent, sp.Rational) and isinstance(base, sp.Rational):
        if base == 0 and exponent < 0:
            raise refuse("division by zero (0 to a negative power)")
        # the result has about |exponent| * log10(base) digits
        magnitude = math.log10(max(abs(base.p), base.q)) if base != 0 else 0.0
        if float(abs(exponent)) * magnitude > MAX_DIGITS:
            raise refuse(f"power {base}**{exponent} (more than {MAX_DIGITS} digits)")
    elif isinstance(exponent, sp.Number) and exponent.is_finite:
        if abs(exponent) > MAX_EXPONENT:
            raise refuse(f"exponent {exponent} (larger than {MAX_EXPONENT} in size)")
    if base.is_Number and not exponent.is_Integer and not _cheap(base):
        # Roots of large integers search for perfect powers and small factors.
        return sp.Pow(base, exponent, evaluate=False)
    return sp.Pow(base, exponent)


class _Builder:
    """Walks an ``ast`` tree against the whitelist and builds the SymPy object."""

    def __init__(self, source: _Source, names: Mapping[str, sp.Basic]) -> None:
        self.source = source
        self.names = names

    def refuse(self, what: str, node: ast.AST) -> ParseError:
        return self.source.refuse(what, node)

    def describe(self, node: ast.AST) -> str:
        if isinstance(node, ast.Constant):
            value = node.value
            if isinstance(value, str):
                return "string literal"
            if isinstance(value, bytes):
                return "bytes literal"
            if isinstance(value, bool) or value is None or value is Ellipsis:
                return f"constant {value!r}"
            if isinstance(value, complex):
                return "imaginary number literal"
            return f"constant {value!r}"
        if isinstance(node, ast.Attribute):
            return f"attribute access '.{node.attr}'"
        word = _NODE_WORDS.get(type(node))
        if word is not None:
            return word
        if isinstance(node, ast.BoolOp):
            return f"boolean operator '{_OPERATOR_SYMBOLS[type(node.op)]}'"
        if isinstance(node, ast.Compare):
            return "comparison"
        return f"Python construct {type(node).__name__}"

    # -- expressions ------------------------------------------------------------------------
    def expr(self, node: ast.AST, depth: int) -> sp.Expr:
        if depth > MAX_DEPTH:
            raise self.refuse(f"expression nested deeper than {MAX_DEPTH} levels", node)
        if isinstance(node, ast.BinOp):
            return self.binary(node, depth)
        if isinstance(node, ast.UnaryOp):
            if isinstance(node.op, ast.USub):
                return -self.expr(node.operand, depth + 1)
            if isinstance(node.op, ast.UAdd):
                return self.expr(node.operand, depth + 1)
            symbol = _OPERATOR_SYMBOLS[type(node.op)]
            where = "outside a where() condition" if symbol == "not" else ""
            raise self.refuse(f"operator '{symbol}' {where}".rstrip(), node)
        if isinstance(node, ast.Constant):
            return self.number(node)
        if isinstance(node, ast.Name):
            return self.name(node)
        if isinstance(node, ast.Call):
            return self.call(node, depth)
        if isinstance(node, ast.Compare):
            raise self.refuse(
                "comparison inside an expression (allowed in where() and relations)", node
            )
        if isinstance(node, ast.BoolOp):
            raise self.refuse(f"{self.describe(node)} outside a where() condition", node)
        raise self.refuse(self.describe(node), node)

    def binary(self, node: ast.BinOp, depth: int) -> sp.Expr:
        op = type(node.op)
        if op in (ast.Add, ast.Sub):
            # Flatten the left-deep chain a + b - c + ... without recursion.
            terms: list[sp.Expr] = []
            current: ast.AST = node
            while isinstance(current, ast.BinOp) and isinstance(current.op, (ast.Add, ast.Sub)):
                term = self.expr(current.right, depth + 1)
                terms.append(-term if isinstance(current.op, ast.Sub) else term)
                current = current.left
            terms.append(self.expr(current, depth + 1))
            return sp.Add(*reversed(terms))
        if op in (ast.Mult, ast.Div):
            factors: list[sp.Expr] = []
            current = node
            while isinstance(current, ast.BinOp) and isinstance(current.op, (ast.Mult, ast.Div)):
                factor = self.expr(current.right, depth + 1)
                if isinstance(current.op, ast.Div):
                    if factor == 0:
                        raise self.refuse("division by zero", current)
                    factor = _power(factor, sp.Integer(-1), self.source, current)
                factors.append(factor)
                current = current.left
            factors.append(self.expr(current, depth + 1))
            if len(factors) > MAX_EXPONENT:
                raise self.refuse(f"product of more than {MAX_EXPONENT} factors", node)
            # Numbers are multiplied one at a time so that a long product of large numbers is
            # refused as soon as it grows too big; the rest is one flattening Mul.
            coefficient: sp.Expr = sp.Integer(1)
            others: list[sp.Expr] = []
            for factor in factors:
                if isinstance(factor, sp.Rational):
                    coefficient = _check_number(coefficient * factor, self.source, node)
                else:
                    others.append(factor)
            product = sp.Mul(coefficient, *reversed(others))
            _check_number(product.as_coeff_Mul()[0], self.source, node)
            return product
        if op is ast.Pow:
            base = self.expr(node.left, depth + 1)
            exponent = self.expr(node.right, depth + 1)
            return _power(base, exponent, self.source, node)
        raise self.refuse(f"operator '{_OPERATOR_SYMBOLS.get(op, op.__name__)}'", node)

    def number(self, node: ast.Constant) -> sp.Expr:
        value = node.value
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise self.refuse(self.describe(node), node)
        if isinstance(value, int):
            return _check_number(sp.Integer(value), self.source, node)
        literal = ast.get_source_segment(self.source.code, node) or repr(value)
        literal = literal.strip().replace("_", "")
        match = _DECIMAL.match(literal)
        if match is None:
            raise self.refuse(f"number literal {literal!r}", node)
        mantissa = match.group("mantissa")
        exponent = int(match.group("exponent") or 0)
        if abs(exponent) > MAX_DIGITS or len(mantissa) > MAX_DIGITS:
            raise self.refuse(f"number literal {literal!r} (beyond {MAX_DIGITS} digits)", node)
        exact = Fraction(literal)
        return _check_number(sp.Rational(exact.numerator, exact.denominator), self.source, node)

    def name(self, node: ast.Name) -> sp.Expr:
        identifier = node.id
        if identifier.startswith("_"):
            raise self.refuse(f"name {identifier!r} (names may not start with '_')", node)
        if identifier in self.names:
            return self.names[identifier]
        if identifier in CONSTANTS:
            return CONSTANTS[identifier]
        if identifier in FUNCTIONS:
            raise self.refuse(f"function {identifier!r} used without a call", node)
        return sp.Symbol(identifier, real=True)

    def call(self, node: ast.Call, depth: int) -> sp.Expr:
        if not isinstance(node.func, ast.Name):
            raise self.refuse(f"call of {self.describe(node.func)}", node)
        name = node.func.id
        if name.startswith("_"):
            raise self.refuse(f"call of {name!r} (names may not start with '_')", node)
        if name not in FUNCTIONS:
            allowed = ", ".join(sorted(FUNCTIONS))
            raise self.refuse(f"call of unknown function {name!r} (allowed: {allowed})", node)
        if node.keywords:
            keyword = node.keywords[0]
            label = f"'{keyword.arg}='" if keyword.arg else "'**'"
            raise self.refuse(f"keyword argument {label} in a call of {name!r}", keyword)
        for argument in node.args:
            if isinstance(argument, ast.Starred):
                raise self.refuse(f"starred argument in a call of {name!r}", argument)
        fewest, most, build = FUNCTIONS[name]
        count = len(node.args)
        if count < fewest or (most is not None and count > most):
            expected = str(fewest) if fewest == most else f"{fewest} to {most or 'any'}"
            raise self.refuse(f"call of {name!r} with {count} arguments (takes {expected})", node)
        if name == "where":
            condition = self.condition(node.args[0], depth + 1)
            branches = [self.expr(argument, depth + 1) for argument in node.args[1:]]
            return build(condition, *branches)
        arguments = [self.expr(argument, depth + 1) for argument in node.args]
        if name == "sqrt":
            return _power(arguments[0], sp.S.Half, self.source, node)
        return build(*arguments, evaluate=all(_cheap(argument) for argument in arguments))

    # -- conditions and relations -----------------------------------------------------------
    def condition(self, node: ast.AST, depth: int) -> sp.Basic:
        if depth > MAX_DEPTH:
            raise self.refuse(f"condition nested deeper than {MAX_DEPTH} levels", node)
        if isinstance(node, ast.Compare):
            parts = self.comparisons(node, depth, evaluate=True)
            return sp.And(*parts) if len(parts) > 1 else parts[0]
        if isinstance(node, ast.BoolOp):
            combine = sp.And if isinstance(node.op, ast.And) else sp.Or
            return combine(*(self.condition(value, depth + 1) for value in node.values))
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
            return sp.Not(self.condition(node.operand, depth + 1))
        raise self.refuse(
            f"{self.describe(node)} as a where() condition (expected a comparison)", node
        )

    def constant_truth(
        self, relation: Callable[..., sp.Basic], left: sp.Expr, right: sp.Expr, node: ast.AST
    ) -> sp.Basic:
        """A comparison of two constants decided by a 30-digit evaluation of their difference.

        SymPy's own decision refines its precision without bound and its Piecewise fails on
        unevaluated constant comparisons; differences below 1e-25 are left undecided.
        """
        difference = sp.N(left - right, 30)
        if not difference.is_real or abs(difference) < 1e-25:
            raise self.refuse(f"comparison of constants {left} and {right} (undecidable)", node)
        sign = sp.Integer(1 if difference > 0 else -1)
        return relation(sign, 0)

    def comparisons(self, node: ast.Compare, depth: int, *, evaluate: bool) -> list[sp.Basic]:
        left = self.expr(node.left, depth + 1)
        parts = []
        for op, right_node in zip(node.ops, node.comparators, strict=True):
            relation = _RELATIONS.get(type(op))
            if relation is None:
                raise self.refuse(f"operator '{_OPERATOR_SYMBOLS[type(op)]}'", node)
            right = self.expr(right_node, depth + 1)
            if evaluate and not _cheap(left - right):
                parts.append(self.constant_truth(relation, left, right, node))
            else:
                parts.append(relation(left, right, evaluate=evaluate))
            left = right
        return parts


def _final_check(result: sp.Basic, source: _Source) -> sp.Basic:
    for sub in sp.preorder_traversal(result):
        if sub in (sp.zoo, sp.nan) or isinstance(sub, AccumBounds):
            raise ParseError(f"expression {_excerpt(source.text, 0)} is undefined ({sub}): refused")
        if isinstance(sub, sp.Rational):
            _check_number(sub, source, None)
        elif isinstance(sub, sp.Pow) and isinstance(sub.exp, sp.Number):
            if sub.exp.is_finite and abs(sub.exp) > MAX_EXPONENT:
                raise ParseError(
                    f"power with exponent {sub.exp} (larger than {MAX_EXPONENT}) refused in "
                    f"{_excerpt(source.text, 0)}"
                )
    return result


def _build(build: Callable[[], _T], source: _Source) -> _T:
    try:
        return build()
    except ParseError:
        raise
    except (TypeError, ValueError, ArithmeticError, NotImplementedError) as err:
        # SymPy refuses some combinations itself (comparisons of complex values, ...)
        raise ParseError(
            f"SymPy cannot build {_excerpt(source.text, 0)}: {type(err).__name__}: {err}"
        ) from None


def _check_names(names: Mapping[str, sp.Basic] | None) -> Mapping[str, sp.Basic]:
    if names is None:
        return {}
    if not isinstance(names, Mapping):
        raise ParseError(
            f"names={names!r:.80} is not allowed: expected a mapping str -> SymPy object"
        )
    for key, value in names.items():
        if not isinstance(key, str) or not isinstance(value, sp.Basic):
            raise ParseError(
                f"names[{key!r:.40}]={value!r:.40} is not allowed: expected str keys and "
                "SymPy values"
            )
    return names


def parse_expression(text: str, names: Mapping[str, sp.Basic] | None = None) -> sp.Expr:
    """Parse mathematical text into a SymPy expression, executing nothing.

    Parameters
    ----------
    text : str
        The expression, e.g. ``"x1**2 + 3*x2 - log(1 + exp(-x1))"``; ``^`` means a power.
    names : mapping of str to SymPy objects, optional
        Objects to use for names instead of ``Symbol(name, real=True)``, e.g. symbols with
        other assumptions, or parameters shared with another expression. They also override
        the constants ``pi``, ``e``, ``E``, ``oo`` and ``inf``.

    Returns
    -------
    sympy.Expr
        The expression. Decimal literals are exact rationals.

    Raises
    ------
    ParseError
        For anything outside the grammar in the module docstring, with what was refused and
        its position in ``text``.

    Examples
    --------
    >>> parse_expression("2*x^2 + relu(y)")
    2*x**2 + Max(0, y)
    """
    source = _check_text(text, "text")
    builder = _Builder(source, _check_names(names))
    tree = _parse_tree(source)
    _count_calls(tree, source)
    if isinstance(tree, ast.Compare):
        raise source.refuse("comparison (use parse_relation for relations)", tree)
    result = _build(lambda: builder.expr(tree, 0), source)
    if not isinstance(result, sp.Expr):
        raise source.refuse("non-expression result", tree)
    return _final_check(result, source)


def parse_relation(text: str, names: Mapping[str, sp.Basic] | None = None) -> Relational:
    """Parse one comparison such as ``"x1 + x2 >= 1"`` into an unevaluated SymPy relation.

    Parameters
    ----------
    text : str
        Two expressions joined by one of ``<``, ``<=``, ``>``, ``>=``, ``==``, ``!=``.
    names : mapping of str to SymPy objects, optional
        As in :func:`parse_expression`.

    Returns
    -------
    sympy.core.relational.Relational
        The relation, never evaluated to ``True``/``False`` (``"1 <= 2"`` stays a relation).

    Raises
    ------
    ParseError
        For text that is not exactly one comparison of two valid expressions; chained
        comparisons such as ``0 <= x <= 1`` are refused (write two relations).
    """
    source = _check_text(text, "text")
    builder = _Builder(source, _check_names(names))
    tree = _parse_tree(source)
    _count_calls(tree, source)
    if not isinstance(tree, ast.Compare):
        raise source.refuse(f"{builder.describe(tree)} where a comparison was expected", tree)
    if len(tree.ops) != 1:
        raise source.refuse("chained comparison (write one relation per comparison)", tree)
    (relation,) = _build(lambda: builder.comparisons(tree, 0, evaluate=False), source)
    return _final_check(relation, source)
