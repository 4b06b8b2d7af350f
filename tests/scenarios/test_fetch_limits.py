"""A fetch's guards end to end: its decoded total, its legacy GETs, its deadline."""

from __future__ import annotations

import asyncio
import time
import tracemalloc
from collections.abc import Collection, Mapping, Sequence

import attrs
import pytest
from fetchcore.adapters.memory import MemoryIndexRepo, MemoryObjectStore
from fetchcore.adapters.recording import RecordingObjectStore
from fetchcore.adapters.wrapping import IndexRepoWrapper

from fetchcore import (
    FetchDeadlineError,
    FetchTooLargeError,
    LegacyFallbackLimitError,
    Location,
    Policy,
    ingest_push,
    serve_fetch,
)
from fetchcore.ids import content_id
from fetchcore.policy import MiB
from fetchcore.testing import blob_id
from tests.s3_support import s3_test_store
from tests.scenarios.seeding import push_of

REPO = "alice/songs"


def compressible(count: int, size: int) -> dict[str, bytes]:
    """Files of ``size`` bytes that zstd stores in a few hundred bytes each."""
    return {f"f{i}": f"{i}".encode().ljust(size, b"\0") for i in range(count)}


class TestDecodedLimit:
    async def test_a_tiny_push_cannot_make_a_fetch_allocate_its_decoded_size(self) -> None:
        # The report: a 14 KiB push of legal zstd blobs made one fetch allocate 768 MiB.
        files = compressible(32, 8 * MiB)
        data, commit = push_of("bomb", files)
        assert len(data) < 32 * 1024
        index, memory = MemoryIndexRepo(), MemoryObjectStore()
        await ingest_push(index, memory, repo_id=REPO, mpack=data)
        policy = Policy(max_fetch_decoded_bytes=8 * MiB)
        tracemalloc.start()
        try:
            with pytest.raises(FetchTooLargeError):
                await serve_fetch(index, memory, repo_id=REPO, want=[commit], policy=policy)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert peak < 48 * MiB  # 256 MiB decoded without the limit
        assert memory.fetches == {}

    async def test_a_fetch_decoding_to_exactly_the_limit_is_served(self) -> None:
        files = compressible(4, 64 * 1024)
        data, commit = push_of("exact", files)
        index, memory = MemoryIndexRepo(), MemoryObjectStore()
        await ingest_push(index, memory, repo_id=REPO, mpack=data)
        exact = Policy(max_fetch_decoded_bytes=4 * 64 * 1024)
        result = await serve_fetch(index, memory, repo_id=REPO, want=[commit], policy=exact)
        assert result.blob_count == 4
        over = attrs.evolve(exact, max_fetch_decoded_bytes=4 * 64 * 1024 - 1)
        fresh = MemoryObjectStore(mpacks=memory.mpacks)
        with pytest.raises(FetchTooLargeError):
            await serve_fetch(index, fresh, repo_id=REPO, want=[commit], policy=over)
        assert fresh.fetches == {}


class TestLegacyGetLimit:
    async def test_a_store_without_the_push_mpacks_fails_fast_naming_them(self) -> None:
        files = {f"f{i}": f"content {i}".encode() for i in range(5)}
        data, commit = push_of("c", files)
        index = MemoryIndexRepo()
        await ingest_push(index, MemoryObjectStore(), repo_id=REPO, mpack=data)
        elsewhere = RecordingObjectStore(MemoryObjectStore())
        with pytest.raises(LegacyFallbackLimitError) as raised:
            await serve_fetch(
                index, elsewhere, repo_id=REPO, want=[commit], policy=Policy(max_legacy_gets=4)
            )
        assert elsewhere.ids_of("get_object") == []
        assert raised.value.mpack_ids == (content_id(data),)
        assert raised.value.object_ids == tuple(sorted(blob_id(c) for c in files.values()))

    async def test_an_s3_store_with_a_wrong_prefix_fails_without_a_legacy_get(
        self, request: pytest.FixtureRequest
    ) -> None:
        files = {f"f{i}": f"content {i}".encode() for i in range(50)}
        data, commit = push_of("c", files)
        index = MemoryIndexRepo()
        async with s3_test_store(request) as store:
            await ingest_push(index, store, repo_id=REPO, mpack=data)
            # The same bucket under another prefix (inside the test's, so it is cleaned up).
            misplaced = RecordingObjectStore(attrs.evolve(store, prefix=f"{store.prefix}wrong/"))
            policy = Policy(max_legacy_gets=10, retry_backoff_s=0.0)
            started = time.perf_counter()
            with pytest.raises(LegacyFallbackLimitError) as raised:
                await serve_fetch(index, misplaced, repo_id=REPO, want=[commit], policy=policy)
            elapsed = time.perf_counter() - started
        print(f"storm guard on S3 with a wrong prefix: {elapsed:.3f} s")
        assert misplaced.ids_of("get_object") == []
        assert raised.value.mpack_ids == (content_id(data),)


@attrs.define
class StalledLookups(IndexRepoWrapper):
    """An index whose location lookup never answers (a hung database), the rest healthy."""

    async def find_locations(self, object_ids: Collection[str]) -> Mapping[str, Sequence[Location]]:
        await asyncio.Event().wait()
        raise AssertionError("never answers")


class TestDeadline:
    async def test_a_stalled_index_lookup_ends_in_a_deadline_error_and_writes_nothing(
        self,
    ) -> None:
        data, commit = push_of("c", {"f": b"content"})
        index, memory = MemoryIndexRepo(), MemoryObjectStore()
        await ingest_push(index, memory, repo_id=REPO, mpack=data)
        policy = Policy(deadline_s=0.2)
        with pytest.raises(FetchDeadlineError):
            await serve_fetch(
                StalledLookups(index), memory, repo_id=REPO, want=[commit], policy=policy
            )
        assert memory.fetches == {}
