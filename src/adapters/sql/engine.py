"""From a URL to a connected engine and its dialect; the retry loop every operation runs in.

``postgresql+asyncpg://`` and ``sqlite+aiosqlite:///`` URLs are accepted; any other
URL, or one SQLAlchemy cannot parse, is an :class:`InvalidRequestError` before
any I/O. The engine connects once on opening, so a server that is down or a
credential that is wrong surfaces at ``connect``, as an :class:`IndexRepoError`.

No message names the URL: it may carry a user, a host and a password. Messages
say which kind of database (``postgresql``, ``sqlite``) and what to do.

Every attempt of an operation runs under a client-side timeout (the statement
timeout), so a stalled database fails the call instead of hanging it.
"""

from __future__ import annotations

import asyncio
import math
import random
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, TypeVar

import attrs
import sqlalchemy as sa
from fetchcore.adapters.sql.dialects import Postgres, SqlDialect, Sqlite, probe_sqlite
from fetchcore.adapters.sql.errors import DRIVER_ERRORS, is_transient, translate
from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from fetchcore.errors import IndexRepoError, InvalidRequestError

T = TypeVar("T")
RETRY_CEILINGS_S = (0.05, 0.2, 0.8)
"""Longest pause before each retry of an operation that failed transiently (x4 each)."""


def retry_delays(rng: random.Random | None = None) -> list[float]:
    """The pauses before each retry: each between half its ceiling and the ceiling.

    Jittered, so that the clients a database outage failed together do not all
    come back at the same instant; never below half, so a retry still waits.
    """
    draw = rng or random
    return [draw.uniform(ceiling / 2, ceiling) for ceiling in RETRY_CEILINGS_S]


_DIALECTS: dict[str, Callable[[], SqlDialect]] = {
    "postgresql+asyncpg": Postgres,
    "sqlite+aiosqlite": Sqlite,
}


