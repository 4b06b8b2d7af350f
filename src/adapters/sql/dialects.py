"""What differs between PostgreSQL and SQLite, in one place; the index code is the same.

Rules this module keeps:
- Looking up N ids costs a constant number of statements. PostgreSQL binds one
  array (``= ANY(:ids)``); SQLite binds chunks under its parameter limit (one
  chunk for 25,000 ids on any SQLite since 3.32), and a JSON array
  (``json_each``) where a single condition is needed, as in the recursive walk.
- Lookups that return many rows per mpack (``find_locations``) aggregate them
  into one array per column and mpack (PostgreSQL ``array_agg``, SQLite
  ``json_group_array``): a few rows of arrays decode far faster than 25,000 rows.
- Bulk writes are one statement per table. PostgreSQL inserts from ``unnest`` of
  one array per column (one round trip, however many rows); SQLite runs an
  executemany in its own thread. Conflicts are ignored (or the value updated,
  for branch heads), and rows go in key order, so overlapping writers queue
  behind each other instead of deadlocking.
- A write transaction on SQLite begins IMMEDIATE: it takes the write lock at
  once (waiting up to the busy timeout), so it never fails half-way on a lock.
  The database runs in WAL mode, where readers and the writer do not block
  each other.
- PostgreSQL reads run in autocommit (no BEGIN/COMMIT round trips); writes run
  in a READ COMMITTED transaction.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Protocol

import attrs
import sqlalchemy as sa
from fetchcore.adapters.sql.rows import Row
from sqlalchemy import event
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

if TYPE_CHECKING:
    from fetchcore.adapters.sql.engine import EngineOptions

_MODERN_SQLITE_VARIABLE_LIMIT = 32_766  # the default since SQLite 3.32.0
_OLD_SQLITE_VARIABLE_LIMIT = 999
_PARAMETERS_KEPT_FREE = 16  # for the other parameters of a chunked statement
_WRITE_OPTION = "fetchcore_write"
_MIGRATION_LOCK_KEY = 0x6665746368636F72  # "fetchcor": the advisory lock of schema migrations


class SqlDialect(Protocol):
    """The operations whose SQL differs between the databases the index runs on."""

    def engine_options(self, url: URL, options: EngineOptions) -> dict[str, Any]:
        """Keyword arguments for ``create_async_engine`` (the timeouts; not the pool)."""
        ...

    def prepare(self, engine: AsyncEngine) -> None:
        """Install what every new connection needs (pragmas, transaction handling)."""
        ...

    @property
    def read_options(self) -> dict[str, Any]:
        """Execution options of a connection that only reads."""
        ...

    @property
    def write_options(self) -> dict[str, Any]:
        """Execution options of a connection that runs one write transaction."""
        ...

    def in_ids(
        self, column: sa.ColumnElement[str], ids: Sequence[str], name: str
    ) -> sa.ColumnElement[bool]:
        """One condition ``column IN ids``, whatever the number of ids."""
        ...

    def in_id_chunks(
        self, column: sa.ColumnElement[str], ids: Sequence[str]
    ) -> list[sa.ColumnElement[bool]]:
        """Conditions that together say ``column IN ids``: a constant number of them."""
        ...

    def aggregate(self, column: sa.ColumnElement[Any]) -> sa.ColumnElement[Any]:
        """An aggregate that collects ``column`` of a group into one array value."""
        ...

    def aggregated(self, value: Any) -> Sequence[Any]:
        """The values of a group, from what :meth:`aggregate` returned (in one order
        for every aggregate of the same statement)."""
        ...

    async def write_rows(
        self,
        conn: AsyncConnection,
        table: sa.Table,
        rows: Sequence[Row],
        *,
        update: Sequence[str] = (),
        returning: str | None = None,
    ) -> list[Any]:
        """Insert ``rows`` (in the table's column order), ignoring those already there.

        Args:
            update: columns to overwrite when a row with the same primary key exists.
            returning: a column whose values, for the rows actually inserted, to return.

        Returns:
            The ``returning`` column of the inserted rows; empty without ``returning``.
            No rows, no statement.
        """
        ...

    async def lock_for_migration(self, conn: AsyncConnection) -> None:
        """Make concurrent schema migrations wait for each other (inside a write transaction)."""
        ...


def _insert_columns(table: sa.Table) -> list[str]:
    return [column.name for column in table.columns]


@attrs.frozen
class Postgres:
    """PostgreSQL through asyncpg."""

    def engine_options(self, url: URL, options: EngineOptions) -> dict[str, Any]:
        statement_ms = max(1, int(options.statement_timeout_s * 1000))
        return {
            "connect_args": {
                "timeout": options.connect_timeout_s,
                "command_timeout": options.statement_timeout_s,
                "server_settings": {
                    "application_name": "fetchcore",
                    "statement_timeout": str(statement_ms),
                },
            },
        }

    def prepare(self, engine: AsyncEngine) -> None:
        return None

    @property
    def read_options(self) -> dict[str, Any]:
        return {"isolation_level": "AUTOCOMMIT"}

    @property
    def write_options(self) -> dict[str, Any]:
        return {"isolation_level": "READ COMMITTED"}

    def in_ids(
        self, column: sa.ColumnElement[str], ids: Sequence[str], name: str
    ) -> sa.ColumnElement[bool]:
        array = sa.bindparam(name, list(ids), type_=postgresql.ARRAY(sa.Text))
        return column == sa.any_(array)

    def in_id_chunks(
        self, column: sa.ColumnElement[str], ids: Sequence[str]
    ) -> list[sa.ColumnElement[bool]]:
        return [self.in_ids(column, ids, "ids")]

    def aggregate(self, column: sa.ColumnElement[Any]) -> sa.ColumnElement[Any]:
        return sa.func.array_agg(column)  # asyncpg decodes the array in C: no row objects

    def aggregated(self, value: Any) -> Sequence[Any]:
        return value  # type: ignore[no-any-return]

    async def write_rows(
        self,
        conn: AsyncConnection,
        table: sa.Table,
        rows: Sequence[Row],
        *,
        update: Sequence[str] = (),
        returning: str | None = None,
    ) -> list[Any]:
        if not rows:
            return []
        names = _insert_columns(table)
        arrays = {name: [row[i] for row in rows] for i, name in enumerate(names)}
        source = _unnest(table)
        insert = postgresql.insert(table).from_select(names, sa.select(*source.c))
        statement = _on_conflict(insert, table, tuple(update), returning)
        result = await conn.execute(statement, arrays)
        return list(result.scalars()) if returning else []

    async def lock_for_migration(self, conn: AsyncConnection) -> None:
        lock = sa.select(sa.func.pg_advisory_xact_lock(_MIGRATION_LOCK_KEY))
        await conn.execute(lock)


def _unnest(table: sa.Table) -> sa.TableValuedAlias:
    """``unnest(:col1, :col2, ...) AS source(col1, col2, ...)``: one array per column."""
    arrays = [sa.bindparam(c.name, type_=postgresql.ARRAY(c.type)) for c in table.columns]
    return sa.func.unnest(*arrays).table_valued(*_insert_columns(table)).render_derived("source")


def _on_conflict(
    insert: postgresql.Insert | sqlite.Insert,
    table: sa.Table,
    update: tuple[str, ...],
    returning: str | None,
) -> sa.Executable:
    """``insert`` that skips existing rows (or updates ``update`` columns), maybe RETURNING."""
    if update:
        excluded = insert.excluded
        finished = insert.on_conflict_do_update(
            index_elements=list(table.primary_key.columns),
            set_={name: excluded[name] for name in update},
        )
    else:
        finished = insert.on_conflict_do_nothing()
    return finished.returning(table.c[returning]) if returning else finished


@attrs.frozen
class Sqlite:
    """SQLite through aiosqlite: WAL, a busy timeout and IMMEDIATE write transactions."""

    variable_limit: int = _MODERN_SQLITE_VARIABLE_LIMIT

    def engine_options(self, url: URL, options: EngineOptions) -> dict[str, Any]:
        return {"connect_args": {"timeout": options.statement_timeout_s}}  # the busy timeout

    def prepare(self, engine: AsyncEngine) -> None:
        target = engine.sync_engine
        if not event.contains(target, "connect", _configure_sqlite_connection):  # once per engine
            event.listen(target, "connect", _configure_sqlite_connection)
            event.listen(target, "begin", _begin_sqlite_transaction)

    @property
    def read_options(self) -> dict[str, Any]:
        return {}

    @property
    def write_options(self) -> dict[str, Any]:
        return {_WRITE_OPTION: True}

    def in_ids(
        self, column: sa.ColumnElement[str], ids: Sequence[str], name: str
    ) -> sa.ColumnElement[bool]:
        values = sa.func.json_each(sa.bindparam(name, json.dumps(list(ids)))).table_valued("value")
        return column.in_(sa.select(values.c.value))

    def in_id_chunks(
        self, column: sa.ColumnElement[str], ids: Sequence[str]
    ) -> list[sa.ColumnElement[bool]]:
        size = max(1, self.variable_limit - _PARAMETERS_KEPT_FREE)
        return [column.in_(ids[start : start + size]) for start in range(0, len(ids), size)]

    def aggregate(self, column: sa.ColumnElement[Any]) -> sa.ColumnElement[Any]:
        return sa.func.json_group_array(column)  # one JSON text, parsed in C

    def aggregated(self, value: Any) -> Sequence[Any]:
        return json.loads(value)  # type: ignore[no-any-return]

    async def write_rows(
        self,
        conn: AsyncConnection,
        table: sa.Table,
        rows: Sequence[Row],
        *,
        update: Sequence[str] = (),
        returning: str | None = None,
    ) -> list[Any]:
        if not rows:
            return []
        names = _insert_columns(table)
        params = [dict(zip(names, row, strict=True)) for row in rows]
        statement = _on_conflict(sqlite.insert(table), table, tuple(update), returning)
        result = await conn.execute(statement, params)
        return list(result.scalars()) if returning else []

    async def lock_for_migration(self, conn: AsyncConnection) -> None:
        return None  # BEGIN IMMEDIATE already holds the database's one write lock


def _configure_sqlite_connection(dbapi_connection: Any, _record: Any) -> None:
    # Let the "begin" listener below emit BEGIN itself (pysqlite's own handling
    # would begin lazily and DEFERRED, which can fail on the lock mid-transaction).
    dbapi_connection.isolation_level = None
    # The busy timeout is the driver's ``timeout`` (the engine's connect arguments).
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute("PRAGMA journal_mode=WAL")
    finally:
        cursor.close()


def _begin_sqlite_transaction(conn: sa.Connection) -> None:
    writes = conn.get_execution_options().get(_WRITE_OPTION, False)
    conn.exec_driver_sql("BEGIN IMMEDIATE" if writes else "BEGIN")


def sqlite_variable_limit(version: str, compile_options: Sequence[str]) -> int:
    """How many ``?`` parameters one statement may hold on this SQLite build.

    Args:
        version: ``sqlite_version()``, e.g. ``"3.40.1"``.
        compile_options: the rows of ``PRAGMA compile_options``.
    """
    for option in compile_options:
        found = re.fullmatch(r"MAX_VARIABLE_NUMBER=(\d+)", option)
        if found:
            return int(found.group(1))
    numbers = tuple(int(part) for part in re.findall(r"\d+", version)[:3])
    return _MODERN_SQLITE_VARIABLE_LIMIT if numbers >= (3, 32, 0) else _OLD_SQLITE_VARIABLE_LIMIT


async def probe_sqlite(conn: AsyncConnection) -> Sqlite:
    """The SQLite dialect, with the parameter limit of the library actually loaded."""
    version = (await conn.exec_driver_sql("SELECT sqlite_version()")).scalar_one()
    options = (await conn.exec_driver_sql("PRAGMA compile_options")).scalars().all()
    return Sqlite(variable_limit=sqlite_variable_limit(str(version), [str(o) for o in options]))
