"""The ``#{...}`` expression language of AWS Data Pipeline, for the local service.

Owns: parsing and evaluating expressions embedded in field values, the DG's date/time
and math functions, the ``N units`` period syntax, and the ``YYYY-MM-DDTHH:MM:SS``
wire format of date-times (always UTC, no zone).

Must not: import anything outside the standard library (``localservice`` is an island),
call ``eval``, or know where values come from. The caller passes ``lookup``, which
resolves a whole reference (``node.@scheduledStartTime``) against pipeline objects.

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

import calendar
import functools
import itertools
import math
import operator
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo
from typing import NoReturn, TypeAlias
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

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

Scalar: TypeAlias = str | int | float | datetime
Value: TypeAlias = Scalar | list[Scalar]


class ExpressionError(ValueError):
    """An expression, period or date-time outside the supported subset.

    The message says what is wrong and where (the expression and the position)."""


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
    for part in _split(text):
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
        for part in _split(text)
    ]
    return ["".join(map(_render, combo)) for combo in itertools.product(*choices)]


def _evaluate_expr(expr: _Expr, lookup: Callable[[str], object]) -> Value:
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
    stack: list[_Node] = [
        p.node for p in reversed(_split(text)) if isinstance(p, _Expr)
    ]
    while stack:
        node = stack.pop()
        if isinstance(node, _Ref):
            found.setdefault(node.name)
        elif isinstance(node, _Call):
            stack.extend(reversed(node.args))
        elif isinstance(node, _Op):
            stack.extend([node.right, node.left] if node.op != "neg" else [node.left])
    return list(found)


def validate(text: str) -> None:
    """Parse-only check: raises ExpressionError for unsupported syntax, an unknown
    function or a wrong number of arguments. References are not resolved."""
    _split(text)


# ---- template and tokens ---------------------------------------------------------
_NAME = r"[@*]?[A-Za-z_][A-Za-z0-9_]*"
_TOKEN = re.compile(
    rf"\s*(?:(?P<num>\d+\.\d*|\.\d+|\d+)|(?P<name>{_NAME}(?:\.{_NAME})*)"
    r"""|(?P<str>'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*")|(?P<op>[-+*/^(),}]))""",
    re.DOTALL,
)


@dataclass(frozen=True, slots=True)
class _Token:
    kind: str  # num | name | str | op | end
    text: str
    pos: int


def _tokenize(text: str, start: int) -> tuple[list[_Token], int]:
    """Tokens of the expression opening at ``text[start]`` (``#{``), and its end."""
    tokens: list[_Token] = []
    pos = start + 2
    while (match := _TOKEN.match(text, pos)) is not None:
        kind = match.lastgroup or "op"
        tok = _Token(kind, match.group(kind), match.start(kind))
        pos = match.end()
        if tok.text == "}":
            return [*tokens, _Token("end", "", tok.pos)], pos
        after_operand = bool(tokens) and (
            tokens[-1].kind in ("num", "name", "str") or tokens[-1].text == ")"
        )
        if kind == "name" and tok.text.startswith("*") and after_operand:  # a*b
            tokens += [
                _Token("op", "*", tok.pos),
                _Token("name", tok.text[1:], tok.pos + 1),
            ]
        else:
            tokens.append(tok)
    rest = text[pos:].lstrip()
    where = len(text) - len(rest)
    if not rest:
        raise ExpressionError(
            f"unbalanced braces: '#{{' at position {start} is never closed"
        )
    problem = "unterminated string" if rest[0] in "'\"" else f"unexpected {rest[0]!r}"
    raise ExpressionError(
        f"{problem} in {text[start : start + 40]!r} at position {where}"
    )


# ---- syntax tree and parser ------------------------------------------------------
@dataclass(frozen=True, slots=True)
class _Lit:
    value: Scalar


@dataclass(frozen=True, slots=True)
class _Ref:
    name: str


@dataclass(frozen=True, slots=True)
class _Call:
    name: str
    args: tuple[_Node, ...]


@dataclass(frozen=True, slots=True)
class _Op:
    op: str  # + - * / ^, or "neg" with right unused
    left: _Node
    right: _Node


_Node: TypeAlias = _Lit | _Ref | _Call | _Op


