"""Lifecycle on every stack: forgetting a repository, sweeping unreferenced push mpacks,
and sweeping what crashed ingests staged."""

from __future__ import annotations

import asyncio
import datetime as dt
import math
from collections.abc import AsyncIterator, Collection, Sequence
from pathlib import Path
from typing import Any

import attrs
import pytest
from fetchcore.adapters.memory import MemoryIndexRepo, MemoryObjectStore
from fetchcore.adapters.recording import RecordingObjectStore

from fetchcore import (
    IndexBatch,
    InvalidRequestError,
    Location,
    ObjectStore,
    UnknownCommitError,
    ingest_push,
)
from fetchcore.ids import canonical, content_id
from fetchcore.lifecycle import (
    DEFAULT_MIN_AGE_S,
    DEFAULT_STAGING_AGE_S,
    IndexLifecycle,
    StoredMPack,
    StoreLifecycle,
    delete_orphan_mpacks,
    delete_repository,
    find_orphan_mpacks,
    sweep_staging,
)
from fetchcore.testing import blob_entry, blob_id, commit_entry, fake_id, snapshot_entry
from fetchcore.wire import encode_push
from tests.backends import INDEXES, STACKS, STORES, staged_push_leftovers

ALICE, BOB = "alice/songs", "bob/fork"
SHARED, ALICE_ONLY = b"shared content " * 20, b"only alice has this " * 20


@attrs.frozen
class LifecycleStack:
    index: Any  # an IndexRepo and an IndexLifecycle
    store: Any  # an ObjectStore and a StoreLifecycle


