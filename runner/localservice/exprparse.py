"""Tokenizer and recursive-descent parser of the ``#{...}`` expression language.

Owns: splitting a field value into literal text and ``#{...}`` expressions
(``split``, cached), the tokens, the syntax tree (``Lit``, ``Ref``, ``Call``, ``Op``,
``Expr``) and the grammar, including each function's arity (from ``FUNCTIONS``).

Must not: evaluate, resolve references or know about values beyond literals (that is
``expressions``); call ``eval``; import anything outside the standard library and
``jodatime`` (``localservice`` is an island).

Why: a hand-written parser reports the expression and the position of every error,
and parsing on its own lets a definition be checked (``validate``, ``references``)
before any value exists. ``split`` is an ``lru_cache``: the same templates are
evaluated for every instance of an object, and the tree is immutable.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import NoReturn, TypeAlias

from runner.localservice.jodatime import FUNCTIONS, ExpressionError, Scalar

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
class Lit:
    value: Scalar


@dataclass(frozen=True, slots=True)
class Ref:
    name: str


@dataclass(frozen=True, slots=True)
class Call:
    name: str
    args: tuple[Node, ...]


@dataclass(frozen=True, slots=True)
class Op:
    op: str  # + - * / ^, or "neg" with right unused
    left: Node
    right: Node


Node: TypeAlias = Lit | Ref | Call | Op


class _Parser:
    """expr := sum; sum := product (+|- product)*; product := unary (*|/ unary)*;
    unary := - unary | power; power := primary (^ unary)?;
    primary := number | string | name | name ( args ) | ( expr )"""

    def __init__(self, tokens: list[_Token], text: str, start: int) -> None:
        self._tokens, self._i = tokens, 0
        self._source = text[start : tokens[-1].pos + 1]

    def parse(self) -> Node:
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

    def _sum(self) -> Node:
        return self._level("+-", lambda: self._level("*/", self._unary))

    def _level(self, ops: str, operand: Callable[[], Node]) -> Node:
        node = operand()
        while (tok := self._take(*ops)) is not None:
            node = Op(tok.text, node, operand())
        return node

    def _unary(self) -> Node:
        if self._take("-") is not None:
            operand = self._unary()
            return Op("neg", operand, operand)
        base = self._primary()
        return Op("^", base, self._unary()) if self._take("^") else base

    def _primary(self) -> Node:
        tok = self._peek()
        self._i += 1
        if tok.kind == "num":
            return Lit(float(tok.text) if "." in tok.text else int(tok.text))
        if tok.kind == "str":
            return Lit(re.sub(r"\\(.)", r"\1", tok.text[1:-1], flags=re.DOTALL))
        if tok.kind == "name":
            return self._call(tok) if self._take("(") else Ref(tok.text)
        if tok.kind == "op" and tok.text == "(":
            node = self._sum()
            if self._take(")") is None:
                self._fail("expected ')'", self._peek())
            return node
        self._fail(f"unexpected {repr(tok.text) if tok.text else 'end'}", tok)

    def _call(self, name: _Token) -> Node:
        args: list[Node] = []
        if self._take(")") is None:
            args.append(self._sum())
            while self._take(",") is not None:
                args.append(self._sum())
            if self._take(")") is None:
                self._fail("expected ',' or ')'", self._peek())
        function = FUNCTIONS.get(name.text)
        if function is None:
            self._fail(f"unknown function {name.text!r}", name)
        elif len(args) != len(function.kinds):
            want = len(function.kinds)
            self._fail(f"{name.text} takes {want} arguments, got {len(args)}", name)
        return Call(name.text, tuple(args))


@dataclass(frozen=True, slots=True)
class Expr:
    node: Node
    source: str
    pos: int


@functools.lru_cache(maxsize=512)
def split(text: str) -> tuple[str | Expr, ...]:
    parts: list[str | Expr] = []
    pos = 0
    while (start := text.find("#{", pos)) != -1:
        parts.append(text[pos:start])
        tokens, pos = _tokenize(text, start)
        parts.append(Expr(_Parser(tokens, text, start).parse(), text[start:pos], start))
    parts.append(text[pos:])
    return tuple(part for part in parts if part != "")
