"""From a URL to a connected engine and its dialect; the retry loop every operation runs in.

``postgresql+asyncpg://`` and ``sqlite+aiosqlite:///`` URLs are accepted; any other
URL, or one SQLAlchemy cannot parse, is an :class:`InvalidRequestError` before
any I/O. The engine connects once on opening, so a server that is down or a
credential that is wrong surfaces at ``connect``, as an :class:`IndexRepoError`.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TypeVar

import sqlalchemy as sa
from fetchcore.adapters.sql.dialects import Postgres, SqlDialect, Sqlite, probe_sqlite
from fetchcore.adapters.sql.errors import DRIVER_ERRORS, is_transient, translate
from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from fetchcore.errors import IndexRepoError, InvalidRequestError

T = TypeVar("T")
RETRY_DELAYS_S = (0.05, 0.2, 0.5)
"""Pauses between the attempts of an operation that failed transiently."""

_DIALECTS: dict[str, Callable[[], SqlDialect]] = {
    "postgresql+asyncpg": Postgres,
    "sqlite+aiosqlite": Sqlite,
}


def parse_url(url: str | URL) -> URL:
    """``url`` parsed, if it names a supported driver.

    Raises:
        InvalidRequestError: malformed, or not ``postgresql+asyncpg`` / ``sqlite+aiosqlite``.
    """
    try:
        parsed = sa.make_url(url)
        _ = parsed.port  # a non-numeric port only fails when it is read
    except (sa.exc.ArgumentError, ValueError, TypeError) as error:
        raise InvalidRequestError(f"not a database URL: {error}") from error
    if parsed.drivername not in _DIALECTS:
        supported = ", ".join(f"{name}://" for name in sorted(_DIALECTS))
        raise InvalidRequestError(
            f"unsupported database URL scheme {parsed.drivername!r}: use {supported}"
        )
    return parsed


def shown(url: URL) -> str:
    """The URL as it may appear in messages and logs: the password hidden."""
    return url.render_as_string(hide_password=True)


async def with_retries(operation: Callable[[], Awaitable[T]], name: str, where: str) -> T:
    """Run ``operation``, again after a pause while it fails transiently.

    Raises:
        IndexRepoError: it failed for good; the driver's error is the cause.
    """
    for delay in (*RETRY_DELAYS_S, None):
        try:
            return await operation()
        except DRIVER_ERRORS as error:
            if delay is None or not is_transient(error):
                raise translate(error, name, where) from error
        await asyncio.sleep(delay)
    raise AssertionError("unreachable: the last attempt returns or raises")


def _create_engine(url: URL, dialect: SqlDialect) -> AsyncEngine:
    try:
        engine = create_async_engine(url, **dialect.engine_options(url))
    except (sa.exc.ArgumentError, ValueError, TypeError) as error:
        raise InvalidRequestError(f"bad database URL {shown(url)}: {error}") from error
    dialect.prepare(engine)
    return engine


def _refuse_a_missing_directory(url: URL) -> None:
    """A SQLite file in a directory that does not exist cannot be opened: say so plainly.

    (Checked here rather than left to the driver: aiosqlite's worker thread outlives a
    failed open and answers into whatever event loop is left.)
    """
    if url.get_backend_name() != "sqlite" or url.database in (None, "", ":memory:"):
        return
    directory = Path(str(url.database)).parent
    if not directory.is_dir():
        raise IndexRepoError(
            f"SQL index connect at {shown(url)}: the SQLite file cannot be opened: "
            f"its directory {directory} does not exist"
        )


async def _probe(engine: AsyncEngine, dialect: SqlDialect) -> SqlDialect:
    async with engine.connect() as conn:
        if isinstance(dialect, Sqlite):
            return await probe_sqlite(conn)
        await conn.exec_driver_sql("SELECT 1")
        return dialect


@asynccontextmanager
async def open_engine(url: str | URL) -> AsyncIterator[tuple[AsyncEngine, SqlDialect]]:
    """A connected engine for ``url`` and its dialect; disposed of on exit.

    Raises:
        InvalidRequestError: the URL is malformed or names an unsupported driver.
        IndexRepoError: the database cannot be reached or refuses the connection.
    """
    parsed = parse_url(url)
    _refuse_a_missing_directory(parsed)
    initial = _DIALECTS[parsed.drivername]()
    engine = _create_engine(parsed, initial)
    try:
        dialect = await with_retries(lambda: _probe(engine, initial), "connect", shown(parsed))
        yield engine, dialect
    finally:
        await engine.dispose()
