"""The ``#{...}`` expression language of AWS Data Pipeline, for the local service.

Owns: the public interface of the language, and evaluation: references, arithmetic,
lists, argument conversion and rendering. Parsing lives in ``exprparse``; date-times,
periods, Joda patterns and the function table in ``jodatime`` (imports point
expressions -> exprparse -> jodatime); their public names are re-exported here.

Must not: import anything outside the standard library and those two modules
(``localservice`` is an island), call ``eval``, or know where values come from.
The caller passes ``lookup``, which resolves a whole reference
(``node.@scheduledStartTime``) against pipeline objects.

Why: AWS evaluates expressions before a task reaches a runner, so the local service
must too. A small recursive-descent parser (parsed templates are cached) reports the
expression and the position of each error, and can run without values (``validate``,
``references``) when a definition is put.

Supported subset (DG: dp-pipeline-expressions, dp-pipeline-reference-functions-*):
references to parameters ``#{myParam}``, fields ``#{name}``, runtime fields
``#{@scheduledStartTime}``, secret fields ``#{*myPassword}`` and dotted paths
``#{node.@scheduledStartTime}``; string literals in single or double quotes (a
backslash escapes the next character); integer and decimal literals; operators ``^``
(power, always decimal) above unary ``-`` above ``* /`` above ``+ -``, and parentheses.
``+`` concatenates when either side is a string, else adds; ``/`` on two integers
truncates toward zero, as in Java. Functions: ``format(dt, pattern)`` with Joda-Time
patterns; ``plus``/``minus`` + ``Minutes|Hours|Days|Weeks|Months|Years(dt, n)``;
``makeDate(y, m, d)``, ``makeDateTime(y, m, d, h, min)``, ``inTimeZone(dt, zone)``;
``midnight``, ``firstOfMonth``, ``sunday``, ``yesterday`` (all but ``midnight`` keep
the time of day); ``year``, ``month``, ``day``, ``hour``, ``minute``, ``dayOfYear``.
An operator or function applied to a list applies to each element (DG "Lists").
Rendering: strings as is, numbers as Python's ``repr`` (Java's ``Double.toString``
differs only outside 1e-3..1e7), date-times in the wire format in their own zone
(UTC unless ``inTimeZone``). Not supported, as the DG documents none of them:
comparisons, booleans, conditionals, and string functions other than ``+`` (no
``substring``, ``indexOf``, ``trim``). ``lookup`` should return numbers for numeric
parameters: numeric strings are coerced by ``- * / ^`` and integer arguments, never
by ``+``.
"""

from __future__ import annotations

import functools
import itertools
import math
import operator
import re
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import TypeAlias

from runner.localservice.exprparse import Call, Expr, Lit, Node, Op, Ref, split
from runner.localservice.jodatime import (
    FUNCTIONS,
    WIRE,
    ExpressionError,
    Scalar,
    add_period,
    aware,
    format_datetime,
    parse_datetime,
    parse_period,
    wire,
)

__all__ = [
    "ExpressionError",
    "add_period",
    "evaluate",
    "evaluate_all",
    "format_datetime",
    "parse_datetime",
    "parse_period",
    "references",
    "validate",
]

Value: TypeAlias = Scalar | list[Scalar]


# ---- public API ------------------------------------------------------------------
def evaluate(text: str, lookup: Callable[[str], object]) -> str:
    """Replace every ``#{...}`` in ``text`` with its rendered value.

    ``lookup(ref)`` gets the whole reference (``myParam``, ``node.@scheduledStartTime``)
    and returns a str, int, float, datetime (naive means UTC) or a list of those; it
    raises KeyError for an unknown name. An expression whose value is a list of other
    than one element raises (see ``evaluate_all``). Pure apart from ``lookup``;
    thread-safe. Raises ExpressionError, naming the expression and its position.
    """
    pieces = []
    for part in split(text):
        if isinstance(part, str):
            pieces.append(part)
            continue
        value = _evaluate_expr(part, lookup)
        if isinstance(value, list):
            if len(value) != 1:
                raise ExpressionError(
                    f"{part.source!r} at position {part.pos} has {len(value)} values; "
                    "only a repeated field (evaluate_all) takes a list"
                )
            value = value[0]
        pieces.append(_render(value))
    return "".join(pieces)


def evaluate_all(text: str, lookup: Callable[[str], object]) -> list[str]:
    """Like ``evaluate``, but a list value expands ``text`` into one string per element
    (every combination when several expressions are lists), for repeated fields."""
    choices = [
        [part] if isinstance(part, str) else _scalars(_evaluate_expr(part, lookup))
        for part in split(text)
    ]
    return ["".join(map(_render, combo)) for combo in itertools.product(*choices)]


def _evaluate_expr(expr: Expr, lookup: Callable[[str], object]) -> Value:
    try:
        return _eval(expr.node, lookup)
    except ExpressionError as exc:
        raise ExpressionError(
            f"{exc} in {expr.source!r} at position {expr.pos}"
        ) from exc


