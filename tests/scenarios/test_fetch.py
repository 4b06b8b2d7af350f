"""SPEC §4, rule by rule, end to end on every stack."""

from __future__ import annotations

import asyncio
import itertools
import random
from collections.abc import Awaitable, Callable, Collection, Mapping, Sequence
from typing import Any, TypeVar

import attrs
import pytest
from fetchcore.adapters.faults import Faults, FaultyObjectStore
from fetchcore.adapters.memory import MemoryIndexRepo, MemoryObjectStore
from fetchcore.adapters.recording import RecordingObjectStore
from fetchcore.adapters.wrapping import IndexRepoWrapper, ObjectStoreWrapper

from fetchcore import (
    Commit,
    FetchDeadlineError,
    FetchError,
    FetchLimiter,
    FetchNotIndexedError,
    InvalidRequestError,
    Location,
    ObjectUnavailableError,
    Policy,
    Snapshot,
    UnknownCommitError,
    ingest_push,
    preview_fetch,
    serve_fetch,
)
from fetchcore.content import decode
from fetchcore.ids import content_id
from fetchcore.ports import FetchUpload
from fetchcore.testing import blob_entry, blob_id, commit_entry, fake_id, snapshot_entry
from fetchcore.wire import decode_fetch, encode_push
from tests.conftest import Stack
from tests.scenarios.seeding import make_commit, push_of

T = TypeVar("T")
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


# ── streaming, reuse, single flight (memory adapters: they hold the documents) ──


def memory_stack() -> Stack:
    return Stack(MemoryIndexRepo(), RecordingObjectStore(MemoryObjectStore()))


def memory_of(stack: Stack) -> MemoryObjectStore:
    assert isinstance(stack.store.inner, MemoryObjectStore)
    return stack.store.inner


@attrs.define
class WatchedUpload:
    """A FetchUpload that logs what happens to it into its store's log."""

    inner: FetchUpload
    store: WatchedStore
    open: bool = True

    async def write(self, chunk: bytes) -> None:
        self.store.log.append("write")
        await self.inner.write(chunk)

    async def commit(self) -> None:
        self.store.log.append("commit")
        self._close()
        await self.inner.commit()

    async def abort(self) -> None:
        self.store.log.append("abort")
        self._close()
        await self.inner.abort()

    def _close(self) -> None:
        if self.open:
            self.open = False
            self.store.uploads_open -= 1


@attrs.define
class WatchedStore(ObjectStoreWrapper):
    """A store that logs reads and upload events in order, holding each read ``delay_s``."""

    log: list[str] = attrs.field(factory=list)
    delay_s: float = 0.0
    intact: bool | str | None = "ask"
    uploads_open: int = 0
    most_uploads_open: int = 0
    opened: asyncio.Event = attrs.field(factory=asyncio.Event)

    async def get_mpack(self, mpack_id: str) -> bytes | None:
        await asyncio.sleep(self.delay_s)
        self.log.append("get_mpack")
        return await self.inner.get_mpack(mpack_id)

    async def get_mpack_range(self, mpack_id: str, start: int, end: int) -> bytes | None:
        await asyncio.sleep(self.delay_s)
        self.log.append("get_mpack_range")
        return await self.inner.get_mpack_range(mpack_id, start, end)

    async def fetch_intact(self, fetch_id: str) -> bool | None:
        if self.intact == "ask":
            return await self.inner.fetch_intact(fetch_id)
        return self.intact is True

    async def open_fetch(self, fetch_id: str) -> FetchUpload:
        self.uploads_open += 1
        self.most_uploads_open = max(self.most_uploads_open, self.uploads_open)
        self.opened.set()
        return WatchedUpload(await self.inner.open_fetch(fetch_id), self)


async def big_history(stack: Stack, count: int, size: int) -> tuple[str, dict[str, str]]:
    """``count`` commits in a chain, each pushing one new blob of ``size`` random bytes.

    Returns the head and, per push mpack, the id of the blob it brought.
    """
    parents: list[str] = []
    brought: dict[str, str] = {}
    for i in range(count):
        blob = content(f"big-{i}", size)
        data, commit = push_of(
            f"big{i}",
            {f"f{i}": blob},
            parents=parents,
            carried={f"f{i}": blob},
            encoding="identity",
        )
        await ingest(stack, data)
        brought[content_id(data)] = blob_id(blob)
        parents = [commit]
    return parents[0], brought


