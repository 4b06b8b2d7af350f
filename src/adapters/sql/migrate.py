"""Schema migrations: the Alembic scripts shipped in ``adapters/sql/migrations``.

Production databases get their schema from these migrations, never from
``create_all``: revision 0001 creates every table, later revisions upgrade
them. ``SqlIndexRepo.connect(url, create_schema=True)`` runs the same scripts,
so a database it created can be upgraded by a later release.

fetchcore keeps its revision in its own table, ``fetchcore_alembic_version``,
so a hub's Alembic history and fetchcore's live side by side in one database.
Migrations run in one transaction, under a lock (an advisory lock on
PostgreSQL, the write lock on SQLite): hub replicas starting together upgrade
the schema once.

Three ways for a hub to run them:
- ``python -m fetchcore.adapters.sql.migrate URL [REVISION]`` (REVISION defaults to head);
- ``await fetchcore.adapters.sql.upgrade_schema(url)`` from the hub's own startup code;
- the ``alembic`` command, with ``script_location = fetchcore.adapters.sql:migrations``
  and ``sqlalchemy.url`` in an ini file of the hub's.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory
from alembic.util import CommandError
from fetchcore.adapters.sql.dialects import SqlDialect
from fetchcore.adapters.sql.engine import open_engine, shown, with_retries
from sqlalchemy.ext.asyncio import AsyncEngine

from fetchcore.errors import IndexRepoError

MIGRATIONS_DIR = Path(__file__).with_name("migrations")
VERSION_TABLE = "fetchcore_alembic_version"


def alembic_config(url: str | None = None) -> Config:
    """An Alembic configuration for fetchcore's migrations (no ini file needed)."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    if url is not None:
        config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def head_revision() -> str:
    """The newest revision shipped with this release."""
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    if head is None:
        raise RuntimeError(f"no migrations found in {MIGRATIONS_DIR}")
    return head


def _upgrade_over(connection: sa.Connection, revision: str) -> None:
    config = alembic_config()
    config.attributes["connection"] = connection
    try:
        command.upgrade(config, revision)
    except CommandError as error:  # e.g. a revision this release does not ship
        raise IndexRepoError(
            f"cannot migrate the fetchcore schema to {revision}: {error}"
        ) from error


async def upgrade_engine(engine: AsyncEngine, dialect: SqlDialect, revision: str = "head") -> None:
    """Upgrade the schema behind ``engine`` to ``revision``, in one locked transaction.

    Raises:
        IndexRepoError: Alembic cannot reach ``revision`` from the database's revision
            (one this release does not know: a newer fetchcore migrated it).
    """
    async with engine.connect() as conn:
        conn = await conn.execution_options(**dialect.write_options)
        async with conn.begin():
            await dialect.lock_for_migration(conn)
            await conn.run_sync(_upgrade_over, revision)


async def upgrade_schema(url: str, revision: str = "head") -> None:
    """Create or upgrade fetchcore's tables in the database at ``url``.

    Args:
        url: a ``postgresql+asyncpg://`` or ``sqlite+aiosqlite:///`` URL.
        revision: the revision to reach; the newest by default.

    Raises:
        InvalidRequestError: the URL is malformed or unsupported.
        IndexRepoError: the database cannot be reached or the migration failed.
    """
    async with open_engine(url) as (engine, dialect):
        await with_retries(
            lambda: upgrade_engine(engine, dialect, revision), "upgrade_schema", shown(engine.url)
        )


def main(argv: list[str]) -> int:
    """``python -m fetchcore.adapters.sql.migrate URL [REVISION]``."""
    if len(argv) not in (1, 2):
        print("usage: python -m fetchcore.adapters.sql.migrate URL [REVISION]", file=sys.stderr)
        return 2
    url, revision = argv[0], (argv[1] if len(argv) == 2 else "head")
    asyncio.run(upgrade_schema(url, revision))
    print(f"fetchcore schema at {revision}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
