"""The executor's limits on one fetch: its decoded total and its legacy per-object GETs."""

from __future__ import annotations

import random

import attrs
import pytest
from fetchcore.adapters.recording import RecordingObjectStore

from fetchcore import FetchTooLargeError, LegacyFallbackLimitError, Policy
from fetchcore.executor import NeededBlobs, gather_blobs
from fetchcore.testing import blob_id
from tests.unit.test_executor import FAST, CollectingSink, gather_with_stats, merged, pack, stored

CONTENTS = [f"compressible blob {i} ".encode() * 50 for i in range(10)]
TOTAL = sum(len(c) for c in CONTENTS)


def limited(limit: int, policy: Policy = FAST) -> Policy:
    return attrs.evolve(policy, max_fetch_decoded_bytes=limit)


class TestFetchDecodedLimit:
    async def test_zstd_blobs_decoding_to_exactly_the_limit_are_served(self) -> None:
        p = pack(CONTENTS, encoding="zstd")
        served, _ = await gather_with_stats(
            await stored(p), CONTENTS, merged(p), policy=limited(TOTAL)
        )
        assert len(served) == len(CONTENTS)

    async def test_zstd_blobs_one_byte_over_the_limit_stop_the_fetch_without_fallback(
        self,
    ) -> None:
        first, second = pack(CONTENTS, encoding="zstd"), pack(CONTENTS[::-1], encoding="zstd")
        store = RecordingObjectStore(await stored(first, second))
        with pytest.raises(FetchTooLargeError) as raised:
            await gather_with_stats(
                store, CONTENTS, merged(first, second), policy=limited(TOTAL - 1)
            )
        assert raised.value.limit == TOTAL - 1
        # Every source holds the same content: no other mpack and no legacy key is tried.
        assert len({call.args[0] for call in store.reads}) == 1
        assert store.ids_of("get_object") == []

    async def test_identity_blobs_of_exactly_the_limit_are_served(self) -> None:
        p = pack(CONTENTS)
        served, _ = await gather_with_stats(
            await stored(p), CONTENTS, merged(p), policy=limited(TOTAL)
        )
        assert len(served) == len(CONTENTS)

    async def test_identity_sizes_over_the_limit_are_refused_before_any_read(self) -> None:
        p = pack(CONTENTS)
        store = RecordingObjectStore(await stored(p))
        with pytest.raises(FetchTooLargeError):
            await gather_with_stats(store, CONTENTS, merged(p), policy=limited(TOTAL - 1))
        assert store.calls == []

    async def test_cache_entries_count_against_the_limit(self) -> None:
        p = pack(CONTENTS, encoding="zstd")
        store = RecordingObjectStore(await stored(p))
        cache = {blob_id(CONTENTS[0]): CONTENTS[0]}
        with pytest.raises(FetchTooLargeError):
            await gather_with_stats(
                store, CONTENTS, merged(p), cache=cache, policy=limited(len(CONTENTS[0]) - 1)
            )
        assert store.calls == []


class TestBlobLargerThanARange:
    POLICY = attrs.evolve(FAST, max_range_bytes=10_000, request_cost_bytes=0)
    BIG = random.Random(7).randbytes(50_000)

    async def test_a_streamed_blob_of_exactly_the_limit_is_served(self) -> None:
        p = pack([self.BIG], encoding="zstd")
        served, _ = await gather_with_stats(
            await stored(p), [self.BIG], merged(p), policy=limited(len(self.BIG), self.POLICY)
        )
        assert bytes(served[blob_id(self.BIG)].content) == self.BIG

    async def test_a_streamed_blob_one_byte_over_is_refused_before_a_piece_is_written(
        self,
    ) -> None:
        p = pack([self.BIG], encoding="zstd")
        sink = CollectingSink()
        needed = NeededBlobs({blob_id(self.BIG): blob_id(self.BIG)})
        with pytest.raises(FetchTooLargeError):
            await gather_blobs(
                await stored(p),
                needed,
                cache={},
                locations=merged(p),
                policy=limited(len(self.BIG) - 1, self.POLICY),
                sink=sink,
            )
        assert sink.pieces == []


class TestLegacyGetLimit:
    """The mpack is missing from the store; every blob has a legacy key."""

    async def store_with_legacy_keys_only(self) -> RecordingObjectStore:
        store = RecordingObjectStore(await stored())
        for content in CONTENTS:
            await store.put_object(blob_id(content), content)
        store.calls.clear()
        return store

    async def test_blobs_exactly_at_the_cap_are_served_from_their_legacy_keys(self) -> None:
        p = pack(CONTENTS)
        store = await self.store_with_legacy_keys_only()
        policy = attrs.evolve(FAST, max_legacy_gets=len(CONTENTS))
        served, _ = await gather_with_stats(store, CONTENTS, merged(p), policy=policy)
        assert len(served) == len(CONTENTS)
        assert len(store.ids_of("get_object")) == len(CONTENTS)

    async def test_one_blob_over_the_cap_fails_before_any_legacy_get(self) -> None:
        p = pack(CONTENTS)
        store = await self.store_with_legacy_keys_only()
        policy = attrs.evolve(FAST, max_legacy_gets=len(CONTENTS) - 1)
        with pytest.raises(LegacyFallbackLimitError) as raised:
            await gather_with_stats(store, CONTENTS, merged(p), policy=policy)
        assert store.ids_of("get_object") == []
        assert raised.value.mpack_ids == (p.mpack_id,)
        assert raised.value.object_ids == tuple(sorted(blob_id(c) for c in CONTENTS))
        assert raised.value.limit == len(CONTENTS) - 1
        assert p.mpack_id in str(raised.value)