class TestReuse:
    async def test_a_replaced_document_is_rebuilt_not_handed_out(self) -> None:
        stack = memory_stack()
        commits = await three_commits(stack)
        first = await serve_fetch(stack.index, stack.store, repo_id=REPO, want=[commits[2]])
        memory_of(stack).fetches[first.mpack_id] = b"replaced by someone"
        second = await serve_fetch(stack.index, stack.store, repo_id=REPO, want=[commits[2]])
        assert (second.reused, second.uploaded) == (False, True)
        document = await fetched(stack, second.mpack_id)
        assert {b["object_id"] for b in document["blobs"]} == {blob_id(content(x)) for x in "xyzw"}

    async def test_a_store_that_cannot_tell_gets_the_document_written(self) -> None:
        stack = memory_stack()
        commits = await three_commits(stack)
        watched = WatchedStore(stack.store, intact=None)
        results = [
            await serve_fetch(stack.index, watched, repo_id=REPO, want=[commits[2]])
            for _ in range(2)
        ]
        assert [r.uploaded for r in results] == [True, True]
        assert watched.log.count("commit") == 2

    async def test_another_accept_encodings_is_another_document(self) -> None:
        stack = memory_stack()
        commits = await three_commits(stack)
        plain = await serve_fetch(stack.index, stack.store, repo_id=REPO, want=[commits[2]])
        packed = await serve_fetch(
            stack.index,
            stack.store,
            repo_id=REPO,
            want=[commits[2]],
            accept_encodings=("identity", "zstd"),
        )
        assert plain.mpack_id != packed.mpack_id
        assert not packed.reused


class TestStreamingWrite:
    async def test_the_upload_is_written_while_reads_continue(self) -> None:
        stack = memory_stack()
        head, _ = await big_history(stack, 3, 3 << 20)
        watched = WatchedStore(stack.store)
        policy = Policy(max_in_flight=1)
        result = await serve_fetch(stack.index, watched, repo_id=REPO, want=[head], policy=policy)
        reads = [i for i, event in enumerate(watched.log) if event.startswith("get_mpack")]
        assert watched.log.index("write") < reads[-1], "written before the last read"
        assert watched.log[-1] == "commit"
        document = await fetched(stack, result.mpack_id)
        assert len(document["blobs"]) == 3
        assert result.size_bytes == len(await stack.store.inner.get_fetch(result.mpack_id) or b"")

    async def test_a_failed_fetch_aborts_the_upload_and_leaves_nothing(self) -> None:
        stack = memory_stack()
        commits = await three_commits(stack)
        faulty = FaultyObjectStore(
            stack.store,
            faults={"get_mpack": Faults(lose=1.0), "get_mpack_range": Faults(lose=1.0)},
        )
        watched = WatchedStore(faulty)
        with pytest.raises(ObjectUnavailableError):
            await serve_fetch(stack.index, watched, repo_id=REPO, want=[commits[2]])
        assert "abort" in watched.log
        assert "commit" not in watched.log
        (fetch_id,) = stack.store.ids_of("open_fetch")
        assert await stack.store.inner.get_fetch(fetch_id) is None

    async def test_a_cancelled_fetch_aborts_the_upload(self) -> None:
        stack = memory_stack()
        head, _ = await big_history(stack, 2, 1000)
        watched = WatchedStore(stack.store, delay_s=30.0)
        task = asyncio.create_task(serve_fetch(stack.index, watched, repo_id=REPO, want=[head]))
        await watched.opened.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert watched.log[-1] == "abort"
        assert memory_of(stack).fetches == {}

    async def test_blobs_come_in_the_order_they_are_read(self) -> None:
        stack = memory_stack()
        head, brought = await big_history(stack, 6, 1000)
        result = await serve_fetch(
            stack.index, stack.store, repo_id=REPO, want=[head], policy=Policy(max_in_flight=1)
        )
        document = await fetched(stack, result.mpack_id)
        read_order = [brought[call.args[0]] for call in stack.store.reads]
        assert [b["object_id"] for b in document["blobs"]] == read_order


class TestLargeBlobs:
    async def test_a_corrupt_large_blob_written_through_is_rebuilt_from_another_source(
        self,
    ) -> None:
        stack = memory_stack()
        big = content("large", 50_000)
        data, commit = push_of("large", {"big": big, "small": content("small")})
        await ingest(stack, data)
        await stack.store.inner.put_object(blob_id(big), big)
        await stack.store.inner.put_object(blob_id(content("small")), content("small"))
        faulty = FaultyObjectStore(stack.store, faults={"get_mpack_range": Faults(corrupt=1.0)})
        watched = WatchedStore(faulty)
        policy = Policy(max_range_bytes=10_000, request_cost_bytes=0)
        result = await serve_fetch(stack.index, watched, repo_id=REPO, want=[commit], policy=policy)
        document = await fetched(stack, result.mpack_id)
        served = {b["object_id"]: b["content"] for b in document["blobs"]}
        assert served[blob_id(big)] == big
        assert watched.log.count("abort") == 1
        assert watched.log[-1] == "commit"
        assert sorted(stack.store.ids_of("get_object")) == sorted(
            [blob_id(big), blob_id(content("small"))]
        )


