"""Pass-through wrappers of the ports: subclass one and override only what differs.

A test double that makes ``record`` fail, or a store that counts reads in
flight, needs one or two methods of its own; everything else goes to
``inner`` unchanged.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence

import attrs

from fetchcore.model import Commit, IndexBatch, Location, Snapshot
from fetchcore.ports import FetchUpload, IndexRepo, ObjectStore, PushUpload, retries_its_reads


@attrs.define
class ObjectStoreWrapper:
    """An ObjectStore that hands every call to ``inner``."""

    inner: ObjectStore

    @property
    def retries_reads(self) -> bool:
        """What ``inner`` declares: its reads are its own, retries included. A subclass
        that adds read faults of its own overrides this with False."""
        return retries_its_reads(self.inner)

    async def get_object(self, object_id: str) -> bytes | None:
        return await self.inner.get_object(object_id)

    async def put_object(self, object_id: str, data: bytes) -> None:
        await self.inner.put_object(object_id, data)

    async def get_mpack(self, mpack_id: str) -> bytes | None:
        return await self.inner.get_mpack(mpack_id)

    async def get_mpack_range(self, mpack_id: str, start: int, end: int) -> bytes | None:
        return await self.inner.get_mpack_range(mpack_id, start, end)

    async def put_mpack(self, mpack_id: str, data: bytes) -> None:
        await self.inner.put_mpack(mpack_id, data)

    async def has_mpack(self, mpack_id: str) -> bool | None:
        return await self.inner.has_mpack(mpack_id)

    async def presign_mpack(self, mpack_id: str, ttl_s: int) -> str | None:
        return await self.inner.presign_mpack(mpack_id, ttl_s)

    async def open_fetch(self, fetch_id: str) -> FetchUpload:
        return await self.inner.open_fetch(fetch_id)

    async def fetch_intact(self, fetch_id: str) -> bool | None:
        return await self.inner.fetch_intact(fetch_id)

    async def get_fetch(self, fetch_id: str) -> bytes | None:
        return await self.inner.get_fetch(fetch_id)

    async def presign_fetch(self, fetch_id: str, ttl_s: int) -> str | None:
        return await self.inner.presign_fetch(fetch_id, ttl_s)

    async def open_push(self) -> PushUpload:
        return await self.inner.open_push()

    async def sweep_staging(self, min_age_s: float) -> int:
        return await self.inner.sweep_staging(min_age_s)


@attrs.define
class IndexRepoWrapper:
    """An IndexRepo that hands every call to ``inner``."""

    inner: IndexRepo

    async def record(self, repo_id: str, batch: IndexBatch) -> None:
        await self.inner.record(repo_id, batch)

    async def resolve_commits(
        self, repo_id: str, want: Collection[str], have: Collection[str]
    ) -> Sequence[Commit]:
        return await self.inner.resolve_commits(repo_id, want, have)

    async def load_commits(self, repo_id: str, commit_ids: Collection[str]) -> Sequence[Commit]:
        return await self.inner.load_commits(repo_id, commit_ids)

    async def load_snapshots(
        self, repo_id: str, snapshot_ids: Collection[str]
    ) -> Sequence[Snapshot]:
        return await self.inner.load_snapshots(repo_id, snapshot_ids)

    async def known_objects(self, repo_id: str, object_ids: Collection[str]) -> Collection[str]:
        return await self.inner.known_objects(repo_id, object_ids)

    async def find_cached(self, object_ids: Collection[str]) -> Mapping[str, bytes]:
        return await self.inner.find_cached(object_ids)

    async def find_locations(self, object_ids: Collection[str]) -> Mapping[str, Sequence[Location]]:
        return await self.inner.find_locations(object_ids)

    async def branch_heads(self, repo_id: str) -> Mapping[str, str]:
        return await self.inner.branch_heads(repo_id)
