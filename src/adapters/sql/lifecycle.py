"""The statements behind SqlIndexRepo's lifecycle methods (deleting a repository, references).

Deleting a repository runs in one write transaction, in the table order that
``record`` writes (commits, parent edges, snapshots, membership, locations,
cache, heads), so a deletion and a concurrent record wait for each other
instead of deadlocking. On PostgreSQL the membership table is locked against
concurrent inserts first: an object is released (its locations and cache
deleted) only if no other repository is a member of it, and a record that
makes another repository a member while we decide must wait until we are done
(it then writes the locations it carries again). SQLite runs one writer at a
time, which gives the same guarantee.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from fetchcore.adapters.sql import schema
from sqlalchemy.ext.asyncio import AsyncConnection

from fetchcore.lifecycle import RepositoryDeletion

_members = schema.repo_objects


def released_objects(repo_id: str) -> sa.Select[Any]:
    """The objects ``repo_id`` is a member of and no other repository is."""
    mine = _members.alias("mine")
    others = _members.alias("others")
    shared = sa.exists().where(others.c.object_id == mine.c.object_id, others.c.repo_id != repo_id)
    return sa.select(mine.c.object_id).where(mine.c.repo_id == repo_id, ~shared)


async def _count(conn: AsyncConnection, query: sa.Select[Any]) -> int:
    counted = await conn.execute(sa.select(sa.func.count()).select_from(query.subquery()))
    return int(counted.scalar_one())


async def _delete_rows_of(conn: AsyncConnection, table: sa.Table, repo_id: str) -> int:
    result = await conn.execute(sa.delete(table).where(table.c.repo_id == repo_id))
    return int(result.rowcount)


async def delete_repository(
    conn: AsyncConnection, repo_id: str, *, lock_members: bool
) -> RepositoryDeletion:
    """Delete ``repo_id``'s rows (inside the caller's transaction) and say how many."""
    commits = await _delete_rows_of(conn, schema.commits, repo_id)
    await _delete_rows_of(conn, schema.commit_parents, repo_id)
    snapshots = await _delete_rows_of(conn, schema.snapshots, repo_id)
    if lock_members:
        await conn.execute(sa.text(f"LOCK TABLE {_members.name} IN SHARE ROW EXCLUSIVE MODE"))
    released = released_objects(repo_id)
    released_count = await _count(conn, released)
    for table in (schema.locations, schema.cached):
        await conn.execute(sa.delete(table).where(table.c.object_id.in_(released)))
    objects = await _delete_rows_of(conn, _members, repo_id)
    heads = await _delete_rows_of(conn, schema.branch_heads, repo_id)
    return RepositoryDeletion(
        repo_id=repo_id,
        commits=commits,
        snapshots=snapshots,
        branch_heads=heads,
        objects=objects,
        released_objects=released_count,
    )
