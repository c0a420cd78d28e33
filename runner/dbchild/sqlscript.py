"""A SQL script cut into statements, with JDBC ``?`` placeholders made the driver's.

Owns: ``split``, which cuts a script at the semicolons that end statements, and
knows what a semicolon inside a literal, an identifier, a comment or a PostgreSQL
dollar-quoted body is; and ``Statement.bound_text``, which turns ``?`` placeholders
into the ``%s`` both drivers (psycopg, PyMySQL) take, doubling every ``%`` so that
nothing else in the text is read as a placeholder.

Must not: execute anything, or ever paste a value into SQL: values travel beside
the text, and the driver binds them (psycopg sends them apart from the query,
PyMySQL escapes them).

Why this way: JDBC sends a script of several statements to the server as the
driver sees fit; to stop at the first error and say which statement failed, we run
them one by one, so the cut must be exactly the server's. The lexical rules are
the engine's: PostgreSQL has ``$tag$`` bodies, nested ``/* */`` comments and
``E'...'`` strings with backslash escapes; MySQL has backslash escapes in both
quote styles, backticks and ``#`` comments. As in the PostgreSQL JDBC driver,
``??`` is a literal ``?`` in a statement that takes arguments.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_DOLLAR_TAG = re.compile(r"\$([A-Za-z_\x80-\uffff][A-Za-z0-9_\x80-\uffff]*)?\$")


@dataclass(frozen=True, slots=True)
class Statement:
    """One statement: its text (trimmed, without the ``;``), and the offsets of its
    ``?`` placeholders (and of ``??`` pairs) outside literals and comments."""

    text: str
    placeholders: tuple[int, ...] = ()
    escaped_marks: tuple[int, ...] = ()

    @property
    def arguments(self) -> int:
        return len(self.placeholders)

    def bound_text(self) -> str:
        """The text for a driver that gets arguments: ``?`` -> ``%s``, ``??`` ->
        ``?``, every other ``%`` doubled. Call only when it has arguments."""
        out: list[str] = []
        marks = dict.fromkeys(self.placeholders, "%s")
        marks.update(dict.fromkeys(self.escaped_marks, "?"))
        skip = {i + 1 for i in self.escaped_marks}
        for index, char in enumerate(self.text):
            if index in skip:
                continue
            if index in marks:
                out.append(marks[index])
            else:
                out.append("%%" if char == "%" else char)
        return "".join(out)


class _Scanner:
    """One pass over a script: ``run`` returns its statements."""

    def __init__(self, script: str, *, mysql: bool) -> None:
        self.s = script
        self.mysql = mysql
        self.i = 0
        self.start = 0
        self.marks: list[int] = []
        self.escaped: list[int] = []
        self.out: list[Statement] = []

    def run(self) -> list[Statement]:
        s, n = self.s, len(self.s)
        while self.i < n:
            char = s[self.i]
            if char == ";":
                self._cut(self.i)
                self.i += 1
                self.start = self.i
            elif char == "?":
                self._mark()
            else:
                self.i = self._skip(char)
        self._cut(n)
        return self.out

    def _mark(self) -> None:
        if self.s.startswith("??", self.i):
            self.escaped.append(self.i)
            self.i += 2
        else:
            self.marks.append(self.i)
            self.i += 1

    def _skip(self, char: str) -> int:  # noqa: PLR0911 - one return per token kind
        """The index after the token that starts at ``self.i``."""
        s, i = self.s, self.i
        if char == "'":
            escapes = self.mysql or (i > 0 and s[i - 1] in "eE" and _word_start(s, i))
            return _quoted(s, i, "'", backslash=escapes)
        if char == '"':
            return _quoted(s, i, '"', backslash=self.mysql)
        if char == "`" and self.mysql:
            return _quoted(s, i, "`", backslash=False)
        if s.startswith("--", i) and (not self.mysql or s[i + 2 : i + 3] in " \t\n\r"):
            return _line_end(s, i)
        if char == "#" and self.mysql:
            return _line_end(s, i)
        if s.startswith("/*", i):
            return _block_comment(s, i, nested=not self.mysql)
        if char == "$" and not self.mysql:
            match = _DOLLAR_TAG.match(s, i)
            if match and not (i > 0 and (s[i - 1].isalnum() or s[i - 1] == "_")):
                end = s.find(match.group(), match.end())
                return len(s) if end < 0 else end + len(match.group())
        return i + 1

    def _cut(self, end: int) -> None:
        raw = self.s[self.start : end]
        lead = len(raw) - len(raw.lstrip())
        text = raw.strip()
        base = self.start + lead
        if text and not _only_comments(text, mysql=self.mysql):
            self.out.append(
                Statement(
                    text=text,
                    placeholders=tuple(m - base for m in self.marks),
                    escaped_marks=tuple(m - base for m in self.escaped),
                )
            )
        self.marks, self.escaped = [], []


def split(script: str, *, mysql: bool = False) -> list[Statement]:
    """The statements of ``script`` in order, empty ones (only blanks or comments)
    dropped. ``mysql`` selects MySQL's lexical rules, else PostgreSQL's (Redshift
    too). Pure; an unterminated literal or comment runs to the end of the script
    (the server then says what is wrong)."""
    return _Scanner(script, mysql=mysql).run()


def _word_start(s: str, i: int) -> bool:
    """Whether the ``E`` before index ``i`` starts a word (``E'...'``, not
    ``name'...'``)."""
    return i < 2 or not (s[i - 2].isalnum() or s[i - 2] == "_")


def _quoted(s: str, i: int, quote: str, *, backslash: bool) -> int:
    j = i + 1
    n = len(s)
    while j < n:
        char = s[j]
        if backslash and char == "\\":
            j += 2
            continue
        if char == quote:
            if s.startswith(quote * 2, j):
                j += 2
                continue
            return j + 1
        j += 1
    return n


def _line_end(s: str, i: int) -> int:
    end = s.find("\n", i)
    return len(s) if end < 0 else end + 1


def _block_comment(s: str, i: int, *, nested: bool) -> int:
    depth, j, n = 1, i + 2, len(s)
    while j < n and depth:
        if s.startswith("*/", j):
            depth -= 1
            j += 2
        elif nested and s.startswith("/*", j):
            depth += 1
            j += 2
        else:
            j += 1
    return j


def _only_comments(text: str, *, mysql: bool) -> bool:
    """Whether ``text`` holds nothing but comments and blanks."""
    i, n = 0, len(text)
    while i < n:
        if text[i].isspace():
            i += 1
        elif text.startswith("--", i) or (mysql and text[i] == "#"):
            i = _line_end(text, i)
        elif text.startswith("/*", i):
            i = _block_comment(text, i, nested=not mysql)
        else:
            return False
    return True
