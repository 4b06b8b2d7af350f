"""The hub example on PostgreSQL: the read-port contract suite and the seed's FN-1…FN-7.

Both suites put their data in through ``record``; here that writes the hub's own
tables (``HubTables.record``, test code standing in for the hub's push path), and
every read goes through :class:`HubFetchIndex` on one request-scoped session.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Collection
from typing import cast

import attrs
import msgpack
import pytest
import sqlalchemy as sa
from fetchcore.adapters.recording import RecordingObjectStore
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker, create_async_engine
from tests.conftest import Stack
from tests.contract.fetch_index_suite import (
    SeededIndex,
    TestBranchHeads,
    TestGraphEdgeCases,
    TestLoading,
    TestObjects,
    TestResolveCommits,
    test_satisfies_the_read_protocol,
)
from tests.pg_support import scratch_database
from tests.scenarios.seeding import put_mpack_of
from tests.scenarios.test_seed_scenarios import (
    test_fn1_content_cache_served_without_mpack_get,
    test_fn2_object_served_from_mpack_no_per_object_key,
    test_fn3_two_mpacks_each_fetched_once,
    test_fn4_missing_mpack_falls_back_to_per_object_get,
    test_fn5_unindexed_object_raises_fetch_not_indexed_error,
    test_fn6_mixed_sources_all_merged,
    test_fn7_zstd_compressed_mpack_objects_decompressed,
)

from examples.hub_schema import tables as t
from examples.hub_schema.index import HubFetchIndex
from examples.hub_schema.store import HubStore
from fetchcore import Commit, IndexBatch, Location, ObjectStore, Snapshot, serve_fetch
from fetchcore.ports import FetchIndex, FetchStore, PushStore
from fetchcore.testing import blob_id

__all__ = [
    "TestBranchHeads",
    "TestGraphEdgeCases",
    "TestLoading",
    "TestObjects",
    "TestResolveCommits",
    "test_fn1_content_cache_served_without_mpack_get",
    "test_fn2_object_served_from_mpack_no_per_object_key",
    "test_fn3_two_mpacks_each_fetched_once",
    "test_fn4_missing_mpack_falls_back_to_per_object_get",
    "test_fn5_unindexed_object_raises_fetch_not_indexed_error",
    "test_fn6_mixed_sources_all_merged",
    "test_fn7_zstd_compressed_mpack_objects_decompressed",
    "test_satisfies_the_read_protocol",
]

pytestmark = pytest.mark.postgres


@attrs.define
class FakeBackend:
    """The seed's in-memory backend: per-object keys and mpacks, and nothing else."""

    objects: dict[str, bytes] = attrs.field(factory=dict)
    mpacks: dict[str, bytes] = attrs.field(factory=dict)

    async def put(self, oid: str, data: bytes) -> str:
        self.objects[oid] = data
        return f"mem://{oid}"

    async def get(self, oid: str) -> bytes | None:
        return self.objects.get(oid)

    async def get_mpack(self, mpack_id: str) -> bytes | None:
        return self.mpacks.get(mpack_id)

    async def put_mpack(self, mpack_id: str, data: bytes) -> None:
        self.mpacks[mpack_id] = data

    async def presign_mpack_get(self, mpack_id: str, ttl: int) -> str:
        return f"https://minio.test/mpacks/{mpack_id}?ttl={ttl}"


@attrs.frozen
class SeedingStore(HubStore):
    """The example store, plus the per-object writes the seed's tests make (``put``)."""

    async def put_object(self, object_id: str, data: bytes) -> None:
        await cast(FakeBackend, self.backend).put(object_id, data)