@pytest.fixture(params=STACKS, ids=[f"{index}+{store}" for index, store in STACKS])
async def stack(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[LifecycleStack]:
    index_name, store_name = request.param
    async with (
        INDEXES[index_name](request, tmp_path / "index") as index,
        STORES[store_name](request, tmp_path / "store") as store,
    ):
        assert isinstance(index, IndexLifecycle)
        assert isinstance(store, StoreLifecycle)
        yield LifecycleStack(index, store)


def push(label: str, files: dict[str, bytes], parents: Sequence[str] = ()) -> tuple[bytes, str]:
    commit_id, snapshot_id = fake_id(f"commit-{label}"), fake_id(f"snap-{label}")
    data = encode_push(
        commits=[commit_entry(commit_id, snapshot_id, parents)],
        snapshots=[snapshot_entry(snapshot_id, {p: blob_id(c) for p, c in files.items()})],
        blobs=[blob_entry(c, encoding="zstd") for c in files.values()],
        branch_heads={"main": commit_id},
    )
    return data, commit_id


async def ingest(stack: LifecycleStack, repo: str, data: bytes) -> None:
    await ingest_push(stack.index, stack.store, repo_id=repo, mpack=data)


async def listed(stack: LifecycleStack) -> dict[str, StoredMPack]:
    return {stored.mpack_id: stored async for stored in stack.store.list_mpacks()}


def later() -> dt.datetime:
    """A clock past any stored mpack's minimum age (stores stamp mpacks with the real time)."""
    return dt.datetime.now(dt.UTC) + dt.timedelta(seconds=DEFAULT_MIN_AGE_S + 60)


class TestDeletingARepository:
    async def test_its_commits_snapshots_heads_and_membership_are_gone(
        self, stack: LifecycleStack
    ) -> None:
        data, commit = push("a", {"a.txt": ALICE_ONLY, "s.txt": SHARED})
        await ingest(stack, ALICE, data)

        deleted = await delete_repository(stack.index, ALICE)

        assert (deleted.commits, deleted.snapshots, deleted.branch_heads) == (1, 1, 1)
        assert (deleted.objects, deleted.released_objects) == (2, 2)
        with pytest.raises(UnknownCommitError):
            await stack.index.resolve_commits(ALICE, [commit], [])
        assert await stack.index.load_commits(ALICE, [commit]) == []
        assert await stack.index.load_snapshots(ALICE, [fake_id("snap-a")]) == []
        assert dict(await stack.index.branch_heads(ALICE)) == {}
        assert not await stack.index.known_objects(ALICE, [blob_id(SHARED)])
        assert dict(await stack.index.find_locations([blob_id(SHARED)])) == {}

    async def test_shared_objects_keep_their_locations_while_another_repository_has_them(
        self, stack: LifecycleStack
    ) -> None:
        alice_push, _ = push("a", {"a.txt": ALICE_ONLY, "s.txt": SHARED})
        bob_push, bob_commit = push("b", {"s.txt": SHARED})
        await ingest(stack, ALICE, alice_push)
        await ingest(stack, BOB, bob_push)

        deleted = await delete_repository(stack.index, ALICE)

        assert (deleted.objects, deleted.released_objects) == (2, 1)
        locations = await stack.index.find_locations([blob_id(SHARED), blob_id(ALICE_ONLY)])
        assert set(locations) == {blob_id(SHARED)}
        assert [c.commit_id for c in await stack.index.resolve_commits(BOB, [bob_commit], [])] == [
            bob_commit
        ]
        assert dict(await stack.index.branch_heads(BOB)) == {"main": bob_commit}
        assert await stack.index.known_objects(BOB, [blob_id(SHARED)]) == {blob_id(SHARED)}

    async def test_the_last_repository_to_go_takes_the_shared_locations_with_it(
        self, stack: LifecycleStack
    ) -> None:
        await ingest(stack, ALICE, push("a", {"s.txt": SHARED})[0])
        await ingest(stack, BOB, push("b", {"s.txt": SHARED})[0])
        await delete_repository(stack.index, ALICE)
        deleted = await delete_repository(stack.index, BOB)
        assert deleted.released_objects == 1
        assert dict(await stack.index.find_locations([blob_id(SHARED)])) == {}

    async def test_an_unknown_repository_deletes_nothing(self, stack: LifecycleStack) -> None:
        data, commit = push("a", {"a.txt": ALICE_ONLY})
        await ingest(stack, ALICE, data)
        deleted = await delete_repository(stack.index, "nobody/here")
        assert (deleted.commits, deleted.objects, deleted.branch_heads) == (0, 0, 0)
        assert len(await stack.index.resolve_commits(ALICE, [commit], [])) == 1

    async def test_a_deleted_repository_can_be_pushed_again(self, stack: LifecycleStack) -> None:
        data, commit = push("a", {"a.txt": ALICE_ONLY})
        await ingest(stack, ALICE, data)
        await delete_repository(stack.index, ALICE)
        await ingest(stack, ALICE, data)
        assert len(await stack.index.resolve_commits(ALICE, [commit], [])) == 1
        assert set(await stack.index.find_locations([blob_id(ALICE_ONLY)])) == {blob_id(ALICE_ONLY)}

    async def test_an_ingest_racing_the_deletion_keeps_the_object_it_shares(
        self, stack: LifecycleStack
    ) -> None:
        # Whichever runs first, or however they interleave, Bob ends up with a location.
        for round_ in range(5):
            alice_push, _ = push(f"a{round_}", {"s.txt": SHARED})
            bob_push, bob_commit = push(f"b{round_}", {"s.txt": SHARED})
            await ingest(stack, ALICE, alice_push)
            await asyncio.gather(
                delete_repository(stack.index, ALICE), ingest(stack, BOB, bob_push)
            )
            assert set(await stack.index.find_locations([blob_id(SHARED)])) == {blob_id(SHARED)}
            assert len(await stack.index.resolve_commits(BOB, [bob_commit], [])) >= 1
            await delete_repository(stack.index, BOB)

    @pytest.mark.parametrize("bad", ["", "line\nbreak"])
    async def test_a_bad_repository_id_is_refused(self, stack: LifecycleStack, bad: str) -> None:
        with pytest.raises(InvalidRequestError):
            await delete_repository(stack.index, bad)


class TestSweepingOrphanMPacks:
    async def test_an_mpack_of_a_deleted_repository_is_listed_then_deleted(
        self, stack: LifecycleStack
    ) -> None:
        gone, _ = push("a", {"a.txt": ALICE_ONLY})
        kept, _ = push("b", {"b.txt": SHARED})
        await ingest(stack, ALICE, gone)
        await ingest(stack, BOB, kept)
        await delete_repository(stack.index, ALICE)

        orphans = await find_orphan_mpacks(stack.index, stack.store, now=later())
        assert [o.mpack_id for o in orphans] == [content_id(gone)]
        assert orphans[0].size == len(gone)
        assert await stack.store.has_mpack(content_id(gone))  # a dry run deletes nothing

        deleted = await delete_orphan_mpacks(stack.index, stack.store, now=later())
        assert deleted == orphans
        assert not await stack.store.has_mpack(content_id(gone))
        assert await stack.store.has_mpack(content_id(kept))
        assert await find_orphan_mpacks(stack.index, stack.store, now=later()) == []

    async def test_an_mpack_shared_by_a_living_repository_is_never_an_orphan(
        self, stack: LifecycleStack
    ) -> None:
        data, _ = push("a", {"s.txt": SHARED})
        await ingest(stack, ALICE, data)
        await ingest(stack, BOB, data)
        await delete_repository(stack.index, ALICE)
        assert await find_orphan_mpacks(stack.index, stack.store, now=later()) == []

    async def test_an_uploaded_but_unrecorded_mpack_is_young_and_kept(
        self, stack: LifecycleStack
    ) -> None:
        # What an ingest leaves between its upload and its record (or after a crash there).
        data, _ = push("a", {"a.txt": ALICE_ONLY})
        await stack.store.put_mpack(content_id(data), data)

        assert await find_orphan_mpacks(stack.index, stack.store) == []
        assert await delete_orphan_mpacks(stack.index, stack.store) == []
        assert await stack.store.has_mpack(content_id(data))
        # Once it is older than the minimum age, it is an orphan.
        assert [
            o.mpack_id for o in await find_orphan_mpacks(stack.index, stack.store, now=later())
        ] == [content_id(data)]

    async def test_an_mpack_exactly_the_minimum_age_is_an_orphan_and_younger_is_not(
        self, stack: LifecycleStack
    ) -> None:
        data, _ = push("a", {"a.txt": ALICE_ONLY})
        await stack.store.put_mpack(content_id(data), data)
        stored_at = (await listed(stack))[content_id(data)].stored_at
        now = stored_at + dt.timedelta(seconds=600)

        at_limit = await find_orphan_mpacks(stack.index, stack.store, min_age_s=600, now=now)
        assert [o.mpack_id for o in at_limit] == [content_id(data)]
        too_young = await find_orphan_mpacks(stack.index, stack.store, min_age_s=600.001, now=now)
        assert too_young == []

    async def test_the_listing_names_every_push_mpack_with_its_size(
        self, stack: LifecycleStack
    ) -> None:
        pushes = [push(label, {f"{label}.txt": label.encode() * 50})[0] for label in "xyz"]
        for data in pushes:
            await ingest(stack, ALICE, data)
        stored = await listed(stack)
        assert {i: s.size for i, s in stored.items()} == {content_id(d): len(d) for d in pushes}
        assert all(s.stored_at.tzinfo is not None for s in stored.values())

    async def test_deleting_a_missing_mpack_is_not_an_error(self, stack: LifecycleStack) -> None:
        await stack.store.delete_mpack(fake_id("never stored"))
        assert await listed(stack) == {}


@attrs.define
class RecordsDuringTheSweep:
    """An index where an ingest records a reference right after the sweep's first question."""

    inner: MemoryIndexRepo
    late_batch: IndexBatch
    questions: int = 0

    async def delete_repository(self, repo_id: str) -> Any:
        return await self.inner.delete_repository(repo_id)

    async def referenced_mpacks(self, mpack_ids: Collection[str]) -> Collection[str]:
        answer = await self.inner.referenced_mpacks(mpack_ids)
        self.questions += 1
        if self.questions == 1:
            await self.inner.record(ALICE, self.late_batch)
        return answer


class TestSweepingIsCareful:
    async def test_an_mpack_referenced_after_the_listing_is_not_deleted(self) -> None:
        store = MemoryObjectStore()
        data, _ = push("a", {"a.txt": ALICE_ONLY})
        mpack_id = content_id(data)
        await store.put_mpack(mpack_id, data)
        late = IndexBatch(locations=[(canonical(blob_id(ALICE_ONLY)), Location(mpack_id))])
        index = RecordsDuringTheSweep(MemoryIndexRepo(), late)

        assert await delete_orphan_mpacks(index, store, now=later()) == []
        assert await store.has_mpack(mpack_id)
        assert index.questions == 2

    @pytest.mark.parametrize("bad", [-1, -0.001, math.nan, math.inf, True, "1"])
    async def test_a_bad_minimum_age_is_refused(self, bad: Any) -> None:
        with pytest.raises(InvalidRequestError):
            await find_orphan_mpacks(MemoryIndexRepo(), MemoryObjectStore(), min_age_s=bad)

    async def test_a_minimum_age_of_zero_is_allowed(self) -> None:
        store = MemoryObjectStore()
        data, _ = push("a", {"a.txt": ALICE_ONLY})
        await store.put_mpack(content_id(data), data)
        orphans = await find_orphan_mpacks(MemoryIndexRepo(), store, min_age_s=0, now=later())
        assert len(orphans) == 1

    async def test_a_clock_without_a_time_zone_is_refused(self) -> None:
        with pytest.raises(InvalidRequestError):
            await find_orphan_mpacks(
                MemoryIndexRepo(), MemoryObjectStore(), now=dt.datetime(2026, 1, 1)
            )

    async def test_the_default_minimum_age_is_one_day(self) -> None:
        assert DEFAULT_MIN_AGE_S == 86_400

    async def test_an_mpack_put_into_the_memory_dict_directly_counts_as_new(self) -> None:
        store = MemoryObjectStore()
        data, _ = push("a", {"a.txt": ALICE_ONLY})
        store.mpacks[content_id(data)] = data
        assert await find_orphan_mpacks(MemoryIndexRepo(), store) == []
        assert len(await find_orphan_mpacks(MemoryIndexRepo(), store, now=later())) == 1


STAGED = bytes(range(256)) * (9 * 1024 * 4)  # 9 MiB: past a multipart part on S3


class TestSweepingStaging:
    async def test_what_a_crashed_ingest_staged_is_swept(self, object_store: ObjectStore) -> None:
        upload = await object_store.open_push()
        await upload.write(STAGED)  # then the process dies: neither commit nor abort
        left = await staged_push_leftovers(object_store)
        assert len(left) == 1
        assert await sweep_staging(object_store, min_age_s=0) == 1
        assert await staged_push_leftovers(object_store) == []

    async def test_by_default_a_running_ingest_is_left_alone(
        self, object_store: ObjectStore
    ) -> None:
        upload = await object_store.open_push()
        await upload.write(STAGED)
        assert await sweep_staging(object_store) == 0
        await upload.commit(content_id(STAGED))
        assert await object_store.get_mpack(content_id(STAGED)) == STAGED

    @pytest.mark.parametrize("bad", [-1, math.nan, math.inf, True, "1"])
    async def test_a_bad_minimum_age_is_refused_before_the_store_is_asked(self, bad: Any) -> None:
        store = RecordingObjectStore(MemoryObjectStore())
        with pytest.raises(InvalidRequestError):
            await sweep_staging(store, min_age_s=bad)
        assert store.calls == []

    async def test_the_default_staging_age_is_one_day(self) -> None:
        assert DEFAULT_STAGING_AGE_S == 86_400
