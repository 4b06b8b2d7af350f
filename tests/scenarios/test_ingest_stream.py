"""A push received in pieces (SPEC §5, issue 13), end to end on every stack: the same
result as the bytes path, and nothing left behind whatever stops it half-way."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator

import attrs
import pytest
from fetchcore.adapters.memory import MemoryIndexRepo, MemoryObjectStore
from fetchcore.adapters.wrapping import ObjectStoreWrapper

from fetchcore import (
    InvalidMPackError,
    Policy,
    PushTooLargeError,
    UnknownCommitError,
    ingest_push,
    serve_fetch,
)
from fetchcore.events import Event, IngestFinished, IngestPhase, IngestStarted
from fetchcore.ids import content_id
from fetchcore.lifecycle import sweep_staging
from fetchcore.ports import IndexRepo, ObjectStore, PushUpload
from fetchcore.testing import blob_entry, blob_id, commit_entry, snapshot_entry
from fetchcore.wire import encode_push
from tests.backends import staged_push_leftovers
from tests.conftest import Stack

REPO = "alice/stems"
STREAMED = Policy(whole_push_bytes=0)
"""Streams every push in pieces (by default a small one is joined and ingested whole)."""
MiB = 1 << 20


def stems(count: int, size: int, seed: str = "stems") -> list[bytes]:
    rng = random.Random(seed)
    return [rng.randbytes(size) for _ in range(count)]


def push_of(contents: list[bytes], *, corrupt_last: bool = False) -> bytes:
    """One commit whose snapshot holds ``contents`` (zstd); the last blob's stored bytes
    flipped in the middle when ``corrupt_last``."""
    blobs = [blob_entry(c, encoding="zstd") for c in contents]
    if corrupt_last:
        stored = bytearray(blobs[-1]["content"])
        stored[len(stored) // 2] ^= 0xFF
        blobs[-1]["content"] = bytes(stored)
    return encode_push(
        commits=[commit_entry("c1", "s1", message="stems")],
        snapshots=[
            snapshot_entry("s1", {f"stem{i}.wav": blob_id(c) for i, c in enumerate(contents)})
        ],
        blobs=blobs,
        branch_heads={"main": "c1"},
    )


# Larger than one S3 part (8 MiB), so that S3 stages a real multipart upload.
LARGE = stems(3, 4 * MiB)
SMALL = stems(5, 3000, "small")


async def chunks_of(
    data: bytes, size: int, *, fail_at: int | None = None, stall_at: asyncio.Event | None = None
) -> AsyncIterator[bytes]:
    """``data`` in chunks of ``size``; at byte ``fail_at`` the client goes away
    (ConnectionResetError), or stalls there forever after setting ``stall_at``."""
    for start in range(0, len(data), size):
        if fail_at is not None and start >= fail_at:
            if stall_at is not None:
                stall_at.set()
                await asyncio.Event().wait()
            raise ConnectionResetError("the client went away")
        yield data[start : start + size]
        await asyncio.sleep(0)


async def assert_nothing_left(stack: Stack, data: bytes) -> None:
    assert await staged_push_leftovers(stack.store) == []
    assert not await stack.store.inner.has_mpack(content_id(data))
    with pytest.raises(UnknownCommitError):
        await stack.index.resolve_commits(REPO, ["c1"], [])
    assert dict(await stack.index.branch_heads(REPO)) == {}


async def index_contents(index: IndexRepo, contents: list[bytes]) -> tuple[object, ...]:
    object_ids = [blob_id(c) for c in contents]
    locations = await index.find_locations(object_ids)
    return (
        [c.to_wire() for c in await index.resolve_commits(REPO, ["c1"], [])],
        dict(await index.branch_heads(REPO)),
        {k: sorted(map(str, v)) for k, v in locations.items()},
        dict(await index.find_cached(object_ids)),
    )


class TestSameAsTheBytesPath:
    @pytest.mark.parametrize("chunk", [1 * MiB, 65_537])
    async def test_same_mpack_stored_bytes_and_index(self, stack: Stack, chunk: int) -> None:
        contents = [*SMALL, *LARGE]
        data = push_of(contents)
        policy = Policy(cache_max_bytes=4096, whole_push_bytes=0)
        streamed = await ingest_push(
            stack.index, stack.store, repo_id=REPO, mpack=chunks_of(data, chunk), policy=policy
        )
        oracle_index, oracle_store = MemoryIndexRepo(), MemoryObjectStore()
        whole = await ingest_push(
            oracle_index, oracle_store, repo_id=REPO, mpack=data, policy=policy
        )
        assert streamed == whole
        assert await stack.store.inner.get_mpack(whole.mpack_id) == data
        assert await index_contents(stack.index, contents) == await index_contents(
            oracle_index, contents
        )
        assert await staged_push_leftovers(stack.store) == []
        fetched = await serve_fetch(stack.index, stack.store, repo_id=REPO, want=["c1"])
        assert fetched.blob_count == len(contents)

    async def test_ingesting_the_same_stream_twice_is_a_no_op_success(self, stack: Stack) -> None:
        data = push_of(SMALL)
        first = await ingest_push(
            stack.index, stack.store, repo_id=REPO, mpack=chunks_of(data, 999), policy=STREAMED
        )
        second = await ingest_push(
            stack.index, stack.store, repo_id=REPO, mpack=chunks_of(data, 7), policy=STREAMED
        )
        assert first == second
        assert await staged_push_leftovers(stack.store) == []


class TestWholePushes:
    """A push in pieces that ends within ``whole_push_bytes`` is joined and ingested as
    ``bytes`` are (no staging); one byte more and it streams."""

    @pytest.mark.parametrize("past_the_limit", [False, True], ids=["within", "past"])
    async def test_the_limit_decides_whole_or_streamed(
        self, stack: Stack, past_the_limit: bool
    ) -> None:
        contents = [*SMALL, *LARGE]
        data = push_of(contents)
        policy = Policy(whole_push_bytes=len(data) - 1 if past_the_limit else len(data))
        result = await ingest_push(
            stack.index, stack.store, repo_id=REPO, mpack=chunks_of(data, MiB), policy=policy
        )
        whole = await ingest_push(
            MemoryIndexRepo(), MemoryObjectStore(), repo_id=REPO, mpack=data, policy=policy
        )
        assert result == whole
        assert await stack.store.inner.get_mpack(whole.mpack_id) == data
        staged = stack.store.args_of("open_push") != []
        assert staged is past_the_limit
        assert (stack.store.ids_of("put_mpack") == [whole.mpack_id]) is not past_the_limit
        assert await staged_push_leftovers(stack.store) == []

    async def test_a_client_gone_before_the_limit_leaves_nothing(self, stack: Stack) -> None:
        data = push_of(SMALL)
        with pytest.raises(ConnectionResetError):
            await ingest_push(
                stack.index,
                stack.store,
                repo_id=REPO,
                mpack=chunks_of(data, 100, fail_at=len(data) // 2),
            )
        await assert_nothing_left(stack, data)
        assert stack.store.args_of("open_push") == []


class TestNothingLeftBehind:
    async def test_a_client_that_goes_away_half_way(self, stack: Stack) -> None:
        data = push_of(LARGE)
        with pytest.raises(ConnectionResetError):
            await ingest_push(
                stack.index,
                stack.store,
                repo_id=REPO,
                mpack=chunks_of(data, MiB, fail_at=len(data) * 3 // 4),
                policy=STREAMED,
            )
        await assert_nothing_left(stack, data)

    async def test_a_corrupt_blob_near_the_end_of_a_large_push(self, stack: Stack) -> None:
        data = push_of(LARGE, corrupt_last=True)
        with pytest.raises(InvalidMPackError) as raised:
            await ingest_push(
                stack.index, stack.store, repo_id=REPO, mpack=chunks_of(data, MiB), policy=STREAMED
            )
        assert raised.value.entry == f"blobs[{len(LARGE) - 1}]"
        await assert_nothing_left(stack, data)

    async def test_cancellation_mid_stream(self, stack: Stack) -> None:
        data = push_of(LARGE)
        stalled = asyncio.Event()
        chunks = chunks_of(data, MiB, fail_at=len(data) * 3 // 4, stall_at=stalled)
        ingest = asyncio.create_task(
            ingest_push(stack.index, stack.store, repo_id=REPO, mpack=chunks, policy=STREAMED)
        )
        await asyncio.wait_for(stalled.wait(), timeout=60)
        ingest.cancel()
        with pytest.raises(asyncio.CancelledError):
            await ingest
        await assert_nothing_left(stack, data)

    async def test_a_push_over_the_size_limit(self, stack: Stack) -> None:
        data = push_of(LARGE)
        policy = Policy(max_push_bytes=len(data) - 1, whole_push_bytes=0)
        with pytest.raises(PushTooLargeError) as raised:
            await ingest_push(
                stack.index, stack.store, repo_id=REPO, mpack=chunks_of(data, MiB), policy=policy
            )
        assert raised.value.limit == len(data) - 1
        await assert_nothing_left(stack, data)

    async def test_a_push_exactly_at_the_size_limit_is_taken(self, stack: Stack) -> None:
        data = push_of(SMALL)
        policy = Policy(max_push_bytes=len(data), whole_push_bytes=0)
        result = await ingest_push(
            stack.index, stack.store, repo_id=REPO, mpack=chunks_of(data, 1000), policy=policy
        )
        assert result.mpack_id == content_id(data)

    @pytest.mark.parametrize(
        ("damage", "complaint"),
        [(lambda d: d[:-1], "truncated"), (lambda d: d + b"\x00", "trailing bytes")],
        ids=["truncated", "trailing bytes"],
    )
    async def test_a_document_cut_short_or_followed_by_bytes(
        self, stack: Stack, damage: object, complaint: str
    ) -> None:
        data = damage(push_of(LARGE))  # type: ignore[operator]
        with pytest.raises(InvalidMPackError, match=complaint):
            await ingest_push(
                stack.index, stack.store, repo_id=REPO, mpack=chunks_of(data, MiB), policy=STREAMED
            )
        await assert_nothing_left(stack, data)

    async def test_a_missing_parent_is_refused_once_the_document_is_complete(
        self, stack: Stack
    ) -> None:
        data = encode_push(
            commits=[commit_entry("c1", "s1", ["nowhere"])],
            snapshots=[snapshot_entry("s1", {})],
        )
        with pytest.raises(InvalidMPackError) as raised:
            await ingest_push(
                stack.index, stack.store, repo_id=REPO, mpack=chunks_of(data, 5), policy=STREAMED
            )
        assert raised.value.missing_ids == ("nowhere",)
        await assert_nothing_left(stack, data)


@attrs.define
class CrashingUpload:
    """A staged push whose process dies: ``abort`` never reaches the store."""

    inner: PushUpload

    async def write(self, chunk: bytes) -> None:
        await self.inner.write(chunk)

    async def commit(self, mpack_id: str) -> None:
        await self.inner.commit(mpack_id)

    async def abort(self) -> None:
        pass


@attrs.define
class CrashingStore(ObjectStoreWrapper):
    async def open_push(self) -> PushUpload:
        return CrashingUpload(await self.inner.open_push())


class TestCrashThenSweep:
    async def test_the_sweep_removes_what_a_crashed_ingest_staged(self, stack: Stack) -> None:
        data = push_of(LARGE)
        crashing = CrashingStore(stack.store.inner)
        with pytest.raises(ConnectionResetError):
            await ingest_push(
                stack.index,
                crashing,
                repo_id=REPO,
                mpack=chunks_of(data, MiB, fail_at=len(data) * 3 // 4),
                policy=STREAMED,
            )
        assert await staged_push_leftovers(stack.store) != []
        assert await sweep_staging(stack.store, min_age_s=3600) == 0  # a running ingest's
        assert await sweep_staging(stack.store, min_age_s=0) >= 1
        await assert_nothing_left(stack, data)


@attrs.define
class PutOnlyStore:
    """A store that can only put whole push mpacks (no staged pushes)."""

    inner: ObjectStore

    async def put_mpack(self, mpack_id: str, data: bytes) -> None:
        await self.inner.put_mpack(mpack_id, data)

    async def has_mpack(self, mpack_id: str) -> bool | None:
        return await self.inner.has_mpack(mpack_id)


class TestStoresWithoutStagedPushes:
    async def test_the_chunks_are_joined_and_put_whole(self) -> None:
        index, store = MemoryIndexRepo(), MemoryObjectStore()
        data = push_of(SMALL)
        result = await ingest_push(
            index, PutOnlyStore(store), repo_id=REPO, mpack=chunks_of(data, 100)
        )
        assert store.mpacks[result.mpack_id] == data

    async def test_joining_stops_at_the_document_limit(self) -> None:
        data = push_of(SMALL)
        policy = Policy(max_document_bytes=len(data) - 1, whole_push_bytes=0)
        store = MemoryObjectStore()
        with pytest.raises(PushTooLargeError):
            await ingest_push(
                MemoryIndexRepo(),
                PutOnlyStore(store),
                repo_id=REPO,
                mpack=chunks_of(data, 100),
                policy=policy,
            )
        assert store.mpacks == {}


@attrs.define
class Collected:
    events: list[Event] = attrs.field(factory=list)

    def emit(self, event: Event) -> None:
        self.events.append(event)


class TestObserved:
    async def test_a_streamed_ingest_reports_its_phases_and_its_size(self) -> None:
        seen = Collected()
        data = push_of(SMALL)
        result = await ingest_push(
            MemoryIndexRepo(),
            MemoryObjectStore(),
            repo_id=REPO,
            mpack=chunks_of(data, 1000),
            policy=STREAMED,
            observer=seen,
        )
        started = next(e for e in seen.events if isinstance(e, IngestStarted))
        finished = next(e for e in seen.events if isinstance(e, IngestFinished))
        assert started.mpack_bytes is None
        assert (finished.outcome, finished.bytes_written) == ("ok", len(data))
        assert [phase for phase, _ in result.timings.phases] == [
            IngestPhase.RECEIVE,
            IngestPhase.CONNECT,
            IngestPhase.STORE,
            IngestPhase.RECORD,
        ]
