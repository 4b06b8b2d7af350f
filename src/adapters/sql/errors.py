"""Driver errors into fetchcore errors, with one table; and which of them are worth a retry.

Nothing a driver raises leaves the SQL index as itself: SQLAlchemy, asyncpg,
sqlite3 and socket errors become :class:`IndexRepoError` with the original as
``__cause__`` and a message that says what to do (start the server, check the
credentials, run the migrations). Transient faults (a dropped connection, a
deadlock victim, a serialization failure, a busy SQLite file) are retried by the
caller before they are translated.
"""

from __future__ import annotations

import sqlite3

import sqlalchemy as sa

from fetchcore.errors import IndexRepoError

try:
    import asyncpg
except ImportError:  # pragma: no cover - the sql extra installs it
    _ASYNCPG_ERRORS: tuple[type[BaseException], ...] = ()
else:
    _ASYNCPG_ERRORS = (asyncpg.PostgresError, asyncpg.InterfaceError, asyncpg.InternalClientError)

DRIVER_ERRORS: tuple[type[BaseException], ...] = (
    sa.exc.SQLAlchemyError,
    OSError,
    sqlite3.Error,
    *_ASYNCPG_ERRORS,
)
"""Every error family the database stack raises; each is translated at the boundary."""

_TRANSIENT_SQLSTATES = frozenset({"40001", "40P01", "55P03", "57P01", "57P02", "57P03"})
_TRANSIENT_SQLSTATE_CLASSES = frozenset({"08"})  # connection exceptions
_SQLITE_BUSY_MESSAGES = ("database is locked", "database table is locked", "database is busy")

_ADVICE_BY_SQLSTATE = {
    "28P01": "authentication failed: check the user and password in the URL",
    "28000": "the server refused this user: check the user in the URL",
    "3D000": "the database does not exist: create it first",
    "42P01": "the fetchcore schema is missing: run the migrations "
    "(python -m fetchcore.adapters.sql.migrate URL) or connect with create_schema=True",
    "42703": "the fetchcore schema is outdated: run the migrations "
    "(python -m fetchcore.adapters.sql.migrate URL)",
}
_ADVICE_BY_MESSAGE = {
    "no such table": _ADVICE_BY_SQLSTATE["42P01"],
    "no such column": _ADVICE_BY_SQLSTATE["42703"],
    "unable to open database file": "the SQLite file cannot be opened: check the path",
}


def sqlstate(error: BaseException) -> str | None:
    """The SQLSTATE of a PostgreSQL error, wherever SQLAlchemy wrapped it."""
    seen: list[BaseException] = []
    current: BaseException | None = error
    while current is not None and current not in seen:
        seen.append(current)
        code = getattr(current, "sqlstate", None) or getattr(current, "pgcode", None)
        if isinstance(code, str):
            return code
        current = getattr(current, "orig", None) or current.__cause__
    return None


def is_transient(error: BaseException) -> bool:
    """Whether trying the same operation again may well succeed."""
    if isinstance(error, sa.exc.DBAPIError) and error.connection_invalidated:
        return True
    code = sqlstate(error)
    if code is not None:
        return code in _TRANSIENT_SQLSTATES or code[:2] in _TRANSIENT_SQLSTATE_CLASSES
    if isinstance(error, TimeoutError):
        return False  # a stalled database would stall the next attempt too
    if isinstance(error, ConnectionError):
        return True
    message = str(error).lower()
    return any(busy in message for busy in _SQLITE_BUSY_MESSAGES)


def _advice(error: BaseException) -> str:
    if isinstance(error, TimeoutError) or sqlstate(error) == "57014":
        return "the database did not answer within the statement timeout"
    code = sqlstate(error)
    if code in _ADVICE_BY_SQLSTATE:
        return _ADVICE_BY_SQLSTATE[code]
    message = str(error).lower()
    for fragment, advice in _ADVICE_BY_MESSAGE.items():
        if fragment in message:
            return advice
    if isinstance(error, OSError) or (code or "").startswith("08"):
        return "cannot reach the database server: is it running, and is the URL right?"
    return "the database failed"


def translate(error: BaseException, operation: str, where: str) -> IndexRepoError:
    """The fetchcore error for ``error`` raised during ``operation`` on the index at ``where``.

    Args:
        error: what the driver raised.
        operation: what the index was doing, e.g. ``"find_locations"``.
        where: which kind of database (never its URL: it may hold credentials).

    Returns:
        An :class:`IndexRepoError` to be raised ``from error``.
    """
    detail = f"{type(error).__name__}: {error}".splitlines()[0][:300]
    return IndexRepoError(f"SQL index {operation} on {where}: {_advice(error)} ({detail})")
