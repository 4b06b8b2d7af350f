"""What the SQL index promises beyond the IndexRepo contract, on SQLite and PostgreSQL.

Connection trouble becomes fetchcore errors; the shipped migrations build the
schema the adapter declares; lookups and walks take a constant number of
statements; input a database cannot hold is refused before any write;
separate connections (as separate hub processes) write at once; a dropped
connection is retried.
"""

from __future__ import annotations

import asyncio
import random
import socket
import sqlite3
import subprocess
import sys
import threading
import time
import warnings
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, cast

import attrs
import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from fetchcore.adapters.sql import SqlIndexRepo, upgrade_schema
from fetchcore.adapters.sql.dialects import Postgres, Sqlite, sqlite_variable_limit
from fetchcore.adapters.sql.engine import (
    RETRY_CEILINGS_S,
    EngineOptions,
    parse_url,
    retry_delays,
    with_retries,
)
from fetchcore.adapters.sql.migrate import VERSION_TABLE, head_revision
from fetchcore.adapters.sql.schema import metadata
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from fetchcore import (
    Commit,
    FetchError,
    IndexBatch,
    IndexRepoError,
    InvalidRequestError,
    Location,
    Snapshot,
    UnknownCommitError,
)
from fetchcore.testing import blob_id, fake_id
from tests.pg_support import empty_tables, scratch_database, server_url

REPO = "repo"
MPACK = fake_id("mpack")
DIALECTS = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]


# ── fixtures ─────────────────────────────────────────────────────────────────


@pytest.fixture(params=DIALECTS)
async def empty_database_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """A database with no tables at all."""
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'empty.db'}"
    else:
        async with scratch_database() as url:
            yield url


