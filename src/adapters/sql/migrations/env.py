"""Alembic environment of fetchcore's SQL index.

Run by ``fetchcore.adapters.sql.migrate`` with an open connection (``config.attributes``),
or by the ``alembic`` command with ``sqlalchemy.url`` set (online, or offline
with ``--sql`` to print the DDL for a DBA).
"""

from __future__ import annotations

import asyncio

import sqlalchemy as sa
from alembic import context
from fetchcore.adapters.sql.engine import open_engine
from fetchcore.adapters.sql.migrate import VERSION_TABLE
from fetchcore.adapters.sql.schema import metadata


def _run_over(connection: sa.Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        version_table=VERSION_TABLE,
        render_as_batch=connection.dialect.name == "sqlite",
    )
    with context.begin_transaction():
        context.run_migrations()


async def _run_at(url: str) -> None:
    async with open_engine(url) as (engine, dialect), engine.connect() as conn:
        conn = await conn.execution_options(**dialect.write_options)
        async with conn.begin():
            await dialect.lock_for_migration(conn)
            await conn.run_sync(_run_over)


def _run_offline(url: str) -> None:
    context.configure(
        url=url,
        target_metadata=metadata,
        version_table=VERSION_TABLE,
        literal_binds=True,
        dialect_opts={"paramstyle": "named"},
    )
    with context.begin_transaction():
        context.run_migrations()


def _run() -> None:
    connection = context.config.attributes.get("connection")
    if connection is not None:
        _run_over(connection)
        return
    url = context.config.get_main_option("sqlalchemy.url")
    if not url:
        raise RuntimeError(
            "set sqlalchemy.url (or run python -m fetchcore.adapters.sql.migrate URL)"
        )
    if context.is_offline_mode():
        _run_offline(url)
    else:
        asyncio.run(_run_at(url))


_run()
