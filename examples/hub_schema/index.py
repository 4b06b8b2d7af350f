"""fetchcore's read port (FetchIndex) over the hub's own tables, on the request's session.

Read-only: pushes stay with the hub's own code, so nothing of the write port is
here. It takes the hub's request-scoped ``AsyncSession`` and does not declare
``concurrent_calls``, so fetchcore never overlaps its calls on that session.
The commit walk is fetchcore's own (``commits_to_send``) over the repository's
commits, loaded in one query. Locations have no byte offsets (the hub's mpack
index has none): fetchcore reads those mpacks whole.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from typing import Any

import attrs
import msgpack
import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.asyncio import AsyncSession

from examples.hub_schema import tables as t
from fetchcore.toolkit import Commit, Location, Snapshot, UnknownCommitError, commits_to_send


def _among(column: sa.ColumnElement[str], ids: Collection[str]) -> sa.ColumnElement[bool]:
    """``column IN ids`` as one array parameter, however many ids."""
    return column == sa.any_(sa.bindparam(None, list(ids), type_=ARRAY(sa.Text)))


def _commit(row: sa.Row[Any]) -> Commit:
    fields = {"message": row.message, "author": row.author, "branch": row.branch}
    return Commit(row.commit_id, row.snapshot_id, tuple(row.parent_ids), fields)


@attrs.frozen
class HubFetchIndex:
    """What a fetch reads, from ``hub_*`` tables."""

    session: AsyncSession

    async def resolve_commits(
        self, repo_id: str, want: Collection[str], have: Collection[str]
    ) -> Sequence[Commit]:
        history = {c.commit_id: c for c in await self._commits(repo_id)}
        unknown = [commit_id for commit_id in dict.fromkeys(want) if commit_id not in history]
        if unknown:
            raise UnknownCommitError(unknown)
        return commits_to_send(history, want, have)

    async def load_commits(self, repo_id: str, commit_ids: Collection[str]) -> Sequence[Commit]:
        return await self._commits(repo_id, _among(t.commits.c.commit_id, commit_ids))

    async def load_snapshots(
        self, repo_id: str, snapshot_ids: Collection[str]
    ) -> Sequence[Snapshot]:
        query = (
            sa.select(t.snapshots)
            .join(t.snapshot_refs, t.snapshot_refs.c.snapshot_id == t.snapshots.c.snapshot_id)
            .where(t.snapshot_refs.c.repo_id == repo_id)
            .where(_among(t.snapshots.c.snapshot_id, snapshot_ids))
        )
        rows = (await self.session.execute(query)).all()
        return [
            Snapshot(
                r.snapshot_id, msgpack.unpackb(r.manifest_blob), {"directories": r.directories}
            )
            for r in rows
        ]

    async def find_cached(self, object_ids: Collection[str]) -> Mapping[str, bytes]:
        query = sa.select(t.objects.c.object_id, t.objects.c.content_cache).where(
            _among(t.objects.c.object_id, object_ids), t.objects.c.content_cache.is_not(None)
        )
        return {r.object_id: r.content_cache for r in (await self.session.execute(query)).all()}

    async def find_locations(self, object_ids: Collection[str]) -> Mapping[str, Sequence[Location]]:
        query = sa.select(t.mpack_index.c.entity_id, t.mpack_index.c.mpack_id).where(
            _among(t.mpack_index.c.entity_id, object_ids)
        )
        found: dict[str, list[Location]] = {}
        for row in (await self.session.execute(query)).all():
            found.setdefault(row.entity_id, []).append(Location(row.mpack_id))
        return found

    async def branch_heads(self, repo_id: str) -> Mapping[str, str]:
        query = sa.select(t.branches.c.name, t.branches.c.head_commit_id).where(
            t.branches.c.repo_id == repo_id
        )
        return {r.name: r.head_commit_id for r in (await self.session.execute(query)).all()}

    async def _commits(self, repo_id: str, *where: sa.ColumnElement[bool]) -> list[Commit]:
        query = (
            sa.select(t.commits)
            .join(t.commit_refs, t.commit_refs.c.commit_id == t.commits.c.commit_id)
            .where(t.commit_refs.c.repo_id == repo_id, *where)
        )
        return [_commit(row) for row in (await self.session.execute(query)).all()]
