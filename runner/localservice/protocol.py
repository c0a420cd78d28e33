"""The AWS JSON 1.1 wire format and request validation for the local service.

Owns: the service model (read once from botocore), the `ServiceError` that every
operation raises to answer with an AWS error, `decode()` (a body that is not JSON,
or nests deeper than `MAX_JSON_DEPTH`, is a SerializationException: 400, never a
500), and `validate()`, which checks a decoded request body against the
operation's input shape.

Must not: know anything about pipelines, scheduling or HTTP sockets.

Why: botocore's client-side validator skips maximum lengths, enums and the
character pattern, so a client bug would pass unnoticed against a lenient
emulator. We validate everything the model states, and the message names the
member and the problem, the way AWS's InvalidRequestException does.
"""

from __future__ import annotations

import functools
import json
import re
from typing import Any

import botocore.session

JSON_CONTENT_TYPE = "application/x-amz-json-1.1"
TARGET_PREFIX = "DataPipeline."

# The model's pattern `[\u0020-\uD7FF\uE000-\uFFFD\uD800\uDC00-\uDBFF\uDFFF\r\n\t]*`
# in Python terms: surrogate pairs arrive decoded as one astral code point, and a
# lone surrogate (possible through JSON `\ud800`) is invalid.
_BAD_CHAR = re.compile("[^\u0020-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff\r\n\t]")

# Status code for each error code we send; anything else is a client error (400).
_STATUS = {
    "InternalServiceError": 500,
    "ServiceUnavailable": 503,
    "LengthRequiredException": 411,
    "RequestEntityTooLargeException": 413,
}
# The deepest legal request nests 6 levels (QueryObjects: query, selectors, a
# selector, its operator, its values); anything past 64 is refused unparsed.
MAX_JSON_DEPTH = 64
_JSON_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_NOT_BRACKET = bytes(b for b in range(256) if b not in b"[]{}")
_OPENING = frozenset(b"[{")


class ServiceError(Exception):
    """An AWS error answer: `{"__type": code, "message": message}`."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message

    @property
    def status(self) -> int:
        return _STATUS.get(self.code, 400)

    def body(self) -> bytes:
        return json.dumps({"__type": self.code, "message": self.message}).encode()


LAST_TIMESTAMP = 253402300800  # 10000-01-01T00:00:00Z


def invalid(message: str) -> ServiceError:
    return ServiceError("InvalidRequestException", message)


@functools.cache
def service_model() -> Any:
    """botocore's model of Data Pipeline (loaded once; thread-safe after first call)."""
    return botocore.session.get_session().get_service_model("datapipeline")


@functools.cache
def operation_names() -> frozenset[str]:
    return frozenset(service_model().operation_names)


def decode(target: str | None, raw: bytes) -> tuple[str, dict[str, Any]]:
    """Return (operation, body) for a request, or raise ServiceError."""
    if not target or not target.startswith(TARGET_PREFIX):
        raise ServiceError("UnknownOperationException", f"bad X-Amz-Target: {target!r}")
    operation = target[len(TARGET_PREFIX) :]
    if operation not in operation_names():
        raise ServiceError(
            "UnknownOperationException", f"unknown operation {operation}"
        )
    if _too_deep(raw):
        raise ServiceError(
            "SerializationException", f"body nests deeper than {MAX_JSON_DEPTH} levels"
        )
    try:
        body = json.loads(raw or b"{}")
    except (ValueError, RecursionError) as exc:  # a number past 4300 digits too
        raise ServiceError(
            "SerializationException", f"body is not JSON: {exc}"
        ) from exc
    if not isinstance(body, dict):
        raise ServiceError("SerializationException", "body must be a JSON object")
    return operation, body


