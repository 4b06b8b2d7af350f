"""The executor's limits on one fetch (its decoded total, its legacy per-object GETs), and
guards found by planting bugs in it (tools/mutants.py)."""

from __future__ import annotations

import asyncio
import random

import attrs
import pytest
from fetchcore.adapters.recording import RecordingObjectStore
from fetchcore.adapters.wrapping import ObjectStoreWrapper

from fetchcore import FetchTooLargeError, LegacyFallbackLimitError, Location, Policy
from fetchcore.executor import DocumentPoisoned, NeededBlobs, gather_blobs
from fetchcore.ids import content_id
from fetchcore.testing import blob_entry, blob_id
from fetchcore.wire import encode_push, parse_push
from tests.unit.test_executor import (
    FAST,
    CollectingSink,
    Pack,
    contents_of,
    gather_with_stats,
    merged,
    pack,
    stored,
)

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


@attrs.define
class SlowRanges(ObjectStoreWrapper):
    """A store that holds every ranged read ``delay_s``."""

    delay_s: float = 0.3

    async def get_mpack_range(self, mpack_id: str, start: int, end: int) -> bytes | None:
        await asyncio.sleep(self.delay_s)
        return await self.inner.get_mpack_range(mpack_id, start, end)


class TestRangedReads:
    async def test_the_request_timeout_does_not_count_the_wait_for_a_slot(self) -> None:
        # Each mpack holds a large blob nobody asked for: its one needed blob is read by range.
        filler = random.Random(3).randbytes(100_000)
        packs = [pack([c, filler + c]) for c in CONTENTS[:2]]
        store = SlowRanges(await stored(*packs), delay_s=0.3)
        policy = attrs.evolve(
            FAST, max_in_flight=1, request_timeout_s=0.45, read_attempts=1, request_cost_bytes=0
        )
        served, stats = await gather_with_stats(store, CONTENTS[:2], merged(*packs), policy=policy)
        assert contents_of(served) == set(CONTENTS[:2])
        assert (stats.range_gets, stats.mpack_gets, stats.retries) == (2, 0, 0)


def pack_claiming(object_id: str, stored_content: bytes) -> Pack:
    """An mpack whose one zstd entry claims ``object_id`` but holds ``stored_content``."""
    entry = blob_entry(stored_content, encoding="zstd", object_id=object_id)
    data = encode_push(blobs=[entry])
    mpack_id = content_id(data)
    (parsed,) = parse_push(data).blobs
    location = Location(mpack_id, parsed.offset, parsed.length, "zstd", len(data))
    return Pack(mpack_id, data, {object_id: location})


class TestStreamedPassThrough:
    POLICY = attrs.evolve(FAST, max_range_bytes=10_000, request_cost_bytes=0)

    async def test_a_streamed_frame_of_other_content_poisons_the_document(self) -> None:
        wanted, other = (random.Random(seed).randbytes(50_000) for seed in (1, 2))
        p = pack_claiming(blob_id(wanted), other)
        needed = NeededBlobs({blob_id(wanted): blob_id(wanted)}, accept_zstd=True)
        with pytest.raises(DocumentPoisoned):
            await gather_blobs(
                await stored(p),
                needed,
                cache={},
                locations=merged(p),
                policy=self.POLICY,
                sink=CollectingSink(),
            )
