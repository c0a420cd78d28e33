"""RedshiftCopyActivity's COPY and UNLOAD texts, checked against the grammar of the
Redshift Database Developer Guide (no test here reaches a real cluster):

    COPY table-name [ column-list ] FROM data_source authorization
        [ [ FORMAT ] [ AS ] data_format ] [ parameter [ argument ] [, ... ] ]
    UNLOAD ('select-statement') TO 's3://object-path/name-prefix' authorization
        [ option, ... ]
    authorization: IAM_ROLE 'arn' | ACCESS_KEY_ID 'id' SECRET_ACCESS_KEY 'key'
        [ SESSION_TOKEN 'token' ] | CREDENTIALS [AS] 'aws-auth-args'

The checker below is written from those synopses and the parameter lists of the
COPY ("Data conversion parameters", "Data format parameters", "File compression
parameters", "Data load operations") and UNLOAD pages, independently of
``runner/dbchild/redshifttext.py``; then the merge texts and the masking.
"""

from __future__ import annotations

import itertools
import re
from typing import Any

import pytest

from runner.dbchild import redshifttext
from runner.dbchild.redshifttext import Credentials

_TOKEN = re.compile(r"\s*(?:('(?:[^'\\]|''|\\.)*')|([(),])|([^\s'(),]+))")

#: keyword -> what follows it: "" nothing, "'" a literal, "n" a number
COPY_PARAMETERS = {
    "DELIMITER": "'",
    "ESCAPE": "",
    "NULL": "'",
    "GZIP": "",
    "BZIP2": "",
    "LZOP": "",
    "ZSTD": "",
    "READRATIO": "n",
    "REGION": "'",
    "IGNOREHEADER": "n",
    "TIMEFORMAT": "'",
    "DATEFORMAT": "'",
    "EMPTYASNULL": "",
    "BLANKSASNULL": "",
    "ACCEPTINVCHARS": "",
    "TRUNCATECOLUMNS": "",
    "MAXERROR": "n",
    "COMPUPDATE": "word",
    "STATUPDATE": "word",
    "CSV": "",
    "REMOVEQUOTES": "",
    "FILLRECORD": "",
    "TRIMBLANKS": "",
    "MANIFEST": "",
    "ENCRYPTED": "",
}
UNLOAD_OPTIONS = {
    "DELIMITER": "'",
    "ESCAPE": "",
    "NULL": "'",
    "GZIP": "",
    "BZIP2": "",
    "ZSTD": "",
    "ADDQUOTES": "",
    "ALLOWOVERWRITE": "",
    "CLEANPATH": "",
    "HEADER": "",
    "MANIFEST": "",
    "ENCRYPTED": "",
    "PARALLEL": "word",
    "REGION": "'",
}


def tokens(text: str) -> list[str]:
    found, at = [], 0
    while at < len(text.rstrip()):
        match = _TOKEN.match(text, at)
        assert match, f"cannot read {text[at:]!r}"
        found.append(next(g for g in match.groups() if g is not None))
        at = match.end()
    return found


def unquote(token: str) -> str:
    assert token.startswith("'"), token
    return token[1:-1].replace("''", "'").replace("\\\\", "\\")


def take_authorization(words: list[str]) -> dict[str, str]:
    found = {}
    if words[0] == "IAM_ROLE":
        found["IAM_ROLE"] = unquote(words[1])
        del words[:2]
        return found
    if words[0] == "CREDENTIALS":
        del words[0]
        if words[0] == "AS":
            del words[0]
        found["CREDENTIALS"] = unquote(words.pop(0))
        return found
    assert words[0] == "ACCESS_KEY_ID", words
    assert words[2] == "SECRET_ACCESS_KEY", words
    found["ACCESS_KEY_ID"], found["SECRET_ACCESS_KEY"] = (
        unquote(words[1]),
        unquote(words[3]),
    )
    del words[:4]
    if words and words[0] == "SESSION_TOKEN":
        found["SESSION_TOKEN"] = unquote(words[1])
        del words[:2]
    return found


def take_options(words: list[str], allowed: dict[str, str]) -> dict[str, Any]:
    found: dict[str, Any] = {}
    while words:
        if words[0] == ",":
            del words[0]
            continue
        keyword = words.pop(0).upper()
        assert keyword in allowed, f"{keyword} is not in the grammar"
        kind = allowed[keyword]
        if kind == "'" and words and words[0] == "AS":
            del words[0]
        if kind == "'":
            found[keyword] = unquote(words.pop(0))
        elif kind == "n":
            found[keyword] = int(words.pop(0))
        elif kind == "word":
            found[keyword] = words.pop(0)
        else:
            found[keyword] = True
    return found


def parse_copy(text: str) -> dict[str, Any]:
    words = tokens(text)
    assert words[0] == "COPY"
    assert words[2] == "FROM"
    parsed: dict[str, Any] = {"table": words[1], "source": unquote(words[3])}
    del words[:4]
    parsed["auth"] = take_authorization(words)
    parsed["options"] = take_options(words, COPY_PARAMETERS)
    return parsed


def parse_unload(text: str) -> dict[str, Any]:
    words = tokens(text)
    assert words[:2] == ["UNLOAD", "("]
    assert words[3:5] == [")", "TO"]
    parsed: dict[str, Any] = {"query": unquote(words[2]), "target": unquote(words[5])}
    del words[:6]
    parsed["auth"] = take_authorization(words)
    parsed["options"] = take_options(words, UNLOAD_OPTIONS)
    return parsed