class _Parser:
    """expr := sum; sum := product (+|- product)*; product := unary (*|/ unary)*;
    unary := - unary | power; power := primary (^ unary)?;
    primary := number | string | name | name ( args ) | ( expr )"""

    def __init__(self, tokens: list[_Token], text: str, start: int) -> None:
        self._tokens, self._i = tokens, 0
        self._source = text[start : tokens[-1].pos + 1]

    def parse(self) -> _Node:
        if self._peek().kind == "end":
            self._fail("empty expression", self._peek())
        node = self._sum()
        if self._peek().kind != "end":
            self._fail(f"unexpected {self._peek().text!r}", self._peek())
        return node

    def _fail(self, problem: str, tok: _Token) -> NoReturn:
        raise ExpressionError(f"{problem} in {self._source!r} at position {tok.pos}")

    def _peek(self) -> _Token:
        return self._tokens[self._i]

    def _take(self, *ops: str) -> _Token | None:
        tok = self._peek()
        if tok.kind == "op" and tok.text in ops:
            self._i += 1
            return tok
        return None

    def _sum(self) -> _Node:
        return self._level("+-", lambda: self._level("*/", self._unary))

    def _level(self, ops: str, operand: Callable[[], _Node]) -> _Node:
        node = operand()
        while (tok := self._take(*ops)) is not None:
            node = _Op(tok.text, node, operand())
        return node

    def _unary(self) -> _Node:
        if self._take("-") is not None:
            operand = self._unary()
            return _Op("neg", operand, operand)
        base = self._primary()
        return _Op("^", base, self._unary()) if self._take("^") else base

    def _primary(self) -> _Node:
        tok = self._peek()
        self._i += 1
        if tok.kind == "num":
            return _Lit(float(tok.text) if "." in tok.text else int(tok.text))
        if tok.kind == "str":
            return _Lit(re.sub(r"\\(.)", r"\1", tok.text[1:-1], flags=re.DOTALL))
        if tok.kind == "name":
            return self._call(tok) if self._take("(") else _Ref(tok.text)
        if tok.kind == "op" and tok.text == "(":
            node = self._sum()
            if self._take(")") is None:
                self._fail("expected ')'", self._peek())
            return node
        self._fail(f"unexpected {repr(tok.text) if tok.text else 'end'}", tok)

    def _call(self, name: _Token) -> _Node:
        args: list[_Node] = []
        if self._take(")") is None:
            args.append(self._sum())
            while self._take(",") is not None:
                args.append(self._sum())
            if self._take(")") is None:
                self._fail("expected ',' or ')'", self._peek())
        function = _FUNCTIONS.get(name.text)
        if function is None:
            self._fail(f"unknown function {name.text!r}", name)
        elif len(args) != len(function.kinds):
            want = len(function.kinds)
            self._fail(f"{name.text} takes {want} arguments, got {len(args)}", name)
        return _Call(name.text, tuple(args))


@dataclass(frozen=True, slots=True)
class _Expr:
    node: _Node
    source: str
    pos: int


@functools.lru_cache(maxsize=512)
def _split(text: str) -> tuple[str | _Expr, ...]:
    parts: list[str | _Expr] = []
    pos = 0
    while (start := text.find("#{", pos)) != -1:
        parts.append(text[pos:start])
        tokens, pos = _tokenize(text, start)
        parts.append(
            _Expr(_Parser(tokens, text, start).parse(), text[start:pos], start)
        )
    parts.append(text[pos:])
    return tuple(part for part in parts if part != "")


# ---- evaluation --------------------------------------------------------------------
def _eval(node: _Node, lookup: Callable[[str], object]) -> Value:
    if isinstance(node, _Lit):
        return node.value
    if isinstance(node, _Ref):
        try:
            return _checked(lookup(node.name), node.name)
        except KeyError:
            raise ExpressionError(f"unknown reference {node.name!r}") from None
    if isinstance(node, _Call):
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
            flat.append(_aware(item) if isinstance(item, datetime) else item)
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
        return _wire(value)
    return repr(value)  # int; float as Java prints it between 1e-3 and 1e7


# ---- functions ---------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class _Function:
    kinds: str  # one letter per parameter: d DateTime, i int, s string
    impl: Callable[..., Scalar]


def _apply(name: str, *args: Scalar) -> Scalar:
    function = _FUNCTIONS[name]
    converted = [
        _convert(kind, arg, f"argument {i} of {name}")
        for i, (kind, arg) in enumerate(zip(function.kinds, args, strict=True), 1)
    ]
    return function.impl(*converted)


def _convert(kind: str, value: Scalar, what: str) -> Scalar:
    """Check an argument; wire-format strings are date-times, digit strings integers."""
    if isinstance(value, str) and kind == "d" and _WIRE.fullmatch(value):
        value = parse_datetime(value)
    elif isinstance(value, str) and kind == "i" and re.fullmatch(r"[-+]?\d+", value):
        value = int(value)
    wanted = {"d": datetime, "i": int, "s": str}[kind]
    if not isinstance(value, wanted):
        name = {"d": "a date-time", "i": "an integer", "s": "a string"}[kind]
        raise ExpressionError(f"{what} must be {name}, got {_describe(value)}")
    return value


