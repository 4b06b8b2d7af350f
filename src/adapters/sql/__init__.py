"""The SQL index: fetchcore's IndexRepo on PostgreSQL (production) or SQLite (embedded).

::

    from fetchcore.adapters.sql import SqlIndexRepo

    async with SqlIndexRepo.connect("sqlite+aiosqlite:///index.db", create_schema=True) as index:
        await serve_fetch(index, store, repo_id=..., want=[...])

One adapter, written once with SQLAlchemy 2 Core (async), serves both
databases; what differs between them lives in :mod:`fetchcore.adapters.sql.dialects`.
The tables (``fetchcore_*``) are in :mod:`fetchcore.adapters.sql.schema`; production
creates and upgrades them with the Alembic migrations shipped in
``adapters/sql/migrations`` (see :mod:`fetchcore.adapters.sql.migrate`).
"""

from fetchcore.adapters.sql.migrate import upgrade_schema
from fetchcore.adapters.sql.repo import SqlIndexRepo

__all__ = ["SqlIndexRepo", "upgrade_schema"]
