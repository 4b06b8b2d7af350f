"""SPEC §4, rule by rule, end to end on every stack."""

from __future__ import annotations

import itertools
import random
from typing import Any

import pytest
from fetchcore.adapters.faults import Faults, FaultyObjectStore
from fetchcore.adapters.memory import MemoryIndexRepo, MemoryObjectStore
from fetchcore.adapters.recording import RecordingObjectStore

from fetchcore import (
    FetchError,
    FetchNotIndexedError,
    InvalidRequestError,
    ObjectUnavailableError,
    UnknownCommitError,
    ingest_push,
    preview_fetch,
    serve_fetch,
)
from fetchcore.content import decode
from fetchcore.ids import content_id
from fetchcore.testing import blob_entry, blob_id, commit_entry, fake_id, snapshot_entry
from fetchcore.wire import decode_fetch, encode_push
from tests.conftest import Stack
from tests.scenarios.seeding import make_commit, push_of

REPO = "alice/songs"
OTHER = "mallory/other"


def content(label: str, size: int = 300) -> bytes:
    rng = random.Random(label)
    return label.encode() + rng.randbytes(size)


async def ingest(stack: Stack, data: bytes, repo_id: str = REPO) -> None:
    await ingest_push(stack.index, stack.store, repo_id=repo_id, mpack=data)


async def fetched(stack: Stack, fetch_id: str) -> dict[str, Any]:
    data = await stack.store.inner.get_fetch(fetch_id)
    assert data is not None, "the fetch document is stored under its fetch id"
    return decode_fetch(data)


async def three_commits(stack: Stack) -> list[str]:
    """c0 {x, y} <- c1 {y, z} (x deleted) <- c2 {x, y, z, w} (x re-added)."""
    x, y, z, w = (content(label) for label in "xyzw")
    d0, c0 = push_of("c0", {"x": x, "y": y})
    d1, c1 = push_of("c1", {"y": y, "z": z}, parents=[c0], carried={"z": z})
    d2, c2 = push_of("c2", {"x": x, "y": y, "z": z, "w": w}, parents=[c1], carried={"w": w})
    for data in (d0, d1, d2):
        await ingest(stack, data)
    return [c0, c1, c2]


class TestRequests:
    async def test_an_empty_want_is_a_fetch_error(self, stack: Stack) -> None:
        with pytest.raises(InvalidRequestError):
            await serve_fetch(stack.index, stack.store, repo_id=REPO, want=[])
        assert issubclass(InvalidRequestError, FetchError)

    async def test_a_bare_string_want_is_refused(self, stack: Stack) -> None:
        with pytest.raises(InvalidRequestError):
            await serve_fetch(stack.index, stack.store, repo_id=REPO, want=fake_id("c"))

    @pytest.mark.parametrize("encodings", [(), ("zstd",), ("identity", "br")])
    async def test_unusable_accept_encodings_are_refused(
        self, stack: Stack, encodings: tuple[str, ...]
    ) -> None:
        commits = await three_commits(stack)
        with pytest.raises(InvalidRequestError):
            await serve_fetch(
                stack.index, stack.store, repo_id=REPO, want=commits, accept_encodings=encodings
            )


class TestScoping:
    async def test_a_commit_of_another_repository_is_unknown(self, stack: Stack) -> None:
        data, theirs = push_of("theirs", {"secret": content("secret")})
        await ingest(stack, data, OTHER)
        with pytest.raises(UnknownCommitError) as raised:
            await serve_fetch(stack.index, stack.store, repo_id=REPO, want=[theirs])
        assert raised.value.commit_ids == (theirs,)
        assert stack.store.reads == []
        assert stack.store.ids_of("put_mpack") == [content_id(data)], "only the push was stored"

    async def test_unknown_haves_are_ignored(self, stack: Stack) -> None:
        commits = await three_commits(stack)
        result = await serve_fetch(
            stack.index, stack.store, repo_id=REPO, want=[commits[2]], have=[fake_id("who knows")]
        )
        assert result.commit_count == 3

    async def test_a_have_of_another_repository_is_ignored(self, stack: Stack) -> None:
        commits = await three_commits(stack)
        data, theirs = push_of("theirs", {"x": content("x")})
        await ingest(stack, data, OTHER)
        result = await serve_fetch(
            stack.index, stack.store, repo_id=REPO, want=[commits[2]], have=[theirs]
        )
        assert (result.commit_count, result.blob_count) == (3, 4)


