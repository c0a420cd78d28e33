"""A MySQL export the server formats (``mysqlformat``) against a private MariaDB:
every type and every awkward value comes out byte for byte as the row packets
read in the child (``mysqlrows``) write it; a query whose rows a rewrite could
change is left as it is; an export left half-read closes its connection."""

from __future__ import annotations

import pytest

from runner.dbchild import dbsession, mysqlformat
from runner.dbchild.dialect import CSV, TSV, Dialect, encode_field
from tests.support.dbservers import DbServer

KINDS = """CREATE TABLE kinds (
    id INT PRIMARY KEY, z INT(6) ZEROFILL, u BIGINT UNSIGNED, ti TINYINT, y YEAR,
    d DECIMAL(20, 6), f FLOAT, db DOUBLE, r FLOAT(7, 3), dt DATE, t DATETIME(6),
    ts TIMESTAMP(3) NULL, tm TIME(2), e ENUM('a', 'b,c'), s SET('x', 'y'),
    l VARCHAR(40) CHARACTER SET latin1, b VARBINARY(40), bl BLOB, bt BIT(9),
    ch CHAR(5), tx TEXT, tx2 TEXT
) CHARACTER SET utf8mb4"""
COLUMNS = 22
#: Quotes, both separators, LF, CR, backslashes, the NULL spelling as a value,
#: four-byte UTF-8, latin1, and bytes that look like length and NULL markers.
AWKWARD = (
    'it\'s "quoted", tab\there\nline\r\\back\\slash \\N 😀 é',
    b"\x00\x09\x0a\x2c\x5c\xfb\xfc\xfd\xfe\xff",
)
LATIN1 = 'caf\xe9, "x"\ttab\\\n'
_INSERT = "INSERT INTO kinds VALUES "
ROWS = [
    _INSERT + "(1, 42, 18446744073709551615, -128, 2024, -123.456789, 1.1, 0.1,"
    " 3.14159, '2024-02-29', '2024-01-02 03:04:05.123456', '2024-01-02 03:04:05.5',"
    " '-838:59:59.99', 'b,c', 'x,y', %s, %s, %s, b'101011100', 'ab', %s, '\\\\N')",
    _INSERT + "(2" + ", NULL" * (COLUMNS - 1) + ")",
    _INSERT + "(3, 0, 0, 0, 0, 0, 1e30, 1.7976931348623157e308, -0.5, '1000-01-01',"
    " '9999-12-31 23:59:59.999999', NULL, '00:00:00', 'a', '', '', '', '', b'0',"
    " '', '', '')",
    # past one length byte, and a record past two (the field's 3-byte length)
    _INSERT + "(4, 1, 1, 1, 1901, 1, 1, 1, 1, '2000-01-01', '2000-01-01 00:00:00',"
    " NULL, '01:00:00', 'a', 'x', %s, %s, %s, b'1', 'é', %s, %s)",
]


def session(db: DbServer) -> dbsession.Session:
    return dbsession.connect(db.connection)


def export(conn: dbsession.Session, query: str, dialect: Dialect) -> tuple[bytes, int]:
    rows: list[int] = []
    data = b"".join(conn.export(query, dialect, rows))
    return data, rows[0]


@pytest.fixture
def kinds(mysql_db: DbServer) -> dbsession.Session:
    conn = session(mysql_db)
    conn.execute(KINDS, None)
    text, raw = AWKWARD
    conn.execute(ROWS[0], [LATIN1, raw, raw, text])
    conn.execute(ROWS[1], None)
    conn.execute(ROWS[2], None)
    long_values = ["é" * 40, raw * 4, raw * 30, "x" * 60_000, text * 200]
    conn.execute(ROWS[3], long_values)
    return conn


@pytest.mark.parametrize("dialect", [CSV, TSV])
def test_the_server_writes_every_type_as_the_row_packets_read_here_do(
    kinds: dbsession.Session, dialect: Dialect
) -> None:
    # the primary key's order both ways: the rewrite leaves ORDER BY alone
    formatted, read = "SELECT * FROM kinds", "SELECT * FROM kinds ORDER BY id"
    conn = kinds.conn  # type: ignore[attr-defined]
    assert mysqlformat.formatted_query(conn, formatted, dialect) is not None
    assert mysqlformat.formatted_query(conn, read, dialect) is None
    got, count = export(kinds, formatted, dialect)
    want, want_count = export(kinds, read, dialect)
    assert got == want
    assert count == want_count == len(ROWS)
    sep = dialect.separator
    assert b"\n" + sep.join([b"2"] + [b"\\N"] * (COLUMNS - 1)) + b"\n" in got
    assert encode_field(AWKWARD[0].encode(), dialect) in got  # escaped as here
    assert "😀 é".encode() in got  # UTF-8, latin1 converted
    assert sep + b"\\\\N\n" in got  # the value "\N", not NULL
    assert len(got) > 70_000  # the long row came whole