@pytest.fixture(params=DIALECTS)
async def index_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A database with the schema and no rows."""
    if request.param == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp_path / 'index.db'}"
        await upgrade_schema(url)
    else:
        url = request.getfixturevalue("pg_database_url")
        async with SqlIndexRepo.connect(url) as index:
            await empty_tables(index)
    return url


@pytest.fixture
async def sql_index(index_url: str) -> AsyncIterator[SqlIndexRepo]:
    async with SqlIndexRepo.connect(index_url) as index:
        yield index


def free_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


async def open_and_use(url: str) -> None:
    async with SqlIndexRepo.connect(url) as index:
        await index.branch_heads(REPO)


def driver_error_of(raised: pytest.ExceptionInfo[FetchError]) -> BaseException:
    cause = raised.value.__cause__
    assert cause is not None
    assert not isinstance(cause, FetchError)
    return cause


# ── connection trouble ───────────────────────────────────────────────────────


async def threads_ended(target_name: str, *, within_s: float) -> None:
    """Poll until no live thread runs ``target_name`` (Python names a thread after its
    target); fail if one still runs after ``within_s``."""
    deadline = time.monotonic() + within_s
    while any(target_name in t.name and t.is_alive() for t in threading.enumerate()):
        assert time.monotonic() < deadline, f"a {target_name} thread still runs after {within_s} s"
        await asyncio.sleep(0.005)


class TestConnectionTrouble:
    @pytest.mark.postgres
    async def test_a_closed_port_is_an_index_error_that_hides_the_password(self) -> None:
        url = f"postgresql+asyncpg://postgres:sekrit@127.0.0.1:{free_port()}/test"
        with pytest.raises(IndexRepoError) as raised:
            await open_and_use(url)
        assert isinstance(driver_error_of(raised), OSError)
        assert "cannot reach the database server" in str(raised.value)
        assert "sekrit" not in str(raised.value)

    @pytest.mark.postgres
    async def test_an_unknown_user_is_an_index_error(self, pg_database_url: str) -> None:
        url = sa.make_url(pg_database_url).set(username="fetchcore_nobody", password="wrong")
        with pytest.raises(IndexRepoError) as raised:
            await open_and_use(url.render_as_string(hide_password=False))
        driver_error_of(raised)
        assert "refused this user" in str(raised.value)
        assert "wrong" not in str(raised.value)

    @pytest.mark.postgres
    async def test_a_missing_database_is_an_index_error(self, pg_database_url: str) -> None:
        url = server_url().set(database="fetchcore_no_such_database")
        with pytest.raises(IndexRepoError) as raised:
            await open_and_use(url.render_as_string(hide_password=False))
        driver_error_of(raised)
        assert "does not exist" in str(raised.value)

    async def test_an_sqlite_file_that_cannot_be_opened_is_an_index_error(
        self, tmp_path: Path
    ) -> None:
        with pytest.raises(IndexRepoError) as raised:
            await open_and_use(f"sqlite+aiosqlite:///{tmp_path / 'no-such-dir' / 'index.db'}")
        assert "no-such-dir does not exist" in str(raised.value)
        (tmp_path / "a-directory.db").mkdir()
        with pytest.raises(IndexRepoError) as raised:
            await open_and_use(f"sqlite+aiosqlite:///{tmp_path / 'a-directory.db'}")
        driver_error_of(raised)
        # aiosqlite's worker thread answers a failed open late: wait for it to end.
        await threads_ended("_connection_worker_thread", within_s=5.0)

    @pytest.mark.parametrize(
        "url",
        [
            "",
            "not a url",
            "mysql+aiomysql://user@127.0.0.1/db",
            "postgresql://postgres@127.0.0.1:5432/test",
            "sqlite:///index.db",
            "postgresql+asyncpg://postgres@127.0.0.1:notaport/test",
        ],
    )
    async def test_a_malformed_or_unsupported_url_is_refused(self, url: str) -> None:
        with pytest.raises(InvalidRequestError):
            await open_and_use(url)

    async def test_a_database_without_the_schema_says_to_run_the_migrations(
        self, empty_database_url: str
    ) -> None:
        async with SqlIndexRepo.connect(empty_database_url) as index:
            with pytest.raises(IndexRepoError) as raised:
                await index.find_locations([blob_id(b"x")])
        driver_error_of(raised)
        assert "fetchcore.adapters.sql.migrate" in str(raised.value)


# ── migrations ───────────────────────────────────────────────────────────────


def _schema_differences(connection: sa.Connection) -> list[Any]:
    context = MigrationContext.configure(connection, opts={"version_table": VERSION_TABLE})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "skipping functional index": checked separately
        return list(compare_metadata(context, metadata))


def _location_index_names(connection: sa.Connection) -> set[str]:
    # SQLAlchemy does not reflect SQLite's expression indexes: ask the catalogs.
    query = (
        "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'fetchcore_locations'"
        if connection.dialect.name == "sqlite"
        else "SELECT indexname FROM pg_indexes WHERE tablename = 'fetchcore_locations'"
    )
    return set(connection.execute(sa.text(query)).scalars())


def _version(connection: sa.Connection) -> list[str]:
    return list(connection.execute(sa.text(f"SELECT version_num FROM {VERSION_TABLE}")).scalars())


class TestMigrations:
    async def test_migrations_build_exactly_the_declared_schema(
        self, empty_database_url: str
    ) -> None:
        await upgrade_schema(empty_database_url)
        async with (
            SqlIndexRepo.connect(empty_database_url) as index,
            index.engine.connect() as conn,
        ):
            assert await conn.run_sync(_schema_differences) == []
            assert await conn.run_sync(_location_index_names) == {
                "ix_fetchcore_locations_key",
                "ix_fetchcore_locations_mpack",
            }
            assert await conn.run_sync(_version) == [head_revision()]

    async def test_a_database_at_revision_0001_upgrades_with_its_rows(
        self, empty_database_url: str
    ) -> None:
        await upgrade_schema(empty_database_url, "0001")
        located = blob_id(b"located")
        async with SqlIndexRepo.connect(empty_database_url) as index:
            await index.record(REPO, IndexBatch(locations=[(located, Location(MPACK, 0, 8))]))
        await upgrade_schema(empty_database_url)
        async with (
            SqlIndexRepo.connect(empty_database_url) as index,
            index.engine.connect() as conn,
        ):
            assert "ix_fetchcore_locations_mpack" in await conn.run_sync(_location_index_names)
            assert await conn.run_sync(_version) == [head_revision()]
            assert set(await index.referenced_mpacks([MPACK, fake_id("other")])) == {MPACK}
            assert [loc.mpack_id for loc in (await index.find_locations([located]))[located]] == [
                MPACK
            ]

    async def test_migrating_again_changes_nothing(self, empty_database_url: str) -> None:
        await upgrade_schema(empty_database_url)
        async with SqlIndexRepo.connect(empty_database_url) as index:
            await index.record(REPO, IndexBatch(branch_heads={"main": "c1"}))
        await upgrade_schema(empty_database_url)
        async with SqlIndexRepo.connect(empty_database_url, create_schema=True) as index:
            assert dict(await index.branch_heads(REPO)) == {"main": "c1"}

    async def test_hub_replicas_creating_the_schema_at_once_all_succeed(
        self, empty_database_url: str
    ) -> None:
        async def start_replica() -> None:
            async with SqlIndexRepo.connect(empty_database_url, create_schema=True) as index:
                await index.branch_heads(REPO)

        await asyncio.gather(*(start_replica() for _ in range(4)))

    def test_the_command_line_migrates_a_database(self, tmp_path: Path) -> None:
        database = tmp_path / "index.db"
        url = f"sqlite+aiosqlite:///{database}"
        command = [sys.executable, "-m", "fetchcore.adapters.sql.migrate", url]
        done = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
        assert done.returncode == 0, done.stderr
        with sqlite3.connect(database) as conn:
            (version,) = conn.execute(f"SELECT version_num FROM {VERSION_TABLE}").fetchone()
        assert version == head_revision()

    def test_the_alembic_command_runs_them_from_a_hub_ini_file(self, tmp_path: Path) -> None:
        database = tmp_path / "index.db"
        ini = tmp_path / "fetchcore-alembic.ini"
        ini.write_text(
            "[alembic]\n"
            "script_location = fetchcore.adapters.sql:migrations\n"
            f"sqlalchemy.url = sqlite+aiosqlite:///{database}\n"
        )
        alembic = [sys.executable, "-m", "alembic", "-c", str(ini)]
        offline = subprocess.run(
            [*alembic, "upgrade", "head", "--sql"],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert offline.returncode == 0, offline.stderr
        assert "CREATE TABLE fetchcore_commits" in offline.stdout
        online = subprocess.run(
            [*alembic, "upgrade", "head"], capture_output=True, text=True, timeout=60, check=False
        )
        assert online.returncode == 0, online.stderr
        with sqlite3.connect(database) as conn:
            (version,) = conn.execute(f"SELECT version_num FROM {VERSION_TABLE}").fetchone()
        assert version == head_revision()


# ── round trips ──────────────────────────────────────────────────────────────


async def statements_for(index: SqlIndexRepo, call: Callable[[], Awaitable[object]]) -> int:
    with index.statements() as sent:
        await call()
    return len(sent)


def commits_in_a_row(count: int) -> list[Commit]:
    made = [Commit(fake_id("row-0"), fake_id("s-0"))]
    for i in range(1, count):
        made.append(Commit(fake_id(f"row-{i}"), fake_id(f"s-{i}"), (made[-1].commit_id,)))
    return made


def lookups(index: SqlIndexRepo, object_ids: list[str], commits: list[Commit]) -> dict[str, Any]:
    commit_ids = [c.commit_id for c in commits]
    snapshot_ids = [c.snapshot_id for c in commits]
    return {
        "find_locations": lambda: index.find_locations(object_ids),
        "find_cached": lambda: index.find_cached(object_ids),
        "known_objects": lambda: index.known_objects(REPO, object_ids),
        "load_commits": lambda: index.load_commits(REPO, commit_ids),
        "load_snapshots": lambda: index.load_snapshots(REPO, snapshot_ids),
    }


class TestRoundTrips:
    async def test_lookups_send_as_many_statements_for_ten_ids_as_for_ten_thousand(
        self, sql_index: SqlIndexRepo
    ) -> None:
        object_ids = [blob_id(str(i).encode()) for i in range(10_000)]
        commits = commits_in_a_row(10_000)
        await sql_index.record(
            REPO,
            IndexBatch(
                commits=commits,
                snapshots=[Snapshot(c.snapshot_id, {}) for c in commits],
                locations=[(o, Location(MPACK, i, 1)) for i, o in enumerate(object_ids)],
                cached=[(blob_id(b"x"), b"x")],
            ),
        )
        few = lookups(sql_index, object_ids[:10], commits[:10])
        many = lookups(sql_index, object_ids, commits)
        for name in few:
            assert await statements_for(sql_index, few[name]) <= 2, name
            assert await statements_for(sql_index, many[name]) == await statements_for(
                sql_index, few[name]
            ), name

    async def test_resolving_a_long_history_sends_two_statements(
        self, sql_index: SqlIndexRepo
    ) -> None:
        commits = commits_in_a_row(3_000)
        await sql_index.record(REPO, IndexBatch(commits=commits))
        tip, middle = commits[-1].commit_id, commits[1_500].commit_id
        with sql_index.statements() as sent:
            resolved = await sql_index.resolve_commits(REPO, [tip], [middle])
        assert len(resolved) == 1_499
        assert len([s for s in sent if not s.startswith("BEGIN")]) == 2

    async def test_record_sends_one_statement_per_table(self, sql_index: SqlIndexRepo) -> None:
        object_ids = [blob_id(str(i).encode()) for i in range(5_000)]
        commit = Commit(fake_id("c"), fake_id("s"), (fake_id("p"),))
        batch = IndexBatch(
            commits=[commit],
            snapshots=[Snapshot(commit.snapshot_id, {"f": object_ids[0]})],
            locations=[(o, Location(MPACK, i, 1)) for i, o in enumerate(object_ids)],
            cached=[(blob_id(b"x"), b"x")],
            branch_heads={"main": commit.commit_id},
        )
        with sql_index.statements() as sent:
            await sql_index.record(REPO, batch)
        assert len([s for s in sent if not s.startswith("BEGIN")]) == 7

    async def test_sqlite_splits_ids_at_its_parameter_limit(self, tmp_path: Path) -> None:
        url = f"sqlite+aiosqlite:///{tmp_path / 'index.db'}"
        object_ids = [blob_id(str(i).encode()) for i in range(500)]
        async with SqlIndexRepo.connect(url, create_schema=True) as index:
            await index.record(
                REPO, IndexBatch(locations=[(o, Location(MPACK)) for o in object_ids])
            )
            narrow = attrs.evolve(index, dialect=Sqlite(variable_limit=116))  # 100 ids a query
            with narrow.statements() as sent:
                found = await narrow.find_locations(object_ids)
        assert set(found) == set(object_ids)
        assert len([s for s in sent if not s.startswith("BEGIN")]) == 5

    def test_the_sqlite_parameter_limit_follows_the_library(self) -> None:
        assert sqlite_variable_limit("3.40.1", ["ENABLE_FTS5"]) == 32_766
        assert sqlite_variable_limit("3.31.1", []) == 999
        assert sqlite_variable_limit("3.22.0", ["MAX_VARIABLE_NUMBER=250000"]) == 250_000


# ── input a database cannot hold ─────────────────────────────────────────────


def good_and(bad: Commit) -> IndexBatch:
    good = Commit(fake_id("good"), fake_id("s"))
    return IndexBatch(commits=[good, bad], branch_heads={"main": good.commit_id})


async def assert_nothing_written(index: SqlIndexRepo) -> None:
    assert list(await index.load_commits(REPO, [fake_id("good")])) == []
    assert dict(await index.branch_heads(REPO)) == {}


UNSTORABLE = ["nul\x00inside", "lone \udc80 surrogate"]


class TestUnstorableInput:
    @pytest.mark.parametrize("text", UNSTORABLE, ids=["nul", "surrogate"])
    async def test_such_text_in_any_field_is_refused_and_nothing_is_written(
        self, sql_index: SqlIndexRepo, text: str
    ) -> None:
        batches = [
            good_and(Commit(text, "s")),
            good_and(Commit("c", text)),
            good_and(Commit("c", "s", (text,))),
            IndexBatch(commits=good_and(Commit("c", "s")).commits, branch_heads={text: "c"}),
            IndexBatch(locations=[(blob_id(b"x"), Location(text))]),
            IndexBatch(locations=[(blob_id(b"x"), Location(MPACK, encoding=text))]),
        ]
        for batch in batches:
            with pytest.raises(InvalidRequestError):
                await sql_index.record(REPO, batch)
            with pytest.raises(InvalidRequestError):
                await sql_index.record(text, IndexBatch())
        await assert_nothing_written(sql_index)
        assert dict(await sql_index.find_locations([blob_id(b"x")])) == {}

    @pytest.mark.parametrize("size", [-1, 2**63, 1.5, True])
    async def test_an_offset_that_is_not_a_64_bit_size_is_refused(
        self, sql_index: SqlIndexRepo, size: Any
    ) -> None:
        for location in (
            Location(MPACK, size, 1),
            Location(MPACK, 0, size),
            Location(MPACK, 0, 1, mpack_size=size),
        ):
            with pytest.raises(InvalidRequestError):
                await sql_index.record(REPO, IndexBatch(locations=[(blob_id(b"x"), location)]))

    async def test_fields_msgpack_cannot_encode_are_refused(self, sql_index: SqlIndexRepo) -> None:
        with pytest.raises(InvalidRequestError):
            await sql_index.record(REPO, good_and(Commit("c", "s", (), {"x": object()})))
        await assert_nothing_written(sql_index)

    @pytest.mark.parametrize("text", UNSTORABLE, ids=["nul", "surrogate"])
    async def test_asking_for_such_ids_finds_nothing(
        self, sql_index: SqlIndexRepo, text: str
    ) -> None:
        assert list(await sql_index.load_commits(REPO, [text])) == []
        assert list(await sql_index.load_snapshots(REPO, [text])) == []
        assert set(await sql_index.known_objects(REPO, [text])) == set()
        assert dict(await sql_index.find_locations([text])) == {}
        with pytest.raises(UnknownCommitError) as raised:
            await sql_index.resolve_commits(REPO, [text], [text])
        assert raised.value.commit_ids == (text,)


# ── several connections, dropped connections ─────────────────────────────────


def overlapping_push(n: int) -> IndexBatch:
    shared = [blob_id(f"shared-{i}".encode()) for i in range(2_000)]
    own = [blob_id(f"own-{n}-{i}".encode()) for i in range(500)]
    commits = commits_in_a_row(50)
    tip = Commit(fake_id(f"tip-{n}"), fake_id("s"), (commits[-1].commit_id,))
    return IndexBatch(
        commits=[*commits, tip],
        snapshots=[Snapshot(fake_id("s"), {"f": shared[0]})],
        locations=[(o, Location(MPACK, i, 1, "zstd", 99_999)) for i, o in enumerate(shared + own)],
        cached=[(blob_id(b"shared"), b"shared")],
        branch_heads={"main": tip.commit_id, f"branch-{n}": tip.commit_id},
    )


async def _terminate_other_sessions(index: SqlIndexRepo) -> None:
    kill = sa.text(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
        "WHERE datname = current_database() AND pid <> pg_backend_pid()"
    )
    url = index.engine.url.render_as_string(hide_password=False)
    async with SqlIndexRepo.connect(url) as admin, admin.engine.connect() as conn:
        await conn.execute(kill)


class TestSeveralConnections:
    async def test_eight_processes_record_overlapping_pushes_at_once(self, index_url: str) -> None:
        async def one_process(n: int) -> None:
            async with SqlIndexRepo.connect(index_url) as index:
                await index.record(REPO, overlapping_push(n))

        await asyncio.gather(*(one_process(n) for n in range(8)))
        async with SqlIndexRepo.connect(index_url) as index:
            heads = dict(await index.branch_heads(REPO))
            assert len(heads) == 9
            every_id = [o for n in range(8) for o, _ in overlapping_push(n).locations]
            found = await index.find_locations(every_id)
            assert len(found) == 2_000 + 8 * 500
            assert all(len(locations) == 1 for locations in found.values())

    async def test_an_in_memory_sqlite_index_serves_concurrent_calls(self) -> None:
        async with SqlIndexRepo.connect("sqlite+aiosqlite://", create_schema=True) as index:
            await asyncio.gather(*(index.record(REPO, overlapping_push(n)) for n in range(8)))
            assert len(await index.branch_heads(REPO)) == 9

    @pytest.mark.postgres
    async def test_a_dropped_connection_is_retried(self, pg_database_url: str) -> None:
        async with SqlIndexRepo.connect(pg_database_url) as index:
            await empty_tables(index)
            await index.record(REPO, IndexBatch(branch_heads={"main": "c1"}))
            await _terminate_other_sessions(index)
            assert dict(await index.branch_heads(REPO)) == {"main": "c1"}
            await index.record(REPO, IndexBatch(branch_heads={"main": "c2"}))
            assert dict(await index.branch_heads(REPO)) == {"main": "c2"}


class TestRetries:
    async def test_a_busy_database_is_tried_again(self) -> None:
        attempts: list[int] = []

        async def busy_twice() -> str:
            attempts.append(1)
            if len(attempts) < 3:
                raise sqlite3.OperationalError("database is locked")
            return "done"

        assert await with_retries(busy_twice, "record", "here") == "done"
        assert len(attempts) == 3

    async def test_a_lasting_fault_is_translated_after_the_last_attempt(self) -> None:
        attempts: list[int] = []

        async def always_busy() -> str:
            attempts.append(1)
            raise sqlite3.OperationalError("database is locked")

        with pytest.raises(IndexRepoError) as raised:
            await with_retries(always_busy, "record", "here")
        assert isinstance(raised.value.__cause__, sqlite3.OperationalError)
        assert len(attempts) == 4

    def test_the_pauses_between_attempts_are_jittered_within_their_bounds(self) -> None:
        draws = [retry_delays(random.Random(seed)) for seed in range(200)]
        for ceiling, pauses in zip(RETRY_CEILINGS_S, zip(*draws, strict=True), strict=True):
            assert all(ceiling / 2 <= pause <= ceiling for pause in pauses)
            assert len(set(pauses)) == len(pauses)  # no two clients wait alike
            assert max(pauses) - min(pauses) > ceiling / 4  # spread over the range
        assert list(RETRY_CEILINGS_S) == sorted(RETRY_CEILINGS_S)  # growing: backoff

    async def test_a_fault_that_will_not_pass_is_not_retried(self) -> None:
        attempts: list[int] = []

        async def no_table() -> str:
            attempts.append(1)
            raise sqlite3.OperationalError("no such table: fetchcore_commits")

        with pytest.raises(IndexRepoError):
            await with_retries(no_table, "find_locations", "here")
        assert len(attempts) == 1


# ── bring your own engine; pool options; timeouts ────────────────────────────


async def hold_a_lock(url: str, statement: str) -> AsyncIterator[None]:
    """Another client holds ``statement``'s lock for as long as the caller's block runs."""
    engine = create_async_engine(url)
    try:
        async with engine.connect() as conn, conn.begin():
            await conn.exec_driver_sql(statement)
            yield
    finally:
        await engine.dispose()


holding = asynccontextmanager(hold_a_lock)


@attrs.frozen
class ForeignEngine:
    url: sa.URL


class TestBringYourOwnEngine:
    async def test_an_index_on_a_hubs_engine_reads_and_writes(self, index_url: str) -> None:
        engine = create_async_engine(index_url)
        try:
            index = await SqlIndexRepo.from_engine(engine)
            await index.record(REPO, IndexBatch(branch_heads={"main": "c1"}))
            assert dict(await index.branch_heads(REPO)) == {"main": "c1"}
            async with engine.connect() as conn:  # the hub's engine is still the hub's
                table = metadata.tables["fetchcore_branch_heads"]
                assert (await conn.execute(sa.select(sa.func.count()).select_from(table))).scalar()
        finally:
            await engine.dispose()

    async def test_it_creates_the_schema_when_asked(self, empty_database_url: str) -> None:
        engine = create_async_engine(empty_database_url)
        try:
            index = await SqlIndexRepo.from_engine(engine, create_schema=True)
            assert dict(await index.branch_heads(REPO)) == {}
        finally:
            await engine.dispose()

    async def test_an_engine_of_another_driver_is_refused(self, tmp_path: Path) -> None:
        # Only the URL is read before the refusal (the driver need not be installed).
        engine = ForeignEngine(sa.make_url("postgresql+psycopg://u:sekrit@127.0.0.1/db"))
        with pytest.raises(InvalidRequestError) as raised:
            await SqlIndexRepo.from_engine(cast(AsyncEngine, engine))
        assert "sekrit" not in str(raised.value)

    def test_the_sql_index_declares_that_its_calls_may_overlap(self) -> None:
        assert SqlIndexRepo.concurrent_calls is True
        assert "concurrent_calls" not in attrs.fields_dict(SqlIndexRepo)


class TestPoolOptions:
    @pytest.mark.postgres
    async def test_pool_options_reach_the_engine(self, pg_database_url: str) -> None:
        async with SqlIndexRepo.connect(
            pg_database_url, pool_size=3, max_overflow=1, pool_timeout_s=2.5, pool_recycle_s=60
        ) as index:
            pool: Any = index.engine.pool
            assert (pool.size(), pool._max_overflow, pool._timeout) == (3, 1, 2.5)
            assert pool._recycle == 60
            await index.branch_heads(REPO)

    @pytest.mark.postgres
    async def test_a_pool_of_one_serves_concurrent_calls_one_after_another(
        self, pg_database_url: str
    ) -> None:
        async with SqlIndexRepo.connect(pg_database_url, pool_size=1, max_overflow=0) as index:
            await asyncio.gather(*(index.branch_heads(REPO) for _ in range(8)))

    @pytest.mark.parametrize(
        "option",
        [
            {"pool_size": -1},
            {"max_overflow": 1.5},
            {"statement_timeout_s": 0},
            {"connect_timeout_s": float("inf")},
            {"pool_timeout_s": -2},
        ],
    )
    async def test_a_bad_option_is_refused_before_connecting(
        self, option: dict[str, Any], tmp_path: Path
    ) -> None:
        with pytest.raises(InvalidRequestError):
            async with SqlIndexRepo.connect(f"sqlite+aiosqlite:///{tmp_path}/x.db", **option):
                pass
        assert not (tmp_path / "x.db").exists()


class TestTimeouts:
    @pytest.mark.postgres
    async def test_a_locked_table_fails_the_call_within_the_statement_timeout(
        self, pg_database_url: str
    ) -> None:
        async with SqlIndexRepo.connect(pg_database_url, statement_timeout_s=1) as index:
            await empty_tables(index)
            lock = "LOCK TABLE fetchcore_branch_heads IN ACCESS EXCLUSIVE MODE"
            async with holding(pg_database_url, lock):
                started = time.monotonic()
                with pytest.raises(IndexRepoError) as raised:
                    await index.branch_heads(REPO)
                waited = time.monotonic() - started
            assert 0.9 <= waited < 3
            assert "statement timeout" in str(raised.value)
            assert "127.0.0.1" not in str(raised.value)
            assert dict(await index.branch_heads(REPO)) == {}  # the pool is healthy again

    @pytest.mark.postgres
    async def test_a_statement_that_sleeps_fails_the_call_on_a_hubs_engine(
        self, pg_database_url: str
    ) -> None:
        # The hub's engine sets no server timeout: fetchcore's own client-side one applies.
        engine = create_async_engine(pg_database_url)
        try:
            index = await SqlIndexRepo.from_engine(engine, statement_timeout_s=1)

            async def sleeping() -> None:
                async with index.engine.connect() as conn:
                    await conn.execute(sa.text("SELECT pg_sleep(30)"))

            started = time.monotonic()
            with pytest.raises(IndexRepoError) as raised:
                await with_retries(sleeping, "find_locations", "postgresql", 1)
            assert time.monotonic() - started < 3
            assert "statement timeout" in str(raised.value)
            lock = "LOCK TABLE fetchcore_commits IN ACCESS EXCLUSIVE MODE"
            async with holding(pg_database_url, lock):
                started = time.monotonic()
                with pytest.raises(IndexRepoError):
                    await index.load_commits(REPO, ["c1"])
                assert time.monotonic() - started < 3
            assert list(await index.load_commits(REPO, ["c1"])) == []
        finally:
            await engine.dispose()

    async def test_a_locked_sqlite_database_fails_a_write_within_its_busy_timeouts(
        self, tmp_path: Path
    ) -> None:
        url = f"sqlite+aiosqlite:///{tmp_path / 'index.db'}"
        await upgrade_schema(url)
        async with SqlIndexRepo.connect(url, statement_timeout_s=0.3) as index:
            async with holding(url, "BEGIN IMMEDIATE"):
                started = time.monotonic()
                with pytest.raises(IndexRepoError) as raised:
                    await index.record(REPO, IndexBatch(branch_heads={"main": "c1"}))
                assert time.monotonic() - started < 4  # 4 attempts of 0.3 s, and pauses
            # the busy timeout or the client-side timeout, whichever fires first
            assert "locked" in str(raised.value) or "statement timeout" in str(raised.value)
            await index.record(REPO, IndexBatch(branch_heads={"main": "c1"}))
            assert dict(await index.branch_heads(REPO)) == {"main": "c1"}

    @pytest.mark.postgres
    async def test_no_message_names_the_url(self) -> None:
        url = f"postgresql+asyncpg://hubuser:sekrit@127.0.0.1:{free_port()}/hubdb"
        with pytest.raises(IndexRepoError) as raised:
            await open_and_use(url)
        for part in ("hubuser", "sekrit", "hubdb", "postgresql+asyncpg://"):
            assert part not in str(raised.value)

    def test_a_malformed_url_is_not_repeated(self) -> None:
        with pytest.raises(InvalidRequestError) as raised:
            parse_url("postgresql+asyncpg://u:sekrit@host:notaport/db")
        assert "sekrit" not in str(raised.value)


class TestTheStatementTimeout:
    async def test_an_attempt_past_the_timeout_fails_once_and_is_not_retried(self) -> None:
        attempts: list[int] = []

        async def stalled() -> str:
            attempts.append(1)
            await asyncio.sleep(30)
            return "never"

        started = time.monotonic()
        with pytest.raises(IndexRepoError) as raised:
            await with_retries(stalled, "find_locations", "postgresql", 0.2)
        assert time.monotonic() - started < 2
        assert attempts == [1]
        assert isinstance(raised.value.__cause__, TimeoutError)
        assert "did not answer within the statement timeout" in str(raised.value)

    async def test_an_attempt_within_the_timeout_succeeds(self) -> None:
        async def prompt() -> str:
            await asyncio.sleep(0.01)
            return "done"

        assert await with_retries(prompt, "find_locations", "postgresql", 5) == "done"

    def test_the_server_side_timeouts_follow_the_option(self) -> None:
        options = Postgres().engine_options(
            sa.make_url("postgresql+asyncpg://h/db"),
            EngineOptions(statement_timeout_s=2.5, connect_timeout_s=4),
        )
        connect = options["connect_args"]
        assert connect["command_timeout"] == 2.5
        assert connect["timeout"] == 4
        assert connect["server_settings"]["statement_timeout"] == "2500"
        sqlite_options = Sqlite().engine_options(
            sa.make_url("sqlite+aiosqlite:///x.db"), EngineOptions(statement_timeout_s=7)
        )
        assert sqlite_options["connect_args"]["timeout"] == 7
