"""The MySQL fast paths against a private MariaDB: a load streamed as LOAD DATA
LOCAL INFILE (``mysqlload``) stores what the batched INSERTs store, a file the
server asks for by any other name is refused, and an export read off the socket
(``mysqlrows``) writes what the driver's rows encode to; plus the read-ahead
that feeds a load."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest

from runner.dbchild import dbsession
from runner.dbchild.dbrows import encode_batches, insert_batches
from runner.dbchild.dialect import CSV, TSV, encode_record
from runner.dbchild.readahead import read_ahead
from tests.support.dbservers import DbServer

#: Every escape MySQL reads its own way, NULL and "\N" inside a value, an escaped
#: separator and LF, a bare CR, UTF-8, and values past one and two length bytes.
TRICKY = [
    b"1,a\\,b,x\\0y\\bz\n",
    b"2,\\N,n\\Nn\\nt\\tr\\rZ\\Z\n",
    b"3,line\\\nbreak,bare\rcr\n",
    b"4,back\\\\slash\\\\n,\xc3\xa9t\xc3\xa9\n",
    b"5," + b"L" * 300 + b"," + b"M" * 70000 + b"\n",
    b"6,,\\N\n",
]
TABLE = "CREATE TABLE {name} (id INT, a TEXT, b MEDIUMTEXT) CHARACTER SET utf8mb4"


def session(db: DbServer) -> dbsession.Session:
    return dbsession.connect(db.connection)


def in_sync(conn: dbsession.Session) -> bool:
    """Whether the connection answers the next query with its own answer."""
    with conn.conn.cursor() as cur:  # type: ignore[attr-defined]
        cur.execute("SELECT 1 + 1")
        return bool(cur.fetchall() == ((2,),))


def split(data: bytes, size: int) -> Iterator[bytes]:
    """``data`` in chunks of ``size`` bytes: escapes cut across chunks."""
    for start in range(0, len(data), size):
        yield data[start : start + size]


def test_a_streamed_load_stores_what_batched_inserts_store(mysql_db: DbServer) -> None:
    conn = session(mysql_db)
    for name in ("streamed", "inserted"):
        conn.execute(TABLE.format(name=name), None)
    data = b"".join(TRICKY)
    loaded = conn.load("streamed", None, split(data, 7), CSV)
    insert = "INSERT INTO inserted VALUES (%s, %s, %s)"
    with conn.conn.cursor() as cur:  # type: ignore[attr-defined]
        inserted = insert_batches(cur.executemany, "inserted", insert, [data], CSV)
    assert loaded == inserted == len(TRICKY)
    streamed = mysql_db.query("SELECT id, a, b FROM streamed ORDER BY id")
    assert streamed == mysql_db.query("SELECT id, a, b FROM inserted ORDER BY id")
    assert streamed[1][1] is None
    assert streamed[0][1:] == ("a,b", "x0ybz")  # each escape: the character
    assert streamed[1][2] == "nNnnttrrZZ"
    assert streamed[5][1:] == ("", None)


def test_a_value_its_column_cannot_hold_fails_the_load_and_keeps_none(
    mysql_db: DbServer,
) -> None:
    conn = session(mysql_db)
    conn.execute(TABLE.format(name="items"), None)
    with pytest.raises(dbsession.SqlError) as failed:
        conn.load("items", None, [b"1,a,b\nnot a number,c,d\n"], CSV)
    assert failed.value.error_id == "SqlError:1366"  # incorrect integer value
    assert mysql_db.query("SELECT COUNT(*) FROM items") == [(0,)]


def test_a_file_the_server_asks_for_by_another_name_is_refused(
    mysql_db: DbServer,
) -> None:
    conn = session(mysql_db)
    conn.execute("CREATE TABLE stolen (line TEXT)", None)
    with pytest.raises(dbsession.SqlError, match="did not name"):
        conn.execute("LOAD DATA LOCAL INFILE '/etc/hostname' INTO TABLE stolen", None)
    assert mysql_db.query("SELECT COUNT(*) FROM stolen") == [(0,)]
    assert in_sync(conn)


@pytest.mark.parametrize("dialect", [CSV, TSV])
def test_an_export_off_the_socket_writes_what_the_rows_encode_to(
    mysql_db: DbServer, dialect: object
) -> None:
    conn = session(mysql_db)
    conn.execute(TABLE.format(name="items"), None)
    conn.load("items", None, [b"".join(TRICKY)], CSV)
    conn.execute("INSERT INTO items VALUES (7, 'tab\there', 'comma, here')", None)
    query = "SELECT id, a, b FROM items ORDER BY id"
    rows: list[int] = []
    got = b"".join(conn.export(query, dialect, rows))  # type: ignore[arg-type]
    with conn.conn.cursor() as cur:  # type: ignore[attr-defined]
        cur.execute(query)
        want = b"".join(encode_batches(cur, dialect, []))  # type: ignore[arg-type]
    assert got == want
    assert rows == [len(TRICKY) + 1]
    assert encode_record([b"7", b"tab\there", b"comma, here"], dialect) in got  # type: ignore[arg-type]
    assert in_sync(conn)  # the result was read whole


def test_an_export_ends_with_the_servers_error(mysql_db: DbServer) -> None:
    conn = session(mysql_db)
    with pytest.raises(dbsession.SqlError) as failed:
        b"".join(conn.export("SELECT * FROM no_such_table", CSV, []))
    assert failed.value.error_id == "SqlError:1146"


def test_read_ahead_passes_chunks_and_errors_in_order() -> None:
    def source() -> Iterator[bytes]:
        yield b"a"
        yield b"b"
        raise ValueError("broken")

    got: list[bytes] = []
    with pytest.raises(ValueError, match="broken"):
        got.extend(read_ahead(source()))
    assert got == [b"a", b"b"]


def test_closing_a_read_ahead_ends_its_thread() -> None:
    def endless() -> Iterator[bytes]:
        while True:
            yield b"x"

    before = threading.active_count()
    chunks = read_ahead(endless(), depth=2)
    assert next(chunks) == b"x"
    assert threading.active_count() == before + 1
    chunks.close()
    assert threading.active_count() == before