class TestWhatIsSent:
    async def test_want_minus_have_with_have_manifests_left_out(self, stack: Stack) -> None:
        _c0, c1, c2 = await three_commits(stack)
        result = await serve_fetch(stack.index, stack.store, repo_id=REPO, want=[c2], have=[c1])
        document = await fetched(stack, result.mpack_id)
        assert [c["commit_id"] for c in document["commits"]] == [c2]
        blobs = {b["object_id"] for b in document["blobs"]}
        # x was in c0 (an ancestor of the have) but not in c1 itself: it is sent.
        assert blobs == {blob_id(content("x")), blob_id(content("w"))}
        assert result.snapshot_count == 1

    async def test_a_full_fetch_sends_everything_parents_first(self, stack: Stack) -> None:
        commits = await three_commits(stack)
        result = await serve_fetch(stack.index, stack.store, repo_id=REPO, want=[commits[2]])
        document = await fetched(stack, result.mpack_id)
        assert [c["commit_id"] for c in document["commits"]] == commits
        served = {b["object_id"]: b["content"] for b in document["blobs"]}
        assert served == {blob_id(content(x)): content(x) for x in "xyzw"}
        assert "encoding" not in document["blobs"][0]
        assert document["branch_heads"] == {"main": commits[2]}

    async def test_want_already_had_sends_no_commit_and_no_blob(self, stack: Stack) -> None:
        commits = await three_commits(stack)
        result = await serve_fetch(
            stack.index, stack.store, repo_id=REPO, want=[commits[0]], have=[commits[2]]
        )
        assert (result.commit_count, result.snapshot_count, result.blob_count) == (0, 0, 0)
        assert stack.store.reads == []

    async def test_an_empty_blob_is_served(self, stack: Stack) -> None:
        data, commit = push_of("e", {"empty": b"", "full": content("full")}, encoding="identity")
        await ingest(stack, data)
        result = await serve_fetch(stack.index, stack.store, repo_id=REPO, want=[commit])
        document = await fetched(stack, result.mpack_id)
        assert {"object_id": blob_id(b""), "content": b""} in document["blobs"]
        assert result.blob_count == 2

    async def test_an_object_spelled_two_ways_is_sent_once(self, stack: Stack) -> None:
        payload = content("twice")
        data = encode_push(
            commits=[commit_entry("c", "s")],
            snapshots=[
                snapshot_entry("s", {"a": blob_id(payload), "b": blob_id(payload, bare=True)})
            ],
            blobs=[blob_entry(payload, object_id=blob_id(payload, bare=True))],
            branch_heads={"main": "c"},
        )
        await ingest(stack, data)
        result = await serve_fetch(stack.index, stack.store, repo_id=REPO, want=["c"])
        document = await fetched(stack, result.mpack_id)
        assert [b["content"] for b in document["blobs"]] == [payload]
        assert result.blob_count == 1

    async def test_zstd_pass_through_serves_verified_frames(self, stack: Stack) -> None:
        commits = await three_commits(stack)
        result = await serve_fetch(
            stack.index,
            stack.store,
            repo_id=REPO,
            want=[commits[2]],
            accept_encodings=("identity", "zstd"),
        )
        document = await fetched(stack, result.mpack_id)
        for entry in document["blobs"]:
            assert entry["encoding"] == "zstd"
            assert blob_id(decode(entry["content"], "zstd", 1 << 20)) == entry["object_id"]


class TestGate:
    async def test_an_unindexed_blob_stops_the_fetch_before_any_read(self, stack: Stack) -> None:
        indexed, unindexed = content("indexed"), content("unindexed")
        data, _ = push_of("c", {"a": indexed})
        await ingest(stack, data)
        commit = await make_commit(
            stack.index,
            REPO,
            manifest={"a": blob_id(indexed), "b": blob_id(unindexed, bare=True)},
            seed="gate",
        )
        stack.store.calls.clear()
        with pytest.raises(FetchNotIndexedError) as raised:
            await serve_fetch(stack.index, stack.store, repo_id=REPO, want=[commit.commit_id])
        assert raised.value.object_ids == (blob_id(unindexed, bare=True),)
        asked = [call.method for call in stack.store.calls]
        assert asked == ["fetch_intact"], "nothing is read or written before the gate"


class TestReads:
    async def test_a_dense_fetch_reads_each_mpack_once(self, stack: Stack) -> None:
        files = {f"f{i}": content(f"dense-{i}", 2_000) for i in range(200)}
        halves = [dict(list(files.items())[:100]), files]
        d0, c0 = push_of("a", halves[0])
        d1, c1 = push_of("b", halves[1], parents=[c0], carried=dict(list(files.items())[100:]))
        await ingest(stack, d0)
        await ingest(stack, d1)
        stack.store.calls.clear()
        result = await serve_fetch(stack.index, stack.store, repo_id=REPO, want=[c1])
        assert result.blob_count == 200
        assert result.stats.requests == 2
        read_ids = [call.args[0] for call in stack.store.reads]
        assert sorted(read_ids) == sorted({content_id(d0), content_id(d1)})

    async def test_a_sparse_fetch_reads_disjoint_ranges_of_few_bytes(self, stack: Stack) -> None:
        files = {f"f{i:04d}": content(f"sparse-{i}", 4_000) for i in range(1_000)}
        d0, _c0 = push_of("all", files, encoding="identity")
        await ingest(stack, d0)
        kept = {path: data for i, (path, data) in enumerate(files.items()) if i % 100 == 0}
        d1, c1 = push_of("few", kept, carried={})  # a root commit naming 1% of the blobs
        await ingest(stack, d1)
        stack.store.calls.clear()
        result = await serve_fetch(stack.index, stack.store, repo_id=REPO, want=[c1])
        assert result.blob_count == len(kept)
        assert result.stats.mpack_gets == 0
        ranges = sorted(call.args[1:] for call in stack.store.reads)
        assert result.stats.range_gets == len(ranges) > 0
        assert all(a[1] <= b[0] for a, b in itertools.pairwise(ranges))
        needed = sum(len(c) for c in kept.values())
        assert result.stats.bytes_read <= 2 * needed