def references(text: str) -> list[str]:
    """The references used in ``text``'s expressions, once each, in order of use.
    Raises ExpressionError when ``text`` does not parse."""
    found: dict[str, None] = {}
    stack: list[Node] = [p.node for p in reversed(split(text)) if isinstance(p, Expr)]
    while stack:
        node = stack.pop()
        if isinstance(node, Ref):
            found.setdefault(node.name)
        elif isinstance(node, Call):
            stack.extend(reversed(node.args))
        elif isinstance(node, Op):
            stack.extend([node.right, node.left] if node.op != "neg" else [node.left])
    return list(found)


def validate(text: str) -> None:
    """Parse-only check: raises ExpressionError for unsupported syntax, an unknown
    function or a wrong number of arguments. References are not resolved."""
    split(text)


# ---- evaluation --------------------------------------------------------------------
def _eval(node: Node, lookup: Callable[[str], object]) -> Value:
    if isinstance(node, Lit):
        return node.value
    if isinstance(node, Ref):
        try:
            return _checked(lookup(node.name), node.name)
        except KeyError:
            raise ExpressionError(f"unknown reference {node.name!r}") from None
    if isinstance(node, Call):
        args = [_eval(arg, lookup) for arg in node.args]
        return _lift(functools.partial(_apply, node.name), args)
    if node.op == "neg":
        return _lift(_negate, [_eval(node.left, lookup)])
    pair = [_eval(node.left, lookup), _eval(node.right, lookup)]
    return _lift(functools.partial(_binary, node.op), pair)


def _checked(value: object, name: str) -> Value:
    """Check a ``lookup`` result: a scalar, or a list of them (nested lists flatten)."""
    flat: list[Scalar] = []
    for item in value if isinstance(value, list) else [value]:
        if isinstance(item, list):
            flat.extend(_scalars(_checked(item, name)))
        elif isinstance(item, bool) or not isinstance(item, Scalar):
            raise ExpressionError(f"reference {name!r} has a {type(item).__name__}")
        else:
            flat.append(aware(item) if isinstance(item, datetime) else item)
    return flat if isinstance(value, list) else flat[0]


def _scalars(value: Value) -> list[Scalar]:
    return value if isinstance(value, list) else [value]


def _lift(function: Callable[..., Scalar], args: Sequence[Value]) -> Value:
    """Apply ``function``; to each combination of elements if an argument is a list."""
    if not any(isinstance(arg, list) for arg in args):
        return function(*args)
    return [function(*combo) for combo in itertools.product(*map(_scalars, args))]


def _number(value: Scalar, what: str) -> int | float:
    if isinstance(value, int | float):
        return value
    if isinstance(value, str) and re.fullmatch(r"[-+]?\d+", value.strip()):
        return int(value)
    if isinstance(value, str) and re.fullmatch(r"[-+]?(\d+\.\d*|\.\d+)", value.strip()):
        return float(value)
    raise ExpressionError(f"{what} needs a number, got {_describe(value)}")


def _negate(value: Scalar) -> Scalar:
    return -_number(value, "unary '-'")


def _divide(a: float, b: float) -> float:
    if isinstance(a, int) and isinstance(b, int):  # Java truncates toward zero
        return -(abs(a) // abs(b)) if (a < 0) != (b < 0) else abs(a) // abs(b)
    return a / b


_ARITHMETIC: dict[str, Callable[[float, float], float]] = {
    "+": operator.add, "-": operator.sub, "*": operator.mul,
    "/": _divide, "^": math.pow,
}  # fmt: skip


def _binary(op: str, left: Scalar, right: Scalar) -> Scalar:
    if op == "+" and (isinstance(left, str) or isinstance(right, str)):
        return _render(left) + _render(right)
    a, b = _number(left, f"'{op}'"), _number(right, f"'{op}'")
    try:
        return _ARITHMETIC[op](a, b)
    except ZeroDivisionError:
        raise ExpressionError("division by zero") from None
    except (OverflowError, ValueError) as exc:  # math.pow: overflow, or a complex root
        raise ExpressionError(f"{a} ^ {b} is not a real number") from exc


def _describe(value: Scalar) -> str:
    kind = "date-time" if isinstance(value, datetime) else type(value).__name__
    return f"{kind} {_render(value)!r}"


def _render(value: Scalar) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, datetime):
        return wire(value)
    return repr(value)  # int; float as Java prints it between 1e-3 and 1e7


# ---- function calls ------------------------------------------------------------------
def _apply(name: str, *args: Scalar) -> Scalar:
    function = FUNCTIONS[name]
    converted = [
        _convert(kind, arg, f"argument {i} of {name}")
        for i, (kind, arg) in enumerate(zip(function.kinds, args, strict=True), 1)
    ]
    return function.impl(*converted)


def _convert(kind: str, value: Scalar, what: str) -> Scalar:
    """Check an argument; wire-format strings are date-times, digit strings integers."""
    if isinstance(value, str) and kind == "d" and WIRE.fullmatch(value):
        value = parse_datetime(value)
    elif isinstance(value, str) and kind == "i" and re.fullmatch(r"[-+]?\d+", value):
        value = int(value)
    wanted = {"d": datetime, "i": int, "s": str}[kind]
    if not isinstance(value, wanted):
        name = {"d": "a date-time", "i": "an integer", "s": "a string"}[kind]
        raise ExpressionError(f"{what} must be {name}, got {_describe(value)}")
    return value