def _make(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    try:
        return datetime(year, month, day, hour, minute, tzinfo=UTC)
    except ValueError as exc:
        raise ExpressionError(f"no such date-time: {exc}") from exc


def _in_time_zone(moment: datetime, zone: str) -> datetime:
    try:
        return moment.astimezone(ZoneInfo(zone))
    except (ZoneInfoNotFoundError, ValueError):
        raise ExpressionError(f"unknown time zone {zone!r}") from None


def _shifter(unit: str, sign: int) -> _Function:
    return _Function("di", lambda moment, n: _shift(moment, unit, sign * n))


_UNITS = ("minutes", "hours", "days", "weeks", "months", "years")
_FUNCTIONS: dict[str, _Function] = {
    **{f"plus{unit.title()}": _shifter(unit, 1) for unit in _UNITS},
    **{f"minus{unit.title()}": _shifter(unit, -1) for unit in _UNITS},
    "format": _Function("ds", lambda moment, pattern: "".join(_joda(moment, pattern))),
    "inTimeZone": _Function("ds", _in_time_zone),
    "makeDate": _Function("iii", _make),
    "makeDateTime": _Function("iiiii", _make),
    "midnight": _Function(
        "d", lambda m: m.replace(hour=0, minute=0, second=0, microsecond=0)
    ),
    "firstOfMonth": _Function("d", lambda m: m.replace(day=1)),
    "sunday": _Function("d", lambda m: _shift(m, "days", -((m.weekday() + 1) % 7))),
    "yesterday": _Function("d", lambda m: _shift(m, "days", -1)),
    "year": _Function("d", lambda m: m.year),
    "month": _Function("d", lambda m: m.month),
    "day": _Function("d", lambda m: m.day),
    "hour": _Function("d", lambda m: m.hour),
    "minute": _Function("d", lambda m: m.minute),
    "dayOfYear": _Function("d", lambda m: m.timetuple().tm_yday),
}


# ---- date-times and periods: plain stdlib helpers, independent of the parser ----
def _shift(moment: datetime, unit: str, amount: int) -> datetime:
    """Joda-Time arithmetic: minutes and hours are exact durations; days and weeks keep
    the wall-clock time; months and years clamp the day to the end of the month."""
    try:
        if unit in ("minutes", "hours"):
            utc = moment.astimezone(UTC) + timedelta(**{unit: amount})
            return utc.astimezone(moment.tzinfo)
        if unit in ("days", "weeks"):
            return moment + timedelta(**{unit: amount})
        year, month0 = divmod(
            moment.month - 1 + amount * (12 if unit == "years" else 1), 12
        )
        year += moment.year
        day = min(moment.day, calendar.monthrange(year, month0 + 1)[1])
        return moment.replace(year=year, month=month0 + 1, day=day)
    except (OverflowError, ValueError) as exc:
        raise ExpressionError(
            f"date-time out of range after adding {amount} {unit}"
        ) from exc


_PERIOD = re.compile(r"\s*(\d+)\s*([A-Za-z]+?)s?\s*")
_PERIOD_UNITS = {  # a month and a year are approximations: see add_period
    **{
        unit[:-1]: timedelta(**{unit: 1})
        for unit in ("minutes", "hours", "days", "weeks")
    },
    **{"month": timedelta(days=30), "year": timedelta(days=365)},
}


def _period_parts(text: str) -> tuple[int, str]:
    match = _PERIOD.fullmatch(text)
    unit = match.group(2).lower() if match else ""
    if match is None or unit not in _PERIOD_UNITS or int(match.group(1)) == 0:
        units = "minutes|hours|days|weeks|months|years"
        raise ExpressionError(f"bad period {text!r}: expected 'N {units}' with N >= 1")
    return int(match.group(1)), unit


def parse_period(text: str) -> timedelta:
    """``"15 minutes"``, ``"1 Day"``, ``"2 weeks"``... as a duration.

    Approximation: a month is 30 days and a year 365 (``add_period`` steps by the
    calendar). The DG's bounds (15 minutes to 3 years) are the caller's to enforce.
    Raises ExpressionError."""
    count, unit = _period_parts(text)
    return count * _PERIOD_UNITS[unit]


def add_period(moment: datetime, period: str, times: int = 1) -> datetime:
    """``moment`` plus ``times`` periods, with Joda-Time calendar arithmetic (1 month
    after Jan 31 is Feb 28/29). Keeps the naive/aware kind of ``moment``."""
    count, unit = _period_parts(period)
    result = _shift(_aware(moment), unit + "s", count * times)
    return result.replace(tzinfo=None) if moment.tzinfo is None else result


_WIRE = re.compile(r"(\d{4})-(\d\d)-(\d\d)T(\d\d):(\d\d):(\d\d)")


def _aware(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment


def _wire(moment: datetime) -> str:
    return f"{moment.year:04d}-{moment:%m-%dT%H:%M:%S}"


def format_datetime(moment: datetime) -> str:
    """The wire format ``YYYY-MM-DDTHH:MM:SS`` in UTC; a naive ``moment`` is UTC."""
    return _wire(_aware(moment).astimezone(UTC))


def parse_datetime(text: str) -> datetime:
    """The inverse of ``format_datetime``, as an aware UTC datetime.
    Raises ExpressionError."""
    match = _WIRE.fullmatch(text)
    if match is None:
        raise ExpressionError(f"bad date-time {text!r}: expected YYYY-MM-DDTHH:MM:SS")
    year, month, day, hour, minute, second = map(int, match.groups())
    try:
        return datetime(year, month, day, hour, minute, second, tzinfo=UTC)
    except ValueError as exc:
        raise ExpressionError(f"bad date-time {text!r}: {exc}") from None


# ---- Joda-Time DateTimeFormat patterns -------------------------------------------
_JODA_RUN = re.compile(r"''|'(?:[^']|'')+'|([A-Za-z])\1*|[^A-Za-z']+")
# fmt: off
_DAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
_MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August",
           "September", "October", "November", "December")
_NUMBERS: dict[str, Callable[[datetime], int]] = {
    "C": lambda m: m.year // 100, "Y": lambda m: m.year, "y": lambda m: m.year,
    "x": lambda m: m.isocalendar()[0], "w": lambda m: m.isocalendar()[1],
    "e": lambda m: m.isoweekday(), "D": lambda m: m.timetuple().tm_yday,
    "M": lambda m: m.month, "d": lambda m: m.day, "H": lambda m: m.hour,
    "k": lambda m: m.hour or 24, "K": lambda m: m.hour % 12,
    "h": lambda m: m.hour % 12 or 12, "m": lambda m: m.minute, "s": lambda m: m.second,
}
# fmt: on
_SHORT, _FULL, _NOON = 3, 4, 12  # Joda: 3 letters or fewer is short text, 4 is full
_TEXTS: dict[str, Callable[[datetime, int], str]] = {
    "G": lambda m, n: "AD",
    "E": lambda m, n: _DAYS[m.weekday()][: None if n >= _FULL else _SHORT],
    "a": lambda m, n: "AM" if m.hour < _NOON else "PM",
    "S": lambda m, n: f"{m.microsecond // 1000:03d}"[:n].ljust(n, "0"),
    "z": lambda m, n: _zone_id(m.tzinfo) if n >= _FULL else (m.tzname() or "UTC"),
    "Z": lambda m, n: (
        _zone_id(m.tzinfo) if n >= _SHORT else _offset(m, ":" if n > 1 else "")
    ),
}


def _zone_id(zone: tzinfo | None) -> str:
    return str(getattr(zone, "key", "UTC"))


def _offset(moment: datetime, separator: str) -> str:
    minutes = int((moment.utcoffset() or timedelta()).total_seconds()) // 60
    sign = "-" if minutes < 0 else "+"
    return f"{sign}{abs(minutes) // 60:02d}{separator}{abs(minutes) % 60:02d}"


def _joda(moment: datetime, pattern: str) -> Iterator[str]:
    """Render ``moment`` in its own zone with a Joda ``DateTimeFormat`` pattern."""
    pos = 0
    while pos < len(pattern):
        match = _JODA_RUN.match(pattern, pos)
        if match is None:
            raise ExpressionError(f"unterminated quote in format pattern {pattern!r}")
        run, pos = match.group(), match.end()
        if match.group(1) is None:  # literal text, quoted text or ''
            yield (
                "'"
                if run == "''"
                else run[1:-1].replace("''", "'")
                if run[0] == "'"
                else run
            )
        else:
            yield _joda_field(run[0], len(run), moment, pattern)


def _joda_field(letter: str, count: int, moment: datetime, pattern: str) -> str:
    if letter == "M" and count >= _SHORT:
        return _MONTHS[moment.month - 1][: None if count >= _FULL else _SHORT]
    if letter in _TEXTS:
        return _TEXTS[letter](moment, count)
    if letter not in _NUMBERS:
        raise ExpressionError(
            f"illegal pattern letter {letter!r} in format {pattern!r}"
        )
    number = _NUMBERS[letter](moment)
    if count == len("yy") and letter in "xyY":
        return f"{number % 100:02d}"
    return f"{number:0{count}d}"