@attrs.frozen
class HubTables(HubFetchIndex):
    """The example index, plus ``record``: an IndexBatch written the way the hub stores it."""

    async def record(self, repo_id: str, batch: IndexBatch) -> None:
        for table, rows in self._rows(repo_id, batch):
            if rows:
                await self.session.execute(insert(table).on_conflict_do_nothing(), rows)
        for object_id, content in batch.cached:
            row = {"object_id": object_id, "content_cache": content}
            upsert = insert(t.objects).values(row)
            await self.session.execute(
                upsert.on_conflict_do_update(index_elements=["object_id"], set_=row)
            )
        for name, head in batch.branch_heads.items():
            row = {"repo_id": repo_id, "name": name, "head_commit_id": head}
            upsert = insert(t.branches).values(row)
            await self.session.execute(
                upsert.on_conflict_do_update(index_elements=["repo_id", "name"], set_=row)
            )
        await self.session.commit()

    @staticmethod
    def _rows(repo_id: str, batch: IndexBatch) -> list[tuple[sa.Table, list[dict[str, object]]]]:
        return [
            (
                t.commits,
                [
                    {
                        "commit_id": c.commit_id,
                        "parent_ids": list(c.parent_ids),
                        "snapshot_id": c.snapshot_id,
                        "message": c.fields.get("message"),
                    }
                    for c in batch.commits
                ],
            ),
            (
                t.commit_refs,
                [{"repo_id": repo_id, "commit_id": c.commit_id} for c in batch.commits],
            ),
            (
                t.snapshots,
                [
                    {
                        "snapshot_id": s.snapshot_id,
                        "directories": [],
                        "manifest_blob": msgpack.packb(dict(s.manifest)),
                        "entry_count": len(s.manifest),
                    }
                    for s in batch.snapshots
                ],
            ),
            (
                t.snapshot_refs,
                [{"repo_id": repo_id, "snapshot_id": s.snapshot_id} for s in batch.snapshots],
            ),
            (
                t.objects,
                [
                    {"object_id": o, "storage_uri": f"mpack://{loc.mpack_id}"}
                    for o, loc in batch.locations
                ],
            ),
            (
                t.mpack_index,
                [
                    {"entity_id": o, "mpack_id": loc.mpack_id, "entity_type": "object"}
                    for o, loc in batch.locations
                ],
            ),
        ]

    async def known_objects(self, repo_id: str, object_ids: Collection[str]) -> Collection[str]:
        return set(await self.find_locations(object_ids)) | set(await self.find_cached(object_ids))


@pytest.fixture
async def hub_session() -> AsyncIterator[AsyncSession]:
    """One request-scoped session on a fresh database holding the hub's tables."""
    async with scratch_database() as url:
        engine = create_async_engine(url)
        try:
            async with engine.begin() as conn:
                await conn.run_sync(t.metadata.create_all)
            async with async_sessionmaker(engine)() as session:
                yield session
        finally:
            await engine.dispose()


@pytest.fixture
def seeded_index(hub_session: AsyncSession) -> SeededIndex:
    """The read-port suite's fixture: the example index, seeded through the hub's tables."""
    return SeededIndex(
        HubFetchIndex(hub_session), HubTables(hub_session).record, keeps_offsets=False
    )


@pytest.fixture
def stack(hub_session: AsyncSession) -> Stack:
    """The FN scenarios' fixture: the example index and store, every store call recorded."""
    store = cast(ObjectStore, SeedingStore(FakeBackend()))  # no ranged reads, no legacy writes
    return Stack(HubTables(hub_session), RecordingObjectStore(store))


def test_the_adapters_implement_the_ports_a_fetch_needs(hub_session: AsyncSession) -> None:
    assert isinstance(HubFetchIndex(hub_session), FetchIndex)
    assert isinstance(HubStore(FakeBackend()), FetchStore)
    assert isinstance(HubStore(FakeBackend()), PushStore)
    assert not getattr(HubFetchIndex, "concurrent_calls", False)


async def test_a_fetch_reads_no_mpack_to_learn_whether_one_exists(
    hub_session: AsyncSession,
) -> None:
    backend = FakeBackend()
    store = RecordingObjectStore(cast(ObjectStore, SeedingStore(backend)))
    raw = b"content"
    mpack_id = await put_mpack_of(store.inner, {blob_id(raw): raw})
    batch = IndexBatch(
        commits=[Commit("c", "s")],
        snapshots=[Snapshot("s", {"f": blob_id(raw)})],
        locations=[(blob_id(raw), Location(mpack_id))],
    )
    await HubTables(hub_session).record("r", batch)

    result = await serve_fetch(HubFetchIndex(hub_session), store, repo_id="r", want=["c"])

    assert store.ids_of("get_mpack") == [mpack_id]
    assert result.mpack_url == f"https://minio.test/mpacks/{result.mpack_id}?ttl=3600"
    assert await HubStore(backend).get_fetch(result.mpack_id) is not None
