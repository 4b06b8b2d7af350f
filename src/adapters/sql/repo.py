"""SqlIndexRepo: the IndexRepo port on PostgreSQL (asyncpg) or SQLite (aiosqlite).

Theory of operation. Every method is a constant number of statements, whatever
the number of ids: lookups bind the ids as one array (PostgreSQL) or as chunks
under SQLite's parameter limit; ``resolve_commits`` checks the wanted ids, then
walks the graph in one statement with two recursive CTEs (the ``have`` side,
and the ``want`` side pruned where it meets it), and orders the result with
:func:`fetchcore.graph.parents_first`, as the memory index does. ``record``
writes one transaction, one bulk statement per table, conflicts ignored (branch
heads overwritten), so recording a batch again changes nothing.

Each public method runs at the boundary: ids that no row can hold are dropped
before the query, transient faults are retried, and whatever still fails
leaves as a fetchcore error with the driver's error as its cause. Each attempt
runs under the statement timeout: a stalled database fails the call.

The index has its own connection pool, so the calls of one fetch may overlap
(``concurrent_calls``), on an engine it created or on one a hub handed over.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import (
    AsyncIterator,
    Callable,
    Collection,
    Coroutine,
    Iterator,
    Mapping,
    Sequence,
)
from contextlib import (
    AbstractAsyncContextManager,
    asynccontextmanager,
    contextmanager,
    nullcontext,
)
from typing import Any, ClassVar, Concatenate, ParamSpec, TypeVar

import attrs
import sqlalchemy as sa
from fetchcore.adapters.sql import lifecycle, rows, schema
from fetchcore.adapters.sql.dialects import SqlDialect
from fetchcore.adapters.sql.engine import (
    EngineOptions,
    dialect_for,
    open_engine,
    probe,
    shown,
    with_retries,
)
from fetchcore.adapters.sql.migrate import upgrade_engine
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from fetchcore.errors import UnknownCommitError
from fetchcore.graph import parents_first
from fetchcore.lifecycle import RepositoryDeletion
from fetchcore.model import Commit, IndexBatch, Location, Snapshot
from fetchcore.validation import check_repo_id

P = ParamSpec("P")
T = TypeVar("T")

_commits = schema.commits
_parents = schema.commit_parents


def _at_the_boundary(
    method: Callable[Concatenate[SqlIndexRepo, P], Coroutine[Any, Any, T]],
) -> Callable[Concatenate[SqlIndexRepo, P], Coroutine[Any, Any, T]]:
    """Retry ``method`` on transient faults; translate what still fails into fetchcore errors."""

    @functools.wraps(method)
    async def wrapper(self: SqlIndexRepo, /, *args: P.args, **kwargs: P.kwargs) -> T:
        return await with_retries(
            lambda: method(self, *args, **kwargs),
            method.__name__,
            shown(self.engine.url),
            self.statement_timeout_s,
        )

    return wrapper


@attrs.define
class SqlIndexRepo:
    """The index in SQL tables (``fetchcore_*``), for PostgreSQL and SQLite alike.

    Open it with :meth:`connect` (fetchcore creates the engine and disposes of it
    when the block exits) or :meth:`from_engine` (a hub's own engine).
    """

    concurrent_calls: ClassVar[bool] = True
    """Calls may overlap: each takes its own connection from the pool."""

    engine: AsyncEngine
    dialect: SqlDialect
    _one_at_a_time: asyncio.Lock | None = None
    statement_timeout_s: float = EngineOptions().statement_timeout_s

    @classmethod
    @asynccontextmanager
    async def connect(
        cls,
        url: str,
        *,
        create_schema: bool = False,
        connect_timeout_s: float = EngineOptions().connect_timeout_s,
        statement_timeout_s: float = EngineOptions().statement_timeout_s,
        pool_size: int | None = None,
        max_overflow: int | None = None,
        pool_timeout_s: float | None = None,
        pool_recycle_s: float | None = None,
        pool_pre_ping: bool = False,
    ) -> AsyncIterator[SqlIndexRepo]:
        """Open the index at ``url`` for the duration of an ``async with`` block.

        Args:
            url: ``postgresql+asyncpg://user:password@host:port/database`` or
                ``sqlite+aiosqlite:///path/to/file.db`` (``sqlite+aiosqlite://``
                alone is a private in-memory database).
            create_schema: run the shipped migrations first, creating missing
                tables (production runs ``python -m fetchcore.adapters.sql.migrate``).
            connect_timeout_s: opening one connection.
            statement_timeout_s: one attempt of one operation; a longer one fails
                with :class:`IndexRepoError` (on PostgreSQL also the server's
                ``statement_timeout``; on SQLite the busy timeout).
            pool_size, max_overflow, pool_timeout_s, pool_recycle_s, pool_pre_ping:
                SQLAlchemy's pool settings; ``None`` keeps SQLAlchemy's default.

        Returns:
            An async context manager that yields the connected index.

        Raises:
            InvalidRequestError: the URL or an option is malformed, or the URL
                names an unsupported driver.
            IndexRepoError: the database cannot be reached, refuses the
                credentials, or the migration failed.
        """
        options = EngineOptions(
            connect_timeout_s=connect_timeout_s,
            statement_timeout_s=statement_timeout_s,
            pool_size=pool_size,
            max_overflow=max_overflow,
            pool_timeout_s=pool_timeout_s,
            pool_recycle_s=pool_recycle_s,
            pool_pre_ping=pool_pre_ping,
        )
        async with open_engine(url, options) as (engine, dialect):
            index = cls(engine, dialect, _one_at_a_time_for(engine), statement_timeout_s)
            if create_schema:
                await index.upgrade_schema()
            yield index

    @classmethod
    async def from_engine(
        cls,
        engine: AsyncEngine,
        *,
        create_schema: bool = False,
        statement_timeout_s: float = EngineOptions().statement_timeout_s,
    ) -> SqlIndexRepo:
        """The index on a hub's own engine (created once at start-up, shared with the hub).

        The engine stays the hub's: fetchcore never disposes of it. Its pool,
        connect arguments and server settings are the hub's and apply as they
        are; fetchcore adds its client-side ``statement_timeout_s`` to every
        attempt of every operation. On SQLite it installs its connection setup
        on the engine (WAL mode; explicit ``BEGIN``, ``IMMEDIATE`` for writes).

        Args:
            engine: a ``postgresql+asyncpg`` or ``sqlite+aiosqlite`` AsyncEngine.
            create_schema: run the shipped migrations first.
            statement_timeout_s: one attempt of one operation; a longer one fails.

        Raises:
            InvalidRequestError: the engine's driver is not supported.
            IndexRepoError: the database cannot be reached, or the migration failed.
        """
        EngineOptions(statement_timeout_s=statement_timeout_s)  # validates it
        initial = dialect_for(engine.url)
        initial.prepare(engine)
        dialect = await with_retries(
            lambda: probe(engine, initial), "connect", shown(engine.url), statement_timeout_s
        )
        index = cls(engine, dialect, _one_at_a_time_for(engine), statement_timeout_s)
        if create_schema:
            await index.upgrade_schema()
        return index

    @_at_the_boundary
    async def upgrade_schema(self) -> None:
        """Create missing tables and upgrade old ones, with the shipped migrations.

        Raises:
            IndexRepoError: the migration failed.
        """
        async with self._exclusive():
            await upgrade_engine(self.engine, self.dialect)

    @contextmanager
    def statements(self) -> Iterator[list[str]]:
        """Every SQL statement this index sends while the block runs (to count round trips)."""
        sent: list[str] = []

        def count(*args: Any) -> None:
            sent.append(str(args[2]))

        sa.event.listen(self.engine.sync_engine, "before_cursor_execute", count)
        try:
            yield sent
        finally:
            sa.event.remove(self.engine.sync_engine, "before_cursor_execute", count)

    # ── writing ──────────────────────────────────────────────────────────────

    async def record(self, repo_id: str, batch: IndexBatch) -> None:
        """Write ``batch`` in one transaction: all of it or nothing. Idempotent.

        The repository becomes a member of every object in ``batch.object_ids()``.
        Commits, snapshots, locations and cached content already recorded are
        kept as they are; ``batch.branch_heads`` overwrite those branches only.

        Raises:
            InvalidRequestError: the batch holds something the index cannot
                store (nothing is written).
            IndexRepoError: the database failed (nothing is written).
        """
        prepared = rows.batch_rows(repo_id, batch)
        await self._write(prepared)

    @_at_the_boundary
    async def _write(self, prepared: rows.BatchRows) -> None:
        # Every record writes the tables in this order, rows sorted by key, so
        # overlapping writers wait on each other instead of deadlocking. A commit's
        # parent edges are written only with the commit itself: a later commit under
        # the same id (forged, or merely different) changes neither it nor the graph.
        write = self.dialect.write_rows
        async with self._writing() as conn:
            new = set(await write(conn, _commits, prepared.commits, returning="commit_id"))
            edges = [edge for edge in prepared.commit_parents if edge[1] in new]
            await write(conn, _parents, edges)
            await write(conn, schema.snapshots, prepared.snapshots)
            await write(conn, schema.repo_objects, prepared.repo_objects)
            await write(conn, schema.locations, prepared.locations)
            await write(conn, schema.cached, prepared.cached)
            await write(conn, schema.branch_heads, prepared.branch_heads, update=["commit_id"])

    # ── reading commits and snapshots ────────────────────────────────────────

    async def resolve_commits(
        self, repo_id: str, want: Collection[str], have: Collection[str]
    ) -> Sequence[Commit]:
        """Ancestors-or-self of ``want`` minus ancestors-or-self of ``have``, parents first.

        Raises:
            UnknownCommitError: some wanted ids are not commits of this repository.
            IndexRepoError: the database failed.
        """
        check_repo_id(repo_id)
        wanted = list(dict.fromkeys(want))
        storable = rows.storable_ids(wanted)
        known = await self._known_commit_ids(repo_id, storable) if storable else set()
        unknown = [commit_id for commit_id in wanted if commit_id not in known]
        if unknown:
            raise UnknownCommitError(unknown)
        if not storable:
            return []
        walked = await self._walk(repo_id, storable, rows.storable_ids(have))
        return parents_first(walked)

    @_at_the_boundary
    async def _known_commit_ids(self, repo_id: str, commit_ids: Sequence[str]) -> set[str]:
        found = await self._select_by_ids(
            sa.select(_commits.c.commit_id).where(_commits.c.repo_id == repo_id),
            _commits.c.commit_id,
            commit_ids,
        )
        return {row[0] for row in found}

    @_at_the_boundary
    async def _walk(self, repo_id: str, want: Sequence[str], have: Sequence[str]) -> list[Commit]:
        statement = self._walk_statement(repo_id, want, have)
        async with self._reading() as conn:
            result = await conn.execute(statement)
            return [rows.commit_from_row(row) for row in result.all()]

    def _walk_statement(
        self, repo_id: str, want: Sequence[str], have: Sequence[str]
    ) -> sa.Select[Any]:
        """One statement: the commits reachable from ``want`` and not from ``have``.

        ``had`` walks up from ``have``; ``wanted`` walks up from ``want`` and stops
        at ``had``: everything above a commit of ``had`` is in ``had`` too, so the
        pruned walk reaches exactly the difference. UNION (not UNION ALL) ends
        both walks on cycles in bad data.
        """
        had = self._ancestors(
            "had", repo_id, self.dialect.in_ids(_commits.c.commit_id, have, "have")
        )
        in_had = sa.select(had.c.commit_id)
        seeds = sa.and_(
            self.dialect.in_ids(_commits.c.commit_id, want, "want"),
            _commits.c.commit_id.not_in(in_had),
        )
        wanted = self._ancestors("wanted", repo_id, seeds, stop=in_had)
        return sa.select(*_commits.c).join(
            wanted,
            sa.and_(_commits.c.repo_id == repo_id, _commits.c.commit_id == wanted.c.commit_id),
        )

    @staticmethod
    def _ancestors(
        name: str,
        repo_id: str,
        seeds: sa.ColumnElement[bool],
        stop: sa.Select[Any] | None = None,
    ) -> sa.CTE:
        """A recursive CTE of the ids reachable by parent edges from the seed commits."""
        start = sa.select(_commits.c.commit_id).where(_commits.c.repo_id == repo_id, seeds)
        walk = start.cte(name, recursive=True)
        step = sa.select(_parents.c.parent_id).where(
            _parents.c.repo_id == repo_id, _parents.c.commit_id == walk.c.commit_id
        )
        if stop is not None:
            step = step.where(_parents.c.parent_id.not_in(stop))
        return walk.union(step)

    @_at_the_boundary
    async def load_commits(self, repo_id: str, commit_ids: Collection[str]) -> Sequence[Commit]:
        """The commits of this repository among ``commit_ids``, in their order; unknown skipped.

        Raises:
            IndexRepoError: the database failed.
        """
        check_repo_id(repo_id)
        asked = rows.storable_ids(commit_ids)
        found = await self._select_by_ids(
            sa.select(*_commits.c).where(_commits.c.repo_id == repo_id), _commits.c.commit_id, asked
        )
        by_id = {row.commit_id: rows.commit_from_row(row) for row in found}
        return [by_id[commit_id] for commit_id in asked if commit_id in by_id]

    @_at_the_boundary
    async def load_snapshots(
        self, repo_id: str, snapshot_ids: Collection[str]
    ) -> Sequence[Snapshot]:
        """The snapshots of this repository among ``snapshot_ids``, in their order.

        Raises:
            IndexRepoError: the database failed.
        """
        check_repo_id(repo_id)
        table = schema.snapshots
        asked = rows.storable_ids(snapshot_ids)
        found = await self._select_by_ids(
            sa.select(*table.c).where(table.c.repo_id == repo_id), table.c.snapshot_id, asked
        )
        by_id = {row.snapshot_id: rows.snapshot_from_row(row) for row in found}
        return [by_id[snapshot_id] for snapshot_id in asked if snapshot_id in by_id]

    @_at_the_boundary
    async def branch_heads(self, repo_id: str) -> Mapping[str, str]:
        """The repository's branch heads: branch name -> commit id.

        Raises:
            IndexRepoError: the database failed.
        """
        check_repo_id(repo_id)
        table = schema.branch_heads
        query = sa.select(table.c.branch, table.c.commit_id).where(table.c.repo_id == repo_id)
        async with self._reading() as conn:
            result = await conn.execute(query.order_by(table.c.branch))
            return {row.branch: row.commit_id for row in result.all()}

    # ── reading objects ──────────────────────────────────────────────────────

    @_at_the_boundary
    async def known_objects(self, repo_id: str, object_ids: Collection[str]) -> Collection[str]:
        """The ids among ``object_ids`` (canonical) that this repository has.

        Raises:
            IndexRepoError: the database failed.
        """
        check_repo_id(repo_id)
        table = schema.repo_objects
        found = await self._select_by_ids(
            sa.select(table.c.object_id).where(table.c.repo_id == repo_id),
            table.c.object_id,
            rows.storable_ids(object_ids),
        )
        return {row[0] for row in found}

    @_at_the_boundary
    async def find_cached(self, object_ids: Collection[str]) -> Mapping[str, bytes]:
        """Cached decoded content of the ids (canonical) that have some.

        Raises:
            IndexRepoError: the database failed.
        """
        table = schema.cached
        found = await self._select_by_ids(
            sa.select(table.c.object_id, table.c.content),
            table.c.object_id,
            rows.storable_ids(object_ids),
        )
        return {row.object_id: bytes(row.content) for row in found}

    @_at_the_boundary
    async def find_locations(self, object_ids: Collection[str]) -> Mapping[str, Sequence[Location]]:
        """Every known mpack location of the ids (canonical) that have one.

        An object's locations come in one order on every backend: by mpack id,
        then offset, length, encoding and mpack size.

        Raises:
            IndexRepoError: the database failed.
        """
        table = schema.locations
        aggregate = self.dialect.aggregate
        by_mpack = sa.select(
            table.c.mpack_id,
            *(aggregate(table.c[name]) for name in rows.LOCATION_COLUMNS),
        ).group_by(table.c.mpack_id)
        ids = rows.storable_ids(object_ids)
        found = await self._select_by_ids(by_mpack, table.c.object_id, ids)
        return rows.locations_from_groups(found, self.dialect.aggregated)

    # ── lifecycle (fetchcore.lifecycle.IndexLifecycle) ─────────────────────────

    @_at_the_boundary
    async def delete_repository(self, repo_id: str) -> RepositoryDeletion:
        """Delete the repository's commits, snapshots, membership and heads in one
        transaction, and the locations and cache of objects no other repository has.

        Raises:
            IndexRepoError: the database failed (nothing was deleted).
        """
        check_repo_id(repo_id)
        on_postgres = self.engine.url.get_backend_name() == "postgresql"
        async with self._writing() as conn:
            return await lifecycle.delete_repository(conn, repo_id, lock_members=on_postgres)

    @_at_the_boundary
    async def referenced_mpacks(self, mpack_ids: Collection[str]) -> Collection[str]:
        """The ids among ``mpack_ids`` that some location points into.

        Raises:
            IndexRepoError: the database failed.
        """
        table = schema.locations
        found = await self._select_by_ids(
            sa.select(table.c.mpack_id).distinct(), table.c.mpack_id, rows.storable_ids(mpack_ids)
        )
        return {row[0] for row in found}

    # ── connections ──────────────────────────────────────────────────────────

    async def _select_by_ids(
        self, query: sa.Select[Any], column: sa.ColumnElement[str], ids: Sequence[str]
    ) -> list[sa.Row[Any]]:
        """The rows of ``query`` whose ``column`` is among ``ids``: a constant number of queries."""
        if not ids:
            return []
        found: list[sa.Row[Any]] = []
        async with self._reading() as conn:
            for condition in self.dialect.in_id_chunks(column, ids):
                result = await conn.execute(query.where(condition))
                found.extend(result.all())  # all at once: row by row costs microseconds a row
        return found

    def _exclusive(self) -> AbstractAsyncContextManager[object]:
        """Holds the one connection of an in-memory SQLite database; elsewhere nothing."""
        return self._one_at_a_time or nullcontext()

    @asynccontextmanager
    async def _reading(self) -> AsyncIterator[AsyncConnection]:
        async with self._exclusive(), self.engine.connect() as conn:
            yield await conn.execution_options(**self.dialect.read_options)

    @asynccontextmanager
    async def _writing(self) -> AsyncIterator[AsyncConnection]:
        async with self._exclusive(), self.engine.connect() as conn:
            conn = await conn.execution_options(**self.dialect.write_options)
            async with conn.begin():
                yield conn


def _one_at_a_time_for(engine: AsyncEngine) -> asyncio.Lock | None:
    """A lock for an in-memory SQLite database, whose one connection all calls share."""
    in_memory = engine.url.get_backend_name() == "sqlite" and engine.url.database in (
        None,
        "",
        ":memory:",
    )
    return asyncio.Lock() if in_memory else None