class TestOneBuildPerDocument:
    async def test_identical_concurrent_fetches_read_each_push_mpack_once(self) -> None:
        stack = memory_stack()
        commits = await three_commits(stack)
        watched = WatchedStore(stack.store, delay_s=0.05)
        results = await asyncio.gather(
            *(serve_fetch(stack.index, watched, repo_id=REPO, want=[commits[2]]) for _ in range(8))
        )
        read_ids = [call.args[0] for call in stack.store.reads]
        assert sorted(read_ids) == sorted(set(read_ids)), "one set of push-mpack reads"
        assert [r.uploaded for r in results].count(True) == 1
        assert [r.reused for r in results].count(True) == 7
        assert len({r.mpack_id for r in results}) == 1

    async def test_the_limiter_caps_concurrent_builds(self) -> None:
        stack = memory_stack()
        commits = await three_commits(stack)
        watched = WatchedStore(stack.store, delay_s=0.02)
        limiter = FetchLimiter(max_builds=2)
        await asyncio.gather(
            *(
                serve_fetch(
                    stack.index, watched, repo_id=REPO, want=[commit], have=[], limiter=limiter
                )
                for commit in commits
            ),
            serve_fetch(
                stack.index,
                watched,
                repo_id=REPO,
                want=[commits[2]],
                have=[commits[0]],
                limiter=limiter,
            ),
        )
        assert watched.log.count("commit") == 4
        assert watched.most_uploads_open == 2


class TestIndexCalls:
    async def test_index_calls_of_one_fetch_never_overlap(self) -> None:
        stack = memory_stack()
        commits = await three_commits(stack)
        index = OverlapDetector(stack.index)
        await serve_fetch(index, stack.store, repo_id=REPO, want=[commits[2]])
        assert index.calls > 4
        assert index.most_at_once == 1

    async def test_an_index_that_allows_it_gets_overlapping_lookups(self) -> None:
        stack = memory_stack()
        commits = await three_commits(stack)
        index = ConcurrentOverlapDetector(stack.index)
        await serve_fetch(index, stack.store, repo_id=REPO, want=[commits[2]])
        assert index.most_at_once == 2

    async def test_the_deadline_covers_a_stalled_index(self) -> None:
        stack = memory_stack()
        commits = await three_commits(stack)
        index = OverlapDetector(stack.index, delay_s=30.0)
        loop = asyncio.get_running_loop()
        started = loop.time()
        with pytest.raises(FetchDeadlineError):
            await serve_fetch(
                index, stack.store, repo_id=REPO, want=[commits[2]], policy=Policy(deadline_s=0.2)
            )
        assert loop.time() - started < 5.0


@attrs.define
class OverlapDetector(IndexRepoWrapper):
    """An index whose every call takes a moment and that counts calls running at once."""

    delay_s: float = 0.01
    running: int = 0
    most_at_once: int = 0
    calls: int = 0

    async def _call(self, call: Callable[[], Awaitable[T]]) -> T:
        self.calls += 1
        self.running += 1
        self.most_at_once = max(self.most_at_once, self.running)
        try:
            await asyncio.sleep(self.delay_s)
            return await call()
        finally:
            self.running -= 1

    async def resolve_commits(
        self, repo_id: str, want: Collection[str], have: Collection[str]
    ) -> Sequence[Commit]:
        return await self._call(lambda: self.inner.resolve_commits(repo_id, want, have))

    async def load_commits(self, repo_id: str, commit_ids: Collection[str]) -> Sequence[Commit]:
        return await self._call(lambda: self.inner.load_commits(repo_id, commit_ids))

    async def load_snapshots(
        self, repo_id: str, snapshot_ids: Collection[str]
    ) -> Sequence[Snapshot]:
        return await self._call(lambda: self.inner.load_snapshots(repo_id, snapshot_ids))

    async def find_cached(self, object_ids: Collection[str]) -> Mapping[str, bytes]:
        return await self._call(lambda: self.inner.find_cached(object_ids))

    async def find_locations(self, object_ids: Collection[str]) -> Mapping[str, Sequence[Location]]:
        return await self._call(lambda: self.inner.find_locations(object_ids))

    async def branch_heads(self, repo_id: str) -> Mapping[str, str]:
        return await self._call(lambda: self.inner.branch_heads(repo_id))


class ConcurrentOverlapDetector(OverlapDetector):
    concurrent_calls = True


class TestReuseCheckFailing:
    async def test_a_store_failing_to_say_whether_a_document_is_intact_gets_it_rebuilt(
        self,
    ) -> None:
        stack = memory_stack()
        commits = await three_commits(stack)
        await serve_fetch(stack.index, stack.store, repo_id=REPO, want=[commits[2]])
        faulty = FaultyObjectStore(stack.store, faults={"fetch_intact": Faults(error=1.0)})
        result = await serve_fetch(stack.index, faulty, repo_id=REPO, want=[commits[2]])
        assert (result.reused, result.uploaded) == (False, True)