def _too_deep(raw: bytes) -> bool:
    """Whether the JSON text nests deeper than MAX_JSON_DEPTH, counted on its
    brackets outside strings (linear; json.loads itself would recurse)."""
    structure = _JSON_STRING.sub(b"", raw).translate(None, _NOT_BRACKET)
    if structure.count(b"[") + structure.count(b"{") <= MAX_JSON_DEPTH:
        return False
    depth = 0
    for byte in structure:
        depth += 1 if byte in _OPENING else -1
        if depth > MAX_JSON_DEPTH:
            return True
    return False


def validate(operation: str, body: dict[str, Any]) -> None:
    """Check `body` against the input shape of `operation`; raise InvalidRequest.
    A null member is removed: AWS reads it as absent."""
    shape = service_model().operation_model(operation).input_shape
    if shape is not None:
        _check(shape, body, "")


def _check(shape: Any, value: Any, path: str) -> None:
    kind = shape.type_name
    checker = _CHECKERS.get(kind)
    if checker is None:
        raise invalid(f"{path or 'request'}: unsupported shape type {kind}")
    checker(shape, value, path)


def _check_structure(shape: Any, value: Any, path: str) -> None:
    if not isinstance(value, dict):
        raise invalid(f"{path or 'request'} must be a structure")
    members = shape.members
    for name in shape.required_members:
        if value.get(name) is None:
            raise invalid(f"missing required member {_join(path, name)}")
    for name, item in list(value.items()):
        if name not in members:
            raise invalid(f"unknown member {_join(path, name)}")
        if item is None:
            del value[name]  # a null member is an absent one, as AWS reads it
        else:
            _check(members[name], item, _join(path, name))


def _check_list(shape: Any, value: Any, path: str) -> None:
    if not isinstance(value, list):
        raise invalid(f"{path} must be a list")
    _check_size(shape, len(value), path, "items")
    for index, item in enumerate(value):
        _check(shape.member, item, f"{path}[{index}]")


def _check_map(shape: Any, value: Any, path: str) -> None:
    if not isinstance(value, dict):
        raise invalid(f"{path} must be a map")
    for key, item in value.items():
        _check(shape.key, key, f"{path} key")
        _check(shape.value, item, f"{path}[{key}]")


def _check_string(shape: Any, value: Any, path: str) -> None:
    if not isinstance(value, str):
        raise invalid(f"{path} must be a string")
    _check_size(shape, len(value), path, "characters")
    enum = shape.metadata.get("enum")
    if enum and value not in enum:
        raise invalid(f"{path} must be one of {', '.join(enum)}, not {value[:64]!r}")
    if "pattern" in shape.metadata:
        bad = _BAD_CHAR.search(value)
        if bad is not None:
            raise invalid(
                f"{path} contains a character the pattern does not allow "
                f"({ord(bad.group()):#06x} at offset {bad.start()})"
            )


def _check_size(shape: Any, size: int, path: str, unit: str) -> None:
    low = shape.metadata.get("min")
    high = shape.metadata.get("max")
    if low is not None and size < low:
        raise invalid(f"{path} must have at least {low} {unit}, has {size}")
    if high is not None and size > high:
        raise invalid(f"{path} must have at most {high} {unit}, has {size}")


def _check_integer(shape: Any, value: Any, path: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise invalid(f"{path} must be an integer")
    _check_size(shape, value, path, "(value)")


def _check_boolean(shape: Any, value: Any, path: str) -> None:
    if not isinstance(value, bool):
        raise invalid(f"{path} must be a boolean")


def _check_timestamp(shape: Any, value: Any, path: str) -> None:
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not 0 <= value < LAST_TIMESTAMP
    ):
        raise invalid(f"{path} must be a timestamp (epoch seconds, years 1970-9999)")


def _join(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


_CHECKERS = {
    "structure": _check_structure,
    "list": _check_list,
    "map": _check_map,
    "string": _check_string,
    "integer": _check_integer,
    "long": _check_integer,
    "boolean": _check_boolean,
    "timestamp": _check_timestamp,
}
