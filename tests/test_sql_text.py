"""The pure pieces of the database activities: the dialect, the statement splitter,
JDBC URLs and driver options, and the statements only Redshift gets (no test
reaches a real Redshift cluster, so these are its tests)."""

from __future__ import annotations

import pytest

from runner.activities import sqlnames
from runner.activities.jdbcurl import driver_options, parse_jdbc_url
from runner.dbchild import dialect, redshiftsql, sqlscript
from runner.errors import ActivityError

RECORDS: list[list[bytes | None]] = [
    [b"a,b", None, b"x\\y", b"line1\nline2", b"", b"\\N", b"cr\rhere", b"t\tab"],
    [b"plain", b"x"],
    [b"\\"],
    [b"\\\\n", b"ends with backslash\\"],
]


@pytest.mark.parametrize("form", [dialect.CSV, dialect.TSV])
def test_records_survive_every_chunk_boundary(form: dialect.Dialect) -> None:
    data = b"".join(dialect.encode_record(r, form) for r in RECORDS)
    for cut in range(len(data) + 1):
        reader = dialect.RecordReader(form)
        got = reader.feed(data[:cut]) + reader.feed(data[cut:]) + reader.finish()
        assert got == RECORDS, cut


def test_the_dialect_is_the_dgs() -> None:
    encoded = dialect.encode_record(
        [b"a,b", None, b"new\nline", b"back\\"], dialect.CSV
    )
    assert encoded == b"a\\,b,\\N,new\\\nline,back\\\\\n"
    assert dialect.encode_record([b"a\tb", b"c,d"], dialect.TSV) == b"a\\\tb\tc,d\n"


def test_a_last_record_without_lf_is_read() -> None:
    reader = dialect.RecordReader(dialect.CSV)
    assert reader.feed(b"a,b\nc,\\N") == [[b"a", b"b"]]
    assert reader.finish() == [[b"c", None]]


def test_an_escape_before_a_letter_stands_for_the_letter() -> None:
    reader = dialect.RecordReader(dialect.CSV)
    assert reader.feed(b"\\n\\t\\x,a\\Nb\n") == [[b"ntx", b"aNb"]]


def test_dialect_to_postgres_text_rewrites_only_what_differs() -> None:
    data = b"a\\,b,\\N,x\\\\y,l1\\\nl2,cr\rhere,\\t\\.\\\\\n"
    pg = b"".join(dialect.dialect_to_pg([data[:7], data[7:]]))
    assert pg == b"a\\,b,\\N,x\\\\y,l1\\nl2,cr\\rhere,t.\\\\\n"
    assert list(dialect.dialect_to_pg([b"plain,x\n"])) == [b"plain,x\n"]


def test_postgres_text_to_dialect() -> None:
    translate = dialect.pg_to_dialect(dialect.CSV)
    out = translate(b"a\\,b,\\N,x\\\\y,l1\\nl2,\\r\\t,\\\\n\\") + translate(b"b\n")
    assert out == b"a\\,b,\\N,x\\\\y,l1\\\nl2,\r\t,\\\\n\b\n"
    tsv = dialect.pg_to_dialect(dialect.TSV)
    assert tsv(b"a\\tb\tc\n") == b"a\\\tb\tc\n"


def test_split_respects_quotes_comments_and_dollar_bodies() -> None:
    script = (
        "-- leading; comment\n"
        "CREATE FUNCTION f() RETURNS int AS $body$ SELECT 1; $body$ LANGUAGE sql;\n"
        "INSERT INTO t VALUES ('a;b', \"c;d\", E'it\\'s;', ?);\n"
        "/* a; /* nested; */ comment */ SELECT $$;$$, $1;\n"
        "-- only a comment;\n"
        ";;"
    )
    statements = sqlscript.split(script)
    assert [s.text.splitlines()[-1][:22] for s in statements] == [
        "CREATE FUNCTION f() RE",
        "INSERT INTO t VALUES (",
        "/* a; /* nested; */ co",
    ]
    assert [s.arguments for s in statements] == [0, 1, 0]


def test_split_with_mysql_rules() -> None:
    script = (
        "INSERT INTO t VALUES ('it\\'s;?', \"x;y\", `a;b`, ?); # c;?\n"
        "SELECT 1 -- d;\n;"
        "SELECT 2--3"
    )
    statements = sqlscript.split(script, mysql=True)
    assert [s.arguments for s in statements] == [1, 0, 0]
    assert statements[2].text == "SELECT 2--3"


