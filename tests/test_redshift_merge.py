"""RedshiftCopyActivity's plain SQL on the test PostgreSQL, for every insertMode.

Everything of a load but the COPY itself is plain SQL that PostgreSQL runs as
Redshift does: the temporary table ``staging`` like the target, ``transformSql``
over it, the primary keys read from the catalog, the merge, all in one transaction.
Here a multi-row INSERT into ``staging`` stands in for the COPY (no cluster can run
here); the rest are ``runner/dbchild/redshifttext.py``'s own texts, and the rows
of the target are checked after each mode.
"""

from __future__ import annotations

from typing import Any

import pytest

from runner.dbchild import dbsession, redshifttext
from tests.support.dbservers import DbServer

EXISTING = [(1, "old one"), (2, "old two")]
INCOMING = [(2, "new two"), (3, "new three")]
EXPECTED = {
    "KEEP_EXISTING": [(1, "old one"), (2, "old two"), (3, "new three")],
    "OVERWRITE_EXISTING": [(1, "old one"), (2, "new two"), (3, "new three")],
    "TRUNCATE": [(2, "new two"), (3, "new three")],
    "APPEND": [(1, "old one"), (2, "old two"), (2, "new two"), (3, "new three")],
}


def load(
    db: DbServer,
    table: str,
    mode: str,
    *,
    declared: list[str] | None = None,
    transform: str | None = None,
) -> None:
    """One load as the child runs it, with INSERT in the COPY's place."""
    conn: Any = db.admin()
    try:
        with conn.transaction():
            conn.execute(redshifttext.staging_table(table))
            conn.execute(
                f"INSERT INTO {redshifttext.STAGING} VALUES (%s, %s), (%s, %s)",  # noqa: S608
                [v for row in INCOMING for v in row],
            )
            source = redshifttext.STAGING
            if transform:
                conn.execute(redshifttext.transform_table(transform))
                source = redshifttext.TRANSFORMED
            keys = declared or []
            if redshifttext.needs_keys(mode) and not keys:
                schema, name = redshifttext.catalog_parts(table)
                found = conn.execute(redshifttext.PRIMARY_KEY_QUERY, [name, schema])
                keys = ['"' + r[0] + '"' for r in found.fetchall()]
                assert keys, "no primary key found in the catalog"
            for statement in redshifttext.merge_statements(mode, table, source, keys):
                conn.execute(statement)
    finally:
        conn.close()


def rows(db: DbServer, table: str) -> list[tuple[Any, ...]]:
    return db.query(f"SELECT id, v FROM {table} ORDER BY id, v DESC")  # noqa: S608


def make_target(db: DbServer, table: str, *, primary_key: bool = True) -> None:
    key = " PRIMARY KEY" if primary_key else ""
    db.query(f"CREATE TABLE {table} (id INT{key}, v TEXT)")
    for row in EXISTING:
        db.query(f"INSERT INTO {table} VALUES (%s, %s)", list(row))  # noqa: S608


@pytest.mark.parametrize("mode", redshifttext.INSERT_MODES)
def test_each_insert_mode_leaves_the_rows_the_dg_describes(
    pg_db: DbServer, mode: str
) -> None:
    make_target(pg_db, "target", primary_key=mode != "APPEND")
    load(pg_db, "target", mode)
    assert rows(pg_db, "target") == EXPECTED[mode]


def test_declared_keys_merge_a_table_without_a_primary_key(pg_db: DbServer) -> None:
    pg_db.query("CREATE SCHEMA app")
    make_target(pg_db, "app.t", primary_key=False)
    load(pg_db, "app.t", "OVERWRITE_EXISTING", declared=["id"])
    assert rows(pg_db, "app.t") == EXPECTED["OVERWRITE_EXISTING"]


def test_keys_are_read_from_the_catalog_for_a_quoted_name(pg_db: DbServer) -> None:
    pg_db.query('CREATE TABLE "Mixed" ("Id" INT PRIMARY KEY, v TEXT)')
    pg_db.query("INSERT INTO \"Mixed\" VALUES (1, 'old one'), (2, 'old two')")
    load(pg_db, '"Mixed"', "KEEP_EXISTING")
    got = pg_db.query('SELECT "Id", v FROM "Mixed" ORDER BY 1')
    assert got == EXPECTED["KEEP_EXISTING"]


def test_transform_sql_runs_over_staging(pg_db: DbServer) -> None:
    make_target(pg_db, "target")
    load(
        pg_db,
        "target",
        "OVERWRITE_EXISTING",
        transform="SELECT id, upper(v) AS v FROM staging;",
    )
    assert rows(pg_db, "target") == [(1, "old one"), (2, "NEW TWO"), (3, "NEW THREE")]


def test_a_failed_merge_leaves_the_target_as_it_was(pg_db: DbServer) -> None:
    make_target(pg_db, "target")
    with pytest.raises(Exception, match="staging_missing"):
        load(
            pg_db,
            "target",
            "TRUNCATE",
            transform="SELECT id, v FROM staging_missing",
        )
    assert rows(pg_db, "target") == EXISTING


def test_a_redshift_session_finds_a_table_named_in_mixed_case(pg_db: DbServer) -> None:
    """Redshift has no to_regclass: the catalog is asked with the name folded as
    the server folds it (createTableSql runs only when this says no)."""
    pg_db.query("CREATE SCHEMA app")
    pg_db.query('CREATE TABLE app.orders (id INT); CREATE TABLE app."Quoted" (id INT)')
    pg_db.query(
        'ALTER TABLE app.orders OWNER TO dp; ALTER TABLE app."Quoted" OWNER TO dp'
    )
    session = dbsession.connect(
        {
            "engine": "redshift",
            "host": pg_db.host,
            "port": pg_db.port,
            "database": pg_db.database,
            "user": pg_db.user,
            "password": pg_db.password,
        }
    )
    try:
        assert session.table_exists("App.Orders")
        assert session.table_exists('app."Quoted"')
        assert not session.table_exists("app.quoted")
        assert not session.table_exists("app.missing")
    finally:
        session.close()
