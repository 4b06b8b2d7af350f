"""PostgreSQL for the suites: a throwaway database per test session, clean tables per test.

The server is the one at ``FETCHCORE_PG_URL`` (default
``postgresql+asyncpg://postgres@127.0.0.1:5432/test``). The session creates its
own database beside that one (``fetchcore_test_<pid>_<random>``), builds the
schema with the shipped migrations, and drops the database at the end; each
test empties the tables (one TRUNCATE), which is far cheaper than a new schema.

An unreachable server fails every test that needs it, saying why and how to
start it: a missing service is never a skip.
"""

from __future__ import annotations

import asyncio
import os
import secrets
from collections.abc import AsyncIterator, Coroutine, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, TypeVar

import asyncpg
import pytest
import sqlalchemy as sa
from fetchcore.adapters.sql import SqlIndexRepo, upgrade_schema
from fetchcore.adapters.sql.schema import metadata
from sqlalchemy.engine import URL

from fetchcore.ports import IndexRepo

PG_URL_VARIABLE = "FETCHCORE_PG_URL"
DEFAULT_PG_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
START_HINT = "pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start"
T = TypeVar("T")


def server_url() -> URL:
    """The URL of the PostgreSQL server the tests use (its database is left alone)."""
    return sa.make_url(os.environ.get(PG_URL_VARIABLE, DEFAULT_PG_URL))


def _asyncpg_dsn(url: URL) -> str:
    return url.set(drivername="postgresql").render_as_string(hide_password=False)


def _run_aside(coroutine: Coroutine[Any, Any, T]) -> T:
    """Run ``coroutine`` to completion on a loop of its own, whatever loop is running here."""
    with ThreadPoolExecutor(max_workers=1) as thread:
        return thread.submit(asyncio.run, coroutine).result()


async def _admin(url: URL, statement: str) -> None:
    connection = await asyncpg.connect(_asyncpg_dsn(url), timeout=10)
    try:
        await connection.execute(statement)
    finally:
        await connection.close()


def _unreachable(url: URL, error: BaseException) -> str:
    return (
        f"PostgreSQL is unreachable at {url.render_as_string(hide_password=True)} "
        f"({type(error).__name__}: {error}). These tests need it: start it "
        f"(`{START_HINT}`) or point {PG_URL_VARIABLE} at a server."
    )


_SERVER_ERRORS = (OSError, asyncpg.PostgresError, asyncpg.InterfaceError)


async def _create_database(url: URL, name: str) -> None:
    failure = None
    try:
        await _admin(url, f'CREATE DATABASE "{name}"')
    except _SERVER_ERRORS as error:
        failure = _unreachable(url, error)
    if failure:
        pytest.fail(failure, pytrace=False)


def _database_name(purpose: str) -> str:
    return f"fetchcore_{purpose}_{os.getpid()}_{secrets.token_hex(4)}"


@asynccontextmanager
async def scratch_database() -> AsyncIterator[str]:
    """The URL of a new, empty database (no schema) on the test server; dropped on exit."""
    server = server_url()
    name = _database_name("scratch")
    await _create_database(server, name)
    try:
        yield server.set(database=name).render_as_string(hide_password=False)
    finally:
        await _admin(server, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def pg_database_url() -> Iterator[str]:
    """The URL of this session's own database, with the fetchcore schema migrated in."""
    server = server_url()
    name = _database_name("test")
    _run_aside(_create_database(server, name))
    url = server.set(database=name).render_as_string(hide_password=False)
    try:
        _run_aside(upgrade_schema(url))
        yield url
    finally:
        _run_aside(_admin(server, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


async def empty_tables(index: SqlIndexRepo) -> None:
    """Remove every row of the fetchcore tables (the schema stays)."""
    names = ", ".join(f'"{table.name}"' for table in metadata.sorted_tables)
    async with index.engine.begin() as conn:
        await conn.exec_driver_sql(f"TRUNCATE {names}")


@asynccontextmanager
async def postgres_index(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[IndexRepo]:
    """The SQL index on this session's PostgreSQL database, its tables empty."""
    url: str = request.getfixturevalue("pg_database_url")
    async with SqlIndexRepo.connect(url) as index:
        await empty_tables(index)
        yield index