class TestVerificationAndFailure:
    async def test_a_corrupt_mpack_is_a_failed_source_and_the_legacy_key_serves(
        self, stack: Stack
    ) -> None:
        payload = content("payload")
        data, commit = push_of("c", {"f": payload})
        await ingest(stack, data)
        await stack.store.inner.put_object(blob_id(payload), payload)
        faulty = FaultyObjectStore(
            stack.store,
            faults={"get_mpack": Faults(corrupt=1.0), "get_mpack_range": Faults(corrupt=1.0)},
            targets={content_id(data)},
        )
        result = await serve_fetch(stack.index, faulty, repo_id=REPO, want=[commit])
        document = await fetched(stack, result.mpack_id)
        assert document["blobs"] == [{"object_id": blob_id(payload), "content": payload}]
        assert stack.store.ids_of("get_object") == [blob_id(payload)]
        assert result.stats.failed_sources >= 1

    async def test_a_blob_no_source_can_serve_fails_and_nothing_is_written(
        self, stack: Stack
    ) -> None:
        payload = content("payload")
        data, commit = push_of("c", {"f": payload})
        await ingest(stack, data)
        stack.store.calls.clear()
        faulty = FaultyObjectStore(
            stack.store,
            faults={"get_mpack": Faults(corrupt=1.0), "get_mpack_range": Faults(corrupt=1.0)},
        )
        with pytest.raises(ObjectUnavailableError) as raised:
            await serve_fetch(stack.index, faulty, repo_id=REPO, want=[commit])
        assert raised.value.object_ids == (blob_id(payload),)
        assert stack.store.ids_of("put_mpack") == []
        assert stack.store.ids_of("has_mpack") == []
        assert await stack.store.inner.fetch_intact(stack.store.ids_of("open_fetch")[0]) is False
        assert await stack.store.inner.get_fetch(stack.store.ids_of("open_fetch")[0]) is None


class TestResult:
    async def test_the_same_request_gives_the_same_mpack_and_skips_the_upload(
        self, stack: Stack
    ) -> None:
        commits = await three_commits(stack)
        first = await serve_fetch(stack.index, stack.store, repo_id=REPO, want=[commits[2]])
        stack.store.calls.clear()
        second = await serve_fetch(stack.index, stack.store, repo_id=REPO, want=[commits[2]])
        assert first.mpack_id == second.mpack_id
        assert (first.uploaded, second.uploaded) == (True, False)
        assert (first.reused, second.reused) == (False, True)
        assert stack.store.reads == [], "a reused document reads no push mpack"
        assert stack.store.ids_of("open_fetch") == []
        assert second.mpack_url is not None or first.mpack_url is None

    async def test_every_stack_produces_the_bytes_the_memory_stack_produces(
        self, stack: Stack
    ) -> None:
        commits = await three_commits(stack)
        result = await serve_fetch(stack.index, stack.store, repo_id=REPO, want=[commits[2]])
        reference = Stack(MemoryIndexRepo(), RecordingObjectStore(MemoryObjectStore()))
        await three_commits(reference)
        expected = await serve_fetch(
            reference.index, reference.store, repo_id=REPO, want=[commits[2]]
        )
        assert result.mpack_id == expected.mpack_id

    async def test_a_fetch_right_after_ingest_is_served(self, stack: Stack) -> None:
        data, commit = push_of("fresh", {"f": content("fresh")})
        await ingest(stack, data)
        result = await serve_fetch(stack.index, stack.store, repo_id=REPO, want=[commit])
        assert result.blob_count == 1


class TestPreview:
    async def test_a_preview_plans_what_the_fetch_then_reads(self, stack: Stack) -> None:
        commits = await three_commits(stack)
        preview = await preview_fetch(stack.index, repo_id=REPO, want=[commits[2]])
        assert (preview.commit_count, preview.snapshot_count, preview.blob_count) == (3, 3, 4)
        assert len(preview.plan.reads) == 3
        result = await serve_fetch(stack.index, stack.store, repo_id=REPO, want=[commits[2]])
        assert result.stats.requests == preview.plan.request_count
        read_mpacks = {call.args[0] for call in stack.store.reads}
        assert read_mpacks == {read.mpack_id for read in preview.plan.reads}
