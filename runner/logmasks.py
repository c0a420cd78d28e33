"""The secret values masked out of every log line, and for how long.

Owns: ``redact_secrets``, which masks the values of keys that look secret
(``SECRET_KEY_PARTS``, or a leading ``*``); ``mask_values``, which registers known
secret values (the ``Masking`` it returns takes them off again); the
``mask_known_values`` processor that blanks those out of an event's string values;
and the rule for short values: one shorter than ``MIN_SUBSTRING_LENGTH`` is masked
only where a whole value equals it.

Must not: touch keys or the syntax of a line, render anything, or decide what is
logged. It runs on every line from every thread, so it never raises and never
holds its lock while it logs.

Why on values and not on the rendered line: a mask applied to the rendered JSON
reaches its keys and its syntax. A secret ``e`` turned ``"event"`` into
``"***v***nt"``; a secret ``"`` broke most lines as JSON. Masking the event's
string values before a renderer sees them keeps every line valid whatever the
secret (tracebacks are rendered into the ``exception`` value before this runs,
``logs._shared_processors``). A value shorter than 8 characters cannot be told
from ordinary text (``local``, ``true``, ``0``): it is masked where a whole value
equals it, and a warning says once that it is not masked inside text.

Why registrations and not a process-wide set: an attempt's secrets are masked
while the attempt is open, from any thread, and no longer (they used to pile up
for the life of the process, and every line paid for each of them). The runner's
own credentials are registered once at the start and never taken off.
"""

from __future__ import annotations

import functools
import itertools
import json
import threading
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import structlog
from structlog.typing import EventDict, WrappedLogger

REDACTED = "***"
#: A key is secret when its lower-cased name contains one of these, or starts with '*'
#: (Data Pipeline's convention for secret fields such as ``*password``).
SECRET_KEY_PARTS = (
    "secret",
    "password",
    "passwd",
    "token",
    "credential",
    "authorization",
)
#: Shorter values are masked only where a whole value equals them.
MIN_SUBSTRING_LENGTH = 8

_ESCAPES: tuple[Callable[[str], str], ...] = (
    lambda text: json.dumps(text)[1:-1],
    lambda text: repr(text)[1:-1],
    lambda text: repr(text.encode())[2:-1],
)
#: Values a JSON renderer writes as they are: never turned into text to be masked.
_PLAIN = (int, float, bool, type(None))


@functools.lru_cache(maxsize=1024)
def _is_secret_key(key: str) -> bool:
    """Cached: lines use a few key names, and this ran on every key of every line
    (a tenth of a line's instructions)."""
    lowered = key.lower()
    return key.startswith("*") or any(part in lowered for part in SECRET_KEY_PARTS)


def _redact_value(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {
            k: REDACTED
            if isinstance(k, str) and _is_secret_key(k)
            else _redact_value(v)
            for k, v in value.items()
        }
    return value


def redact_secrets(_: WrappedLogger, __: str, event_dict: EventDict) -> EventDict:
    """Mask the values of keys that look secret, also one mapping deep and more."""
    for key in list(event_dict):
        if key == "event" or key.startswith("_"):
            continue  # the message itself and the formatter's private keys
        if _is_secret_key(key):
            event_dict[key] = REDACTED
        else:
            event_dict[key] = _redact_value(event_dict[key])
    return event_dict


def _forms(value: str) -> set[str]:
    """``value`` as written, and escaped once or twice: botocore logs the repr of
    a JSON body (bytes), which escapes a quote twice."""
    once = {value, *(escape(value) for escape in _ESCAPES)}
    return once | {escape(form) for form in once for escape in _ESCAPES}


class _Masks:
    """Every registration's values, and what lines are checked against: the
    substring forms of the long values (longest first) and the short values.
    Changed under a lock; read from any thread without it (each attribute holds
    an immutable value, replaced whole)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._entries: dict[int, frozenset[str]] = {}
        self._tokens = itertools.count()
        self._warned = False
        self.forms: tuple[str, ...] = ()
        self.whole: frozenset[str] = frozenset()

    def add(self, values: Iterable[str]) -> tuple[int, bool]:
        """Register ``values``; the token, and whether a short value should be
        warned about now (the first time one is seen)."""
        kept = frozenset(v for v in values if v)
        with self._lock:
            token = next(self._tokens)
            self._entries[token] = kept
            self._rebuild()
            warn = not self._warned and any(len(v) < MIN_SUBSTRING_LENGTH for v in kept)
            self._warned = self._warned or warn
        return token, warn

    def remove(self, token: int) -> None:
        with self._lock:
            if self._entries.pop(token, None) is not None:
                self._rebuild()

    def _rebuild(self) -> None:
        values = set().union(*self._entries.values())
        long = [v for v in values if len(v) >= MIN_SUBSTRING_LENGTH]
        forms = set().union(*(_forms(v) for v in long))
        self.forms = tuple(sorted(forms, key=len, reverse=True))
        self.whole = frozenset(values)

    def apply(self, value: Any) -> Any:
        """``value`` with the registered values masked in its strings, however
        deep; keys are kept as they are. Objects a renderer would show by their
        repr are masked in that repr."""
        if isinstance(value, str):
            return self._apply_text(value)
        if isinstance(value, _PLAIN):
            return value
        if isinstance(value, Mapping):
            return {k: self.apply(v) for k, v in value.items()}
        if isinstance(value, list):
            return [self.apply(v) for v in value]
        if isinstance(value, tuple):
            return tuple(self.apply(v) for v in value)
        return self._apply_text(repr(value))

    def _apply_text(self, text: str) -> str:
        if text in self.whole:
            return REDACTED
        for form in self.forms:
            if form in text:
                text = text.replace(form, REDACTED)
        return text


_MASKS = _Masks()


class Masking:
    """One registration of ``mask_values``. ``close`` (or leaving its ``with``
    block) takes its values off; one never closed masks them for good, which is
    the safe way to forget. Thread-safe."""

    def __init__(self, token: int) -> None:
        self._token = token

    def close(self) -> None:
        """Stop masking these values (others' registrations of the same values
        keep them masked). Idempotent."""
        _MASKS.remove(self._token)

    def __enter__(self) -> Masking:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


def mask_values(values: Iterable[str]) -> Masking:
    """From now until the returned ``Masking`` is closed, show each of ``values``
    as ``***`` in every log line, whatever the key, logger or thread: inside any
    string value when it has 8 characters or more, else where a whole value
    equals it (with a warning, once per process). Empty strings are ignored."""
    token, warn = _MASKS.add(values)
    if warn:
        structlog.get_logger("dp-runner").warning(
            "secret_too_short_to_mask",
            min_length=MIN_SUBSTRING_LENGTH,
            detail="a secret value this short is masked only where a whole "
            "value equals it, not inside text",
        )
    return Masking(token)


def mask_known_values(_: WrappedLogger, __: str, event_dict: EventDict) -> EventDict:
    """Blank the registered values out of every value of the event (the message
    included), never out of its keys."""
    if not _MASKS.whole:
        return event_dict
    for key in list(event_dict):
        if not key.startswith("_"):
            event_dict[key] = _MASKS.apply(event_dict[key])
    return event_dict