@pytest.mark.parametrize(
    "query",
    [
        "SELECT * FROM kinds ORDER BY id DESC",
        "SELECT * FROM kinds LIMIT 2",
        "SELECT ti, COUNT(*) FROM kinds GROUP BY ti",
        "SELECT DISTINCT ti FROM kinds",
        "SELECT id FROM kinds UNION SELECT id FROM kinds",
        "SELECT k.id, j.id FROM kinds k JOIN kinds j ON j.id = k.id",  # names twice
        "SELECT id, ST_GeomFromText('POINT(1 1)') FROM kinds",  # a geometry
        "SELECT id, CAST(tx AS CHAR(16000000)) FROM kinds",  # too wide to bound
        "SHOW TABLES",
        "SELECT * FROM no_such_table",
    ],
)
def test_a_query_a_rewrite_could_change_is_read_as_it_is(
    kinds: dbsession.Session, query: str
) -> None:
    conn = kinds.conn  # type: ignore[attr-defined]
    assert mysqlformat.formatted_query(conn, query, CSV) is None
    assert mysqlformat.formatted_query(conn, "SELECT id FROM kinds", CSV) is not None


def test_a_query_ending_in_a_comment_is_formatted_whole(
    kinds: dbsession.Session,
) -> None:
    got, count = export(kinds, "SELECT id, ch FROM kinds WHERE id < 3 -- the end", CSV)
    assert (got, count) == (b"1,ab\n2,\\N\n", 2)


def test_the_probe_never_runs_the_query(kinds: dbsession.Session) -> None:
    """A query without a table is one the server would run whole to answer a
    probe of its derived table; the probe's own LIMIT 0 keeps it from running:
    the query's side effect (a user variable) happens once, in the export."""
    conn = kinds.conn  # type: ignore[attr-defined]
    kinds.execute("SET @runs = 0", None)
    query = "SELECT @runs := @runs + 1 AS n"
    assert mysqlformat.formatted_query(conn, query, CSV) is not None
    with conn.cursor() as cur:
        cur.execute("SELECT @runs")
        assert cur.fetchone() == (0,)
    assert export(kinds, query, CSV) == (b"1\n", 1)


def test_an_export_left_half_read_closes_its_connection(
    mysql_db: DbServer,
) -> None:
    conn = session(mysql_db)
    conn.execute("CREATE TABLE many (n INT, v VARCHAR(200))", None)
    conn.execute(
        "INSERT INTO many SELECT seq, REPEAT('v', 200) FROM seq_1_to_100000", None
    )
    chunks = conn.export("SELECT * FROM many", CSV, [])
    assert next(chunks).startswith(b"1,vvv")
    chunks.close()  # a stop, a failed upload: the rest of the rows are unread
    assert not conn.conn.open  # type: ignore[attr-defined]
    conn.rollback()  # what the child does next: no error for a closed connection
    conn.close()


#: Canonical dialect records: an escaped separator and backslash, NULL and the
#: value "\N", an escaped LF, a bare CR, 4-byte UTF-8, an empty string.
ROUND_TRIP = "1,a\\,b,x\\\\y\n2,\\N,line\\\nbreak\rcr\n3,\\\\N,😀 é\n4,,\\N\n".encode()


def test_awkward_records_come_back_as_they_went_in(mysql_db: DbServer) -> None:
    conn = session(mysql_db)
    table = "CREATE TABLE rt (id INT PRIMARY KEY, a TEXT, b TEXT) CHARACTER SET utf8mb4"
    conn.execute(table, None)
    assert conn.load("rt", None, [ROUND_TRIP], CSV) == 4
    query = "SELECT * FROM rt"
    assert mysqlformat.formatted_query(conn.conn, query, CSV) is not None  # type: ignore[attr-defined]
    assert export(conn, query, CSV) == (ROUND_TRIP, 4)
