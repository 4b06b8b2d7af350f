"""Repeated and concurrent fetches on every stack: the memo, reuse, and one resolution."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Collection, Mapping, Sequence

import attrs
import pytest
from fetchcore.adapters.wrapping import IndexRepoWrapper, ObjectStoreWrapper

import fetchcore.fetch as fetch_module
from fetchcore import (
    Commit,
    FetchMemo,
    Location,
    Policy,
    Snapshot,
    UnknownCommitError,
    serve_fetch,
)
from fetchcore.lifecycle import IndexLifecycle, delete_repository
from fetchcore.testing import blob_id, fake_id
from tests.backends import replace_behind_the_back
from tests.conftest import Stack
from tests.scenarios.seeding import push_of
from tests.scenarios.test_fetch import REPO, content, fetched, ingest, three_commits


@attrs.define
class CountingIndex(IndexRepoWrapper):
    """An index that counts the calls of the fetch's read port, by name; each call
    yields to the event loop first, as a networked index does."""

    calls: Counter[str] = attrs.field(factory=Counter)

    async def _count(self, name: str) -> None:
        self.calls[name] += 1
        await asyncio.sleep(0)

    async def resolve_commits(
        self, repo_id: str, want: Collection[str], have: Collection[str]
    ) -> Sequence[Commit]:
        await self._count("resolve_commits")
        return await self.inner.resolve_commits(repo_id, want, have)

    async def load_commits(self, repo_id: str, commit_ids: Collection[str]) -> Sequence[Commit]:
        await self._count("load_commits")
        return await self.inner.load_commits(repo_id, commit_ids)

    async def load_snapshots(
        self, repo_id: str, snapshot_ids: Collection[str]
    ) -> Sequence[Snapshot]:
        await self._count("load_snapshots")
        return await self.inner.load_snapshots(repo_id, snapshot_ids)

    async def find_cached(self, object_ids: Collection[str]) -> Mapping[str, bytes]:
        await self._count("find_cached")
        return await self.inner.find_cached(object_ids)

    async def find_locations(self, object_ids: Collection[str]) -> Mapping[str, Sequence[Location]]:
        await self._count("find_locations")
        return await self.inner.find_locations(object_ids)

    async def branch_heads(self, repo_id: str) -> Mapping[str, str]:
        await self._count("branch_heads")
        return await self.inner.branch_heads(repo_id)


class TestRepeatedFetch:
    async def test_a_remembered_fetch_reads_no_push_mpack_and_resolves_nothing(
        self, stack: Stack
    ) -> None:
        commits = await three_commits(stack)
        memo = FetchMemo()
        first = await serve_fetch(
            stack.index, stack.store, repo_id=REPO, want=[commits[2]], memo=memo
        )
        index = CountingIndex(stack.index)
        reads_before = len(stack.store.reads)
        again = await serve_fetch(index, stack.store, repo_id=REPO, want=[commits[2]], memo=memo)
        assert (again.reused, again.uploaded, again.mpack_id) == (True, False, first.mpack_id)
        assert len(stack.store.reads) == reads_before, "no push mpack read"
        assert index.calls == Counter(load_commits=1, branch_heads=1)
        assert (again.commit_count, again.snapshot_count, again.blob_count) == (
            first.commit_count,
            first.snapshot_count,
            first.blob_count,
        )
        assert again.mpack_url is not None or first.mpack_url is None

    async def test_the_remembered_id_is_the_id_resolved_from_scratch(self, stack: Stack) -> None:
        commits = await three_commits(stack)
        memo = FetchMemo()
        want, have = [commits[2]], [commits[0]]
        first, remembered, plain = [
            await serve_fetch(stack.index, stack.store, repo_id=REPO, want=want, have=have, memo=m)
            for m in (memo, memo, None)
        ]
        assert first.mpack_id == remembered.mpack_id == plain.mpack_id

    async def test_a_corrupted_document_is_rebuilt_though_remembered(self, stack: Stack) -> None:
        commits = await three_commits(stack)
        memo = FetchMemo()
        first = await serve_fetch(
            stack.index, stack.store, repo_id=REPO, want=[commits[2]], memo=memo
        )
        await replace_behind_the_back(stack.store.inner, "fetch", first.mpack_id, b"damaged")
        rebuilt = await serve_fetch(
            stack.index, stack.store, repo_id=REPO, want=[commits[2]], memo=memo
        )
        assert (rebuilt.reused, rebuilt.uploaded, rebuilt.mpack_id) == (False, True, first.mpack_id)
        document = await fetched(stack, rebuilt.mpack_id)
        assert {b["object_id"] for b in document["blobs"]} == {blob_id(content(x)) for x in "xyzw"}
        third = await serve_fetch(
            stack.index, stack.store, repo_id=REPO, want=[commits[2]], memo=memo
        )
        assert third.reused

    async def test_a_moved_branch_head_gives_another_document(self, stack: Stack) -> None:
        commits = await three_commits(stack)
        memo = FetchMemo()
        first = await serve_fetch(
            stack.index, stack.store, repo_id=REPO, want=[commits[1]], memo=memo
        )
        data, c3 = push_of("c3", {"v": content("v")}, parents=[commits[2]])
        await ingest(stack, data)
        moved = await serve_fetch(
            stack.index, stack.store, repo_id=REPO, want=[commits[1]], memo=memo
        )
        assert moved.mpack_id != first.mpack_id
        assert (moved.reused, moved.uploaded) == (False, True)
        assert (await fetched(stack, moved.mpack_id))["branch_heads"] == {"main": c3}
        plain = await serve_fetch(stack.index, stack.store, repo_id=REPO, want=[commits[1]])
        assert plain.mpack_id == moved.mpack_id

    async def test_a_fetch_with_an_unknown_have_is_not_remembered(self, stack: Stack) -> None:
        commits = await three_commits(stack)
        memo = FetchMemo()
        await serve_fetch(
            stack.index,
            stack.store,
            repo_id=REPO,
            want=[commits[2]],
            have=[fake_id("pushed later")],
            memo=memo,
        )
        assert len(memo) == 0
        await serve_fetch(
            stack.index, stack.store, repo_id=REPO, want=[commits[2]], have=[commits[0]], memo=memo
        )
        assert len(memo) == 1


class TestConcurrentFetches:
    @pytest.mark.parametrize("with_memo", [False, True], ids=["no memo", "memo"])
    async def test_identical_fetches_share_one_resolution_and_one_set_of_reads(
        self, stack: Stack, with_memo: bool
    ) -> None:
        commits = await three_commits(stack)
        index = CountingIndex(stack.index)
        memo = FetchMemo() if with_memo else None
        results = await asyncio.gather(
            *(
                serve_fetch(index, stack.store, repo_id=REPO, want=[commits[2]], memo=memo)
                for _ in range(8)
            )
        )
        assert index.calls["resolve_commits"] == 1
        assert index.calls["load_snapshots"] == 1
        read_ids = [call.args[0] for call in stack.store.reads]
        assert sorted(read_ids) == sorted(set(read_ids)), "one set of push-mpack reads"
        assert [r.uploaded for r in results].count(True) == 1
        assert len({r.mpack_id for r in results}) == 1


class TestDeletedRepository:
    async def test_a_remembered_fetch_of_a_deleted_repository_is_unknown(
        self, stack: Stack
    ) -> None:
        commits = await three_commits(stack)
        memo = FetchMemo()
        await serve_fetch(stack.index, stack.store, repo_id=REPO, want=[commits[2]], memo=memo)
        assert isinstance(stack.index, IndexLifecycle)
        await delete_repository(stack.index, REPO)
        with pytest.raises(UnknownCommitError):
            await serve_fetch(stack.index, stack.store, repo_id=REPO, want=[commits[2]], memo=memo)
        assert len(memo) == 0

    async def test_deleting_a_repository_with_the_memo_forgets_its_fetches(
        self, stack: Stack
    ) -> None:
        commits = await three_commits(stack)
        memo = FetchMemo()
        await serve_fetch(stack.index, stack.store, repo_id=REPO, want=[commits[2]], memo=memo)
        assert isinstance(stack.index, IndexLifecycle)
        await delete_repository(stack.index, REPO, memo=memo)
        assert len(memo) == 0


@attrs.define
class NeverIntact(ObjectStoreWrapper):
    """A store that never admits to holding a document intact: every fetch builds."""

    async def fetch_intact(self, fetch_id: str) -> bool | None:
        return False


class TestStreamedHead:
    async def test_a_head_packed_again_as_it_is_written_gives_the_same_document(
        self, stack: Stack, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        commits = await three_commits(stack)
        store = NeverIntact(stack.store)
        policy = Policy(max_in_flight=1)
        kept = await serve_fetch(stack.index, store, repo_id=REPO, want=[commits[2]], policy=policy)
        kept_bytes = await stack.store.inner.get_fetch(kept.mpack_id)
        monkeypatch.setattr(fetch_module, "KEPT_HEAD_ENTRIES", 0)
        streamed = await serve_fetch(
            stack.index, store, repo_id=REPO, want=[commits[2]], policy=policy
        )
        assert streamed.mpack_id == kept.mpack_id
        assert await stack.store.inner.get_fetch(streamed.mpack_id) == kept_bytes