TEMPORARY = Credentials("AKIAEXAMPLE", "se'cr\\et/Key+1", "tok'en==")
PERMANENT = Credentials("AKIAEXAMPLE", "secretKey")


@pytest.mark.parametrize(
    ("fmt", "gzip", "credentials"),
    list(
        itertools.product(["CSV", "TSV", None], [False, True], [TEMPORARY, PERMANENT])
    ),
)
def test_every_copy_from_s3_reads_as_the_grammar_says(
    fmt: str | None, gzip: bool, credentials: Credentials
) -> None:
    source = {"kind": "s3", "uri": "s3://b/in/x's", "format": fmt, "gzip": gzip}
    options = ["IGNOREHEADER 1", "TIMEFORMAT 'auto'"]
    parsed = parse_copy(
        redshifttext.copy_statement("staging", source, credentials, options)
    )
    assert parsed["table"] == "staging"
    assert parsed["source"] == "s3://b/in/x's"
    expected_auth = {
        "ACCESS_KEY_ID": credentials.key_id,
        "SECRET_ACCESS_KEY": credentials.secret,
    }
    if credentials.token:
        expected_auth["SESSION_TOKEN"] = credentials.token
    assert parsed["auth"] == expected_auth
    wanted: dict[str, Any] = {}
    if fmt is None:  # commandOptions as given
        wanted = {"IGNOREHEADER": 1, "TIMEFORMAT": "auto"}
    else:  # the format decides; commandOptions ignored (DG)
        wanted = {"DELIMITER": {"CSV": ",", "TSV": "\\t"}[fmt], "ESCAPE": True}
    if gzip:
        wanted["GZIP"] = True
    assert parsed["options"] == wanted


def test_copy_from_dynamodb_sets_its_read_ratio() -> None:
    source = {"kind": "dynamodb", "table": "Orders", "read_ratio": 25}
    parsed = parse_copy(
        redshifttext.copy_statement("staging", source, TEMPORARY, ["IGNORED 1"])
    )
    assert parsed["source"] == "dynamodb://Orders"
    assert parsed["options"] == {"READRATIO": 25}


def test_command_options_keep_their_own_gzip_once() -> None:
    source = {"kind": "s3", "uri": "s3://b/x.gz", "format": None, "gzip": True}
    text = redshifttext.copy_statement("staging", source, None, ["GZIP", "CSV"])
    assert text == "COPY staging FROM 's3://b/x.gz' GZIP CSV"


@pytest.mark.parametrize(
    ("fmt", "gzip", "credentials"),
    list(
        itertools.product(["CSV", "TSV", None], [False, True], [TEMPORARY, PERMANENT])
    ),
)
def test_every_unload_reads_as_the_grammar_says(
    fmt: str | None, gzip: bool, credentials: Credentials
) -> None:
    target = {"kind": "s3", "uri": "s3://b/out/", "format": fmt, "gzip": gzip}
    query = "SELECT * FROM public.t WHERE a = 'x'"
    parsed = parse_unload(redshifttext.unload_statement(query, target, credentials))
    assert parsed["query"] == query
    assert parsed["target"] == "s3://b/out/"
    assert parsed["auth"]["SECRET_ACCESS_KEY"] == credentials.secret
    wanted: dict[str, Any] = {
        "DELIMITER": "\\t" if fmt == "TSV" else ",",
        "ESCAPE": True,
        "NULL": "\\N",
        "ALLOWOVERWRITE": True,
    }
    if gzip:
        wanted["GZIP"] = True
    assert parsed["options"] == wanted


def test_masked_shows_no_credential() -> None:
    source = {"kind": "s3", "uri": "s3://b/x", "format": "TSV", "gzip": False}
    text = redshifttext.copy_statement("staging", source, TEMPORARY, [])
    shown = redshifttext.masked(text, TEMPORARY)
    for secret in (TEMPORARY.key_id, TEMPORARY.secret, TEMPORARY.token or ""):
        assert secret not in shown
    assert "SECRET_ACCESS_KEY '***'" in shown
    assert parse_copy(shown)["auth"]["SESSION_TOKEN"] == "***"  # noqa: S105


@pytest.mark.parametrize(
    ("mode", "expected"),
    [
        (
            "KEEP_EXISTING",
            [
                "DELETE FROM staging USING s.t WHERE staging.id = s.t.id",
                "INSERT INTO s.t SELECT * FROM staging",
            ],
        ),
        (
            "OVERWRITE_EXISTING",
            [
                "DELETE FROM s.t USING staging WHERE staging.id = s.t.id",
                "INSERT INTO s.t SELECT * FROM staging",
            ],
        ),
        ("TRUNCATE", ["DELETE FROM s.t", "INSERT INTO s.t SELECT * FROM staging"]),
        ("APPEND", ["INSERT INTO s.t SELECT * FROM staging"]),
    ],
)
def test_merge_texts(mode: str, expected: list[str]) -> None:
    got = redshifttext.merge_statements(mode, "s.t", "staging", ["id"])
    assert got == expected


@pytest.mark.parametrize(
    ("name", "parts"),
    [
        ("t", ("", "t")),
        ("MySchema.MyTable", ("myschema", "mytable")),
        ('"My.Schema"."Odd ""T"""', ("My.Schema", 'Odd "T"')),
    ],
)
def test_catalog_parts(name: str, parts: tuple[str, str]) -> None:
    assert redshifttext.catalog_parts(name) == parts