def test_bound_text_turns_marks_into_driver_placeholders() -> None:
    (statement,) = sqlscript.split("SELECT '50% ?', ? ?? '1', ?")
    assert statement.arguments == 2
    assert statement.bound_text() == "SELECT '50%% ?', %s ? '1', %s"


def test_jdbc_urls() -> None:
    assert parse_jdbc_url(
        "jdbc:postgresql://db.example:6543/sales?sslmode=require"
    ) == (
        "postgresql",
        "db.example",
        6543,
        "sales",
        {"sslmode": "require"},
    )
    engine, host, port, database, params = parse_jdbc_url(
        "jdbc:mysql://u:p%40ss@127.0.0.1/shop?useSSL=false&connectTimeout=2500"
    )
    assert (engine, host, port, database) == ("mysql", "127.0.0.1", 3306, "shop")
    assert params == {
        "user": "u",
        "password": "p@ss",
        "usessl": "false",
        "connecttimeout": "2500",
    }
    assert parse_jdbc_url("jdbc:redshift://c.x.redshift.amazonaws.com/dev;ssl=true")[
        2:
    ] == (5439, "dev", {"ssl": "true"})
    assert parse_jdbc_url("jdbc:mariadb://[::1]:3307/x")[:3] == ("mysql", "::1", 3307)


@pytest.mark.parametrize(
    "url",
    ["jdbc:oracle:thin:@h:1521:x", "postgresql://h/x", "jdbc:postgresql://a,b/x"],
)
def test_bad_jdbc_urls_are_refused_without_quoting_them(url: str) -> None:
    with pytest.raises(ActivityError) as caught:
        parse_jdbc_url(url.replace("h", "h-secret"))
    assert caught.value.error_id == "InvalidField"
    assert "secret" not in caught.value.message


def test_driver_options_from_jdbc_parameters() -> None:
    assert driver_options(
        {"ssl": "true", "connecttimeout": "7", "applicationname": "etl", "x": "1"},
        "postgresql",
    ) == {
        "ssl": "verify-full",
        "connect_timeout_s": "7.0",
        "application_name": "etl",
        "ignored": "x",
    }
    assert driver_options(
        {
            "sslmode": "VERIFY_IDENTITY",
            "connecttimeout": "2500",
            "sockettimeout": "9000",
        },
        "mysql",
    ) == {"ssl": "verify-full", "connect_timeout_s": "2.5", "read_timeout_s": "9.0"}
    with pytest.raises(ActivityError):
        driver_options({"connecttimeout": "soon"}, "mysql")


def test_redshift_query_group_is_a_quoted_literal() -> None:
    assert redshiftsql.session_setup(None) == []
    assert redshiftsql.session_setup("etl") == ["SET query_group TO 'etl'"]
    assert redshiftsql.session_setup("o'k\\") == ["SET query_group TO 'o''k\\\\'"]


def test_redshift_gets_one_multi_row_insert_per_batch() -> None:
    sql = redshiftsql.insert_for_table("public.t", 2)
    assert sql == "INSERT INTO public.t VALUES (%s, %s)"
    made = redshiftsql.insert_batch(sql, [["1", "a"], ["2", None]])
    assert made == (
        "INSERT INTO public.t VALUES (%s, %s), (%s, %s)",
        ["1", "a", "2", None],
    )
    custom = "insert into t (b, a) values ( %s ,%s );"
    assert redshiftsql.insert_batch(custom, [["x", "y"]]) == (
        "insert into t (b, a) values ( %s ,%s )",
        ["x", "y"],
    )
    assert redshiftsql.insert_batch("INSERT INTO t SELECT %s", [["x"]]) is None


@pytest.mark.parametrize(
    "name",
    ["items", "public.items", "_t$1", '"Odd ""Name"""', 'public."My.Table"', "a.b.c"],
)
def test_names_pass_as_written(name: str) -> None:
    assert sqlnames.sql_name(name, "table", "output 'X'") == name


@pytest.mark.parametrize(
    "name",
    [
        "(SELECT 1) TO STDOUT; DROP TABLE victim; COPY (SELECT 1)",
        "t; DROP TABLE x",
        "1abc",
        "a..b",
        "a.",
        '"unclosed',
        '"a"b"',
        "t--",
        "t x",
        "",
    ],
)
def test_anything_else_is_invalid_field_naming_the_field(name: str) -> None:
    with pytest.raises(ActivityError) as caught:
        sqlnames.sql_name(name, "schemaName", "output 'X'")
    assert caught.value.error_id == "InvalidField"
    assert "schemaName" in caught.value.message
    assert "output 'X'" in caught.value.message