def _positive(_instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if not isinstance(value, int | float) or isinstance(value, bool) or not value > 0:
        raise InvalidRequestError(f"{attribute.name} must be a positive number, not {value!r}")
    if not math.isfinite(value):
        raise InvalidRequestError(f"{attribute.name} must be finite, not {value!r}")


def _optional_count(_instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 0):
        raise InvalidRequestError(f"{attribute.name} must be a count (>= 0), not {value!r}")


def _optional_positive(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if value is not None:
        _positive(instance, attribute, value)


@attrs.frozen(kw_only=True)
class EngineOptions:
    """Timeouts and pool settings of the engine fetchcore creates (``SqlIndexRepo.connect``).

    Attributes:
        connect_timeout_s: opening one connection (asyncpg ``timeout``).
        statement_timeout_s: one attempt of one index operation, from taking a
            connection to the last row. Enforced on the client (every engine) and,
            on an engine fetchcore creates, on the server too: PostgreSQL's
            ``statement_timeout`` and asyncpg's ``command_timeout``; SQLite's busy
            timeout (waiting for the write lock) is the same figure.
        pool_size, max_overflow, pool_timeout_s, pool_recycle_s, pool_pre_ping:
            SQLAlchemy's pool settings (``None``: SQLAlchemy's default). An
            in-memory SQLite database has one shared connection and no pool.
    """

    connect_timeout_s: float = attrs.field(default=10.0, validator=_positive)
    statement_timeout_s: float = attrs.field(default=30.0, validator=_positive)
    pool_size: int | None = attrs.field(default=None, validator=_optional_count)
    max_overflow: int | None = attrs.field(default=None, validator=_optional_count)
    pool_timeout_s: float | None = attrs.field(default=None, validator=_optional_positive)
    pool_recycle_s: float | None = attrs.field(default=None, validator=_optional_positive)
    pool_pre_ping: bool = False

    def pool_arguments(self) -> dict[str, Any]:
        """The pool keywords of ``create_async_engine`` that were set."""
        chosen = {
            "pool_size": self.pool_size,
            "max_overflow": self.max_overflow,
            "pool_timeout": self.pool_timeout_s,
            "pool_recycle": self.pool_recycle_s,
            "pool_pre_ping": self.pool_pre_ping or None,
        }
        return {name: value for name, value in chosen.items() if value is not None}


def parse_url(url: str | URL) -> URL:
    """``url`` parsed, if it names a supported driver.

    Raises:
        InvalidRequestError: malformed, or not ``postgresql+asyncpg`` / ``sqlite+aiosqlite``.
    """
    try:
        parsed = sa.make_url(url)
        _ = parsed.port  # a non-numeric port only fails when it is read
    except (sa.exc.ArgumentError, ValueError, TypeError) as error:
        # SQLAlchemy's message repeats the URL, password and all: not passed on.
        raise InvalidRequestError(
            "not a database URL: expected postgresql+asyncpg://… or sqlite+aiosqlite:///…"
        ) from error
    if parsed.drivername not in _DIALECTS:
        supported = ", ".join(f"{name}://" for name in sorted(_DIALECTS))
        raise InvalidRequestError(
            f"unsupported database URL scheme {parsed.drivername!r}: use {supported}"
        )
    return parsed


def shown(url: URL) -> str:
    """How messages name the database: its kind only (a URL may hold credentials)."""
    return url.get_backend_name()


def dialect_for(url: URL) -> SqlDialect:
    """The dialect of a supported URL (see :func:`parse_url`)."""
    return _DIALECTS[parse_url(url).drivername]()


async def with_retries(
    operation: Callable[[], Awaitable[T]], name: str, where: str, timeout_s: float | None = None
) -> T:
    """Run ``operation``, again after a jittered pause while it fails transiently.

    The pauses are :func:`retry_delays`.

    Args:
        timeout_s: the time one attempt may take; one that takes longer has failed
            (and is not tried again: a stalled database would only stall again).

    Raises:
        IndexRepoError: it failed for good; the driver's error is the cause.
    """
    for delay in (*retry_delays(), None):
        try:
            async with asyncio.timeout(timeout_s):
                return await operation()
        except DRIVER_ERRORS as error:
            if delay is None or not is_transient(error):
                raise translate(error, name, where) from error
        await asyncio.sleep(delay)
    raise AssertionError("unreachable: the last attempt returns or raises")


def _create_engine(url: URL, dialect: SqlDialect, options: EngineOptions) -> AsyncEngine:
    arguments = dialect.engine_options(url, options)
    if not _in_memory(url):
        arguments.update(options.pool_arguments())
    try:
        engine = create_async_engine(url, **arguments)
    except (sa.exc.ArgumentError, ValueError, TypeError) as error:
        raise InvalidRequestError(
            f"bad {shown(url)} database URL or engine option: {type(error).__name__}"
        ) from error
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
            "SQL index connect on sqlite: the SQLite file cannot be opened: "
            f"its directory {directory} does not exist"
        )


def _in_memory(url: URL) -> bool:
    return url.get_backend_name() == "sqlite" and url.database in (None, "", ":memory:")


async def probe(engine: AsyncEngine, dialect: SqlDialect) -> SqlDialect:
    """Connect once; the dialect as the connected database refines it (SQLite's limits)."""
    async with engine.connect() as conn:
        if isinstance(dialect, Sqlite):
            return await probe_sqlite(conn)
        await conn.exec_driver_sql("SELECT 1")
        return dialect


@asynccontextmanager
async def open_engine(
    url: str | URL, options: EngineOptions | None = None
) -> AsyncIterator[tuple[AsyncEngine, SqlDialect]]:
    """A connected engine for ``url`` and its dialect; disposed of on exit.

    Raises:
        InvalidRequestError: the URL is malformed or names an unsupported driver.
        IndexRepoError: the database cannot be reached or refuses the connection.
    """
    options = options or EngineOptions()
    parsed = parse_url(url)
    _refuse_a_missing_directory(parsed)
    initial = _DIALECTS[parsed.drivername]()
    engine = _create_engine(parsed, initial, options)
    try:
        dialect = await with_retries(
            lambda: probe(engine, initial),
            "connect",
            shown(parsed),
            options.connect_timeout_s + options.statement_timeout_s,
        )
        yield engine, dialect
    finally:
        await engine.dispose()
