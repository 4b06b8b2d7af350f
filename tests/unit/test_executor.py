"""The executor on in-memory adapters: sources, failures, retries, limits."""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from typing import Any

import attrs
import msgpack
import pytest
import zstandard
from fetchcore.adapters.faults import Faults, FaultyObjectStore
from fetchcore.adapters.memory import MemoryObjectStore
from fetchcore.adapters.recording import RecordingObjectStore
from fetchcore.adapters.wrapping import ObjectStoreWrapper

from fetchcore import (
    FetchNotIndexedError,
    FetchStats,
    FetchTooLargeError,
    InvalidRequestError,
    Location,
    ObjectUnavailableError,
    Policy,
    content,
)
from fetchcore.executor import ByteBudget, DocumentPoisoned, NeededBlobs, gather_blobs
from fetchcore.ids import content_id
from fetchcore.ports import FetchStore, FetchUpload, RangedReads
from fetchcore.testing import blob_entry, blob_id
from fetchcore.wire import OutgoingBlob, encode_push, parse_push

FAST = Policy(retry_backoff_s=0.0, request_timeout_s=1.0)


@attrs.frozen
class Pack:
    """An mpack in a store, and where each of its blobs sits."""

    mpack_id: str
    data: bytes
    locations: dict[str, Location]


def pack(contents: Sequence[bytes], *, encoding: str = "identity") -> Pack:
    data = encode_push(blobs=[blob_entry(c, encoding=encoding) for c in contents])
    mpack_id = content_id(data)
    locations = {
        entry.object_id: Location(mpack_id, entry.offset, entry.length, entry.encoding, len(data))
        for entry in parse_push(data).blobs
    }
    return Pack(mpack_id, data, locations)


def merged(*packs: Pack) -> dict[str, list[Location]]:
    found: dict[str, list[Location]] = {}
    for p in packs:
        for object_id, location in p.locations.items():
            found.setdefault(object_id, []).append(location)
    return found


async def stored(*packs: Pack) -> MemoryObjectStore:
    store = MemoryObjectStore()
    for p in packs:
        await store.put_mpack(p.mpack_id, p.data)
    return store


async def gather(
    store: FetchStore,
    contents: Sequence[bytes],
    locations: Mapping[str, Sequence[Location]],
    *,
    cache: Mapping[str, bytes] | None = None,
    policy: Policy = FAST,
) -> dict[str, OutgoingBlob]:
    served, _ = await gather_with_stats(store, contents, locations, cache=cache, policy=policy)
    return served


async def gather_with_stats(
    store: FetchStore,
    contents: Sequence[bytes],
    locations: Mapping[str, Sequence[Location]],
    *,
    cache: Mapping[str, bytes] | None = None,
    policy: Policy = FAST,
    accept_zstd: bool = False,
) -> tuple[dict[str, OutgoingBlob], FetchStats]:
    """Gather into a dict; raise ObjectUnavailableError as serve_fetch does."""
    needed = NeededBlobs({blob_id(c): blob_id(c) for c in contents}, accept_zstd)
    sink = CollectingSink()
    unavailable, stats = await gather_blobs(
        store, needed, cache=cache or {}, locations=locations, policy=policy, sink=sink
    )
    if unavailable:
        raise ObjectUnavailableError(unavailable)
    return sink.served, stats


@attrs.define
class CollectingSink:
    """A BlobSink that keeps what it is given; streamed blobs are joined from their pieces."""

    served: dict[str, OutgoingBlob] = attrs.field(factory=dict)
    pieces: list[int] = attrs.field(factory=list)
    """The length of every streamed piece, in order."""

    async def add_encoded(self, object_ids: Sequence[str], encoded: bytes) -> None:
        entries = msgpack.Unpacker(raw=False)
        entries.feed(encoded)
        for object_id, entry in zip(object_ids, entries, strict=True):
            assert object_id not in self.served, "each blob reaches the sink once"
            encoding = entry.get("encoding", "identity")
            self.served[object_id] = OutgoingBlob(entry["object_id"], entry["content"], encoding)

    @contextlib.asynccontextmanager
    async def streamed(
        self, object_id: str, written_id: str, encoding: str, length: int
    ) -> AsyncIterator[Callable[[bytes], Awaitable[None]]]:
        assert object_id not in self.served, "each blob reaches the sink once"
        parts: list[bytes] = []

        async def write(piece: bytes) -> None:
            self.pieces.append(len(piece))
            parts.append(bytes(piece))

        yield write
        content = b"".join(parts)
        assert len(content) == length, "the announced length is the length written"
        self.served[object_id] = OutgoingBlob(written_id, content, encoding)


def contents_of(served: Mapping[str, OutgoingBlob]) -> set[bytes]:
    return {bytes(blob.content) for blob in served.values()}


CONTENTS = [f"blob number {i}".encode() * 20 for i in range(30)]


class TestSources:
    async def test_a_whole_read_serves_every_blob_verified(self) -> None:
        p = pack(CONTENTS, encoding="zstd")
        served = await gather(await stored(p), CONTENTS, merged(p))
        assert contents_of(served) == set(CONTENTS)

    async def test_a_corrupt_cache_entry_is_replaced_by_the_mpack(self) -> None:
        p = pack(CONTENTS[:1])
        store = RecordingObjectStore(await stored(p))
        cache = {blob_id(CONTENTS[0]): b"rotten"}
        served = await gather(store, CONTENTS[:1], merged(p), cache=cache)
        assert contents_of(served) == {CONTENTS[0]}
        assert store.ids_of("get_mpack") == [p.mpack_id]

    async def test_a_corrupt_cache_entry_without_location_goes_to_the_legacy_key(self) -> None:
        store = RecordingObjectStore(MemoryObjectStore())
        await store.put_object(blob_id(CONTENTS[0]), CONTENTS[0])
        served = await gather(store, CONTENTS[:1], {}, cache={blob_id(CONTENTS[0]): b"rotten"})
        assert contents_of(served) == {CONTENTS[0]}

    async def test_unindexed_blobs_fail_before_any_read(self) -> None:
        p = pack(CONTENTS[:2])
        store = RecordingObjectStore(await stored(p))
        locations = merged(p)
        del locations[blob_id(CONTENTS[1])]
        with pytest.raises(FetchNotIndexedError) as raised:
            await gather(store, CONTENTS[:2], locations)
        assert raised.value.object_ids == (blob_id(CONTENTS[1]),)
        assert store.calls == []


class TestFailedSources:
    async def test_a_missing_mpack_sends_its_blobs_to_another_home(self) -> None:
        lost, kept = pack(CONTENTS), pack([*CONTENTS[::-1], b"extra"])
        store = RecordingObjectStore(await stored(kept))
        served = await gather(store, CONTENTS, merged(lost, kept))
        assert contents_of(served) == set(CONTENTS)
        reads = [call.args[0] for call in store.reads]
        assert len(reads) == len(set(reads)), "each mpack is read at most once"

    async def test_a_corrupt_range_fails_only_its_blobs(self) -> None:
        big = [bytes([i]) * 50_000 for i in range(8)]
        p = pack(big)
        needed = big[::4]  # two blobs far apart: two ranges
        victim = p.locations[blob_id(big[0])]
        assert victim.span is not None
        faulty = FaultyObjectStore(await stored(p), faults={"get_mpack_range": Faults(corrupt=1.0)})
        legacy = RecordingObjectStore(faulty)
        await legacy.put_object(blob_id(big[0]), big[0])
        await legacy.put_object(blob_id(big[4]), big[4])
        policy = attrs.evolve(FAST, request_cost_bytes=0, coalesce_gap_bytes=0)
        served = await gather(legacy, needed, merged(p), policy=policy)
        assert contents_of(served) == set(needed)
        assert len(legacy.args_of("get_mpack_range")) == 2
        assert sorted(legacy.ids_of("get_object")) == sorted(blob_id(c) for c in needed)

    async def test_each_mpack_is_read_once_even_when_it_fails(self) -> None:
        a, b = pack(CONTENTS), pack(CONTENTS[::-1])
        faulty = FaultyObjectStore(await stored(a, b), faults={"get_mpack": Faults(lose=1.0)})
        store = RecordingObjectStore(faulty)
        with pytest.raises(ObjectUnavailableError) as raised:
            await gather(store, CONTENTS, merged(a, b))
        assert raised.value.object_ids == tuple(sorted(blob_id(c) for c in CONTENTS))
        assert sorted(store.ids_of("get_mpack")) == sorted([a.mpack_id, b.mpack_id])
        assert len(store.ids_of("get_object")) == len(CONTENTS)

    async def test_a_wrong_legacy_object_is_not_served(self) -> None:
        store = MemoryObjectStore()
        store.objects[blob_id(CONTENTS[0])] = b"impostor"
        locations = {blob_id(CONTENTS[0]): [Location(content_id(b"gone"))]}
        with pytest.raises(ObjectUnavailableError):
            await gather(store, CONTENTS[:1], locations)


class TestResilience:
    async def test_a_transient_error_is_retried(self) -> None:
        p = pack(CONTENTS)
        faulty = FaultyObjectStore(await stored(p), faults={"get_mpack": Faults(error=0.5)}, seed=3)
        policy = attrs.evolve(FAST, read_attempts=20)
        served, stats = await gather_with_stats(faulty, CONTENTS, merged(p), policy=policy)
        assert contents_of(served) == set(CONTENTS)
        assert stats.retries == faulty.injected[("get_mpack", "error")] > 0
        assert stats.mpack_gets == stats.retries + 1

    async def test_a_stalled_request_times_out_and_is_retried(self) -> None:
        p = pack(CONTENTS)
        faulty = FaultyObjectStore(await stored(p), faults={"get_mpack": Faults(stall=0.5)}, seed=1)
        policy = attrs.evolve(FAST, request_timeout_s=0.05, read_attempts=30)
        served = await gather(faulty, CONTENTS, merged(p), policy=policy)
        assert contents_of(served) == set(CONTENTS)
        assert faulty.injected[("get_mpack", "stall")] > 0

    async def test_requests_in_flight_never_exceed_the_cap(self) -> None:
        packs = [pack([c]) for c in CONTENTS]
        counting = InFlightCounter(await stored(*packs))
        await gather(counting, CONTENTS, merged(*packs), policy=attrs.evolve(FAST, max_in_flight=4))
        assert counting.peak == 4


@attrs.define
class InFlightCounter(ObjectStoreWrapper):
    """A store that holds each read a moment and remembers the most reads at once."""

    current: int = 0
    peak: int = 0

    async def _held(self, data: bytes | None) -> bytes | None:
        self.current += 1
        self.peak = max(self.peak, self.current)
        await asyncio.sleep(0.01)
        self.current -= 1
        return data

    async def get_object(self, object_id: str) -> bytes | None:
        return await self._held(await self.inner.get_object(object_id))

    async def get_mpack(self, mpack_id: str) -> bytes | None:
        return await self._held(await self.inner.get_mpack(mpack_id))

    async def get_mpack_range(self, mpack_id: str, start: int, end: int) -> bytes | None:
        return await self._held(await self.inner.get_mpack_range(mpack_id, start, end))


class SelfRetryingStore(RecordingObjectStore):
    """A store that declares it retries its own transient faults (as the S3 store does)."""

    retries_reads = True


@attrs.define
class SlowStore(ObjectStoreWrapper):
    """A store that holds every read ``delay_s``."""

    delay_s: float = 0.3

    async def get_mpack(self, mpack_id: str) -> bytes | None:
        await asyncio.sleep(self.delay_s)
        return await self.inner.get_mpack(mpack_id)


@attrs.define
class RefusingStore(ObjectStoreWrapper):
    """A store that refuses one mpack id as malformed (as for a bad id from an index)."""

    refused: str = ""
    asked: list[str] = attrs.field(factory=list)

    async def get_mpack(self, mpack_id: str) -> bytes | None:
        self.asked.append(mpack_id)
        if mpack_id == self.refused:
            raise InvalidRequestError(f"not an mpack id: {mpack_id}")
        return await self.inner.get_mpack(mpack_id)


@attrs.define
class WholeReadsOnly:
    """A store with whole GETs only: no get_mpack_range (not RangedReads)."""

    inner: MemoryObjectStore
    asked: list[str] = attrs.field(factory=list)

    async def get_object(self, object_id: str) -> bytes | None:
        return await self.inner.get_object(object_id)

    async def get_mpack(self, mpack_id: str) -> bytes | None:
        self.asked.append(mpack_id)
        return await self.inner.get_mpack(mpack_id)

    async def open_fetch(self, fetch_id: str) -> FetchUpload:
        return await self.inner.open_fetch(fetch_id)

    async def fetch_intact(self, fetch_id: str) -> bool | None:
        return await self.inner.fetch_intact(fetch_id)

    async def get_fetch(self, fetch_id: str) -> bytes | None:
        return await self.inner.get_fetch(fetch_id)

    async def presign_fetch(self, fetch_id: str, ttl_s: int) -> str | None:
        return await self.inner.presign_fetch(fetch_id, ttl_s)


class TestOneSourceFails:
    async def test_an_invalid_request_fails_that_source_only_and_is_not_retried(self) -> None:
        a, b = pack(CONTENTS[:3]), pack([*CONTENTS[:3], b"other"])
        store = RefusingStore(await stored(a, b), refused=a.mpack_id)
        locations = {o: [a.locations[o], b.locations[o]] for o in a.locations}
        served = await gather(store, CONTENTS[:3], locations)
        assert contents_of(served) == set(CONTENTS[:3])
        assert store.asked.count(a.mpack_id) == 1
        assert store.asked.count(b.mpack_id) == 1

    async def test_a_request_is_tried_exactly_read_attempts_times(self) -> None:
        p = pack(CONTENTS[:1])
        faulty = FaultyObjectStore(await stored(p), faults={"get_mpack": Faults(error=1.0)})
        store = RecordingObjectStore(faulty)
        with pytest.raises(ObjectUnavailableError):
            await gather(store, CONTENTS[:1], merged(p), policy=attrs.evolve(FAST, read_attempts=3))
        assert len(store.ids_of("get_mpack")) == 3

    async def test_a_store_that_retries_its_own_reads_is_asked_once_then_fails_over(
        self,
    ) -> None:
        a, b = pack(CONTENTS[:1]), pack([*CONTENTS[:1], b"other"])
        faults = {"get_mpack": Faults(error=1.0)}
        faulty = FaultyObjectStore(await stored(a, b), faults=faults, targets={a.mpack_id})
        store = SelfRetryingStore(faulty)
        locations = {o: [a.locations[o], b.locations[o]] for o in a.locations}
        policy = attrs.evolve(FAST, read_attempts=3)
        served, stats = await gather_with_stats(store, CONTENTS[:1], locations, policy=policy)
        assert contents_of(served) == set(CONTENTS[:1])
        assert store.ids_of("get_mpack") == [a.mpack_id, b.mpack_id]
        assert stats.retries == 0

    async def test_the_request_timeout_does_not_count_the_wait_for_a_slot(self) -> None:
        packs = [pack([c]) for c in CONTENTS[:2]]
        store = SlowStore(await stored(*packs), delay_s=0.3)
        policy = attrs.evolve(FAST, max_in_flight=1, request_timeout_s=0.45, read_attempts=1)
        served, stats = await gather_with_stats(store, CONTENTS[:2], merged(*packs), policy=policy)
        assert contents_of(served) == set(CONTENTS[:2])
        assert stats.retries == 0

    async def test_the_legacy_key_is_asked_with_the_id_as_the_manifest_wrote_it(self) -> None:
        store = RecordingObjectStore(MemoryObjectStore())
        await store.put_object(blob_id(CONTENTS[0]), CONTENTS[0])
        bare = blob_id(CONTENTS[0], bare=True)
        needed = NeededBlobs({blob_id(CONTENTS[0]): bare})
        locations = {blob_id(CONTENTS[0]): [Location(content_id(b"gone"))]}
        sink = CollectingSink()
        unavailable, _ = await gather_blobs(
            store, needed, cache={}, locations=locations, policy=FAST, sink=sink
        )
        served = sink.served
        assert unavailable == []
        assert store.ids_of("get_object") == [bare]
        assert served[blob_id(CONTENTS[0])].object_id == bare

    async def test_a_store_without_ranged_reads_is_read_whole(self) -> None:
        big = [bytes([i]) * 50_000 for i in range(8)]
        p = pack(big)
        store = WholeReadsOnly(await stored(p))
        assert not isinstance(store, RangedReads)
        policy = attrs.evolve(FAST, request_cost_bytes=0, coalesce_gap_bytes=0)
        served, stats = await gather_with_stats(store, big[::4], merged(p), policy=policy)
        assert contents_of(served) == set(big[::4])
        assert (stats.mpack_gets, stats.range_gets) == (1, 0)


class TestZstdPassThrough:
    async def test_the_frame_passed_through_is_exactly_the_stored_frame(self) -> None:
        p = pack(CONTENTS[:1], encoding="zstd")
        served, _ = await gather_with_stats(
            await stored(p), CONTENTS[:1], merged(p), accept_zstd=True
        )
        (blob,) = served.values()
        location = p.locations[blob_id(CONTENTS[0])]
        assert location.span is not None
        assert blob.encoding == "zstd"
        assert bytes(blob.content) == p.data[location.span[0] : location.span[1]]

    async def test_a_frame_of_other_content_is_not_passed_through(self) -> None:
        # Ingest refuses such an mpack, so one can only be met as a replaced copy: its
        # bytes do not match its id, and each blob is checked on its own.
        impostor = blob_entry(b"something else entirely", encoding="zstd")
        impostor["object_id"] = blob_id(CONTENTS[0])
        data = encode_push(blobs=[impostor])
        (entry,) = parse_push(data).blobs
        mpack_id = content_id(encode_push(blobs=[blob_entry(CONTENTS[0], encoding="zstd")]))
        store = MemoryObjectStore()
        await store.put_mpack(mpack_id, data)
        location = Location(mpack_id, entry.offset, entry.length, "zstd", len(data))
        with pytest.raises(ObjectUnavailableError):
            await gather_with_stats(
                store, CONTENTS[:1], {blob_id(CONTENTS[0]): [location]}, accept_zstd=True
            )


def damaged(p: Pack, content: bytes) -> bytes:
    """The bytes of ``p`` with one byte of ``content``'s stored span flipped."""
    span = p.locations[blob_id(content)].span
    assert span is not None
    data = bytearray(p.data)
    data[span[0]] ^= 0xFF
    return bytes(data)


@attrs.define
class CountedHashes:
    """Counts the per-blob verifications (decode and hash against the id)."""

    calls: int = 0

    def install(self, monkeypatch: pytest.MonkeyPatch) -> None:
        verify = content.decode_verified

        def counted(*args: Any, **kwargs: Any) -> bytes:
            self.calls += 1
            return verify(*args, **kwargs)

        monkeypatch.setattr(content, "decode_verified", counted)


class TestWholeMpackVerification:
    async def test_an_intact_whole_mpack_is_one_hash_for_all_its_blobs(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        p = pack(CONTENTS, encoding="zstd")
        hashes = CountedHashes()
        hashes.install(monkeypatch)
        served, stats = await gather_with_stats(await stored(p), CONTENTS, merged(p))
        assert contents_of(served) == set(CONTENTS)
        assert stats.mpack_gets == 1
        assert stats.verified_whole_mpacks == 1
        assert hashes.calls == 0

    async def test_a_damaged_copy_has_each_blob_checked_and_only_the_bad_one_moves_on(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        p = pack(CONTENTS)
        store = RecordingObjectStore(MemoryObjectStore())
        await store.put_mpack(p.mpack_id, damaged(p, CONTENTS[3]))
        await store.put_object(blob_id(CONTENTS[3]), CONTENTS[3])
        hashes = CountedHashes()
        hashes.install(monkeypatch)
        served, stats = await gather_with_stats(store, CONTENTS, merged(p))
        assert contents_of(served) == set(CONTENTS)
        assert stats.verified_whole_mpacks == 0
        assert hashes.calls == len(CONTENTS) + 1  # each blob of the mpack, then the legacy one
        assert store.ids_of("get_object") == [blob_id(CONTENTS[3])]

    async def test_a_damaged_copy_without_another_source_fails_only_the_bad_blob(self) -> None:
        p = pack(CONTENTS)
        store = MemoryObjectStore()
        await store.put_mpack(p.mpack_id, damaged(p, CONTENTS[3]))
        with pytest.raises(ObjectUnavailableError) as raised:
            await gather_with_stats(store, CONTENTS, merged(p))
        assert raised.value.object_ids == (blob_id(CONTENTS[3]),)

    async def test_zstd_passed_through_from_an_intact_mpack_is_the_stored_frame(self) -> None:
        p = pack(CONTENTS, encoding="zstd")
        served, stats = await gather_with_stats(
            await stored(p), CONTENTS, merged(p), accept_zstd=True
        )
        assert stats.verified_whole_mpacks == 1
        for object_id, blob in served.items():
            span = p.locations[object_id].span
            assert span is not None
            assert blob.encoding == "zstd"
            assert bytes(blob.content) == p.data[span[0] : span[1]]

    @pytest.mark.parametrize("accept_zstd", [False, True])
    async def test_blob_limits_hold_in_an_intact_mpack(self, accept_zstd: bool) -> None:
        large = b"x" * 1_000
        p = pack([large, CONTENTS[0]], encoding="zstd")
        policy = attrs.evolve(FAST, max_blob_bytes=999)
        with pytest.raises(ObjectUnavailableError) as raised:
            await gather_with_stats(
                await stored(p),
                [large, CONTENTS[0]],
                merged(p),
                policy=policy,
                accept_zstd=accept_zstd,
            )
        assert raised.value.object_ids == (blob_id(large),)

    @pytest.mark.parametrize("accept_zstd", [False, True])
    async def test_the_decoded_total_holds_in_an_intact_mpack(self, accept_zstd: bool) -> None:
        p = pack(CONTENTS, encoding="zstd")
        total = sum(len(c) for c in CONTENTS)
        policy = attrs.evolve(FAST, max_fetch_decoded_bytes=total - 1)
        with pytest.raises(FetchTooLargeError):
            await gather_with_stats(
                await stored(p), CONTENTS, merged(p), policy=policy, accept_zstd=accept_zstd
            )


class TestByteBudget:
    async def test_holders_never_exceed_the_limit_together(self) -> None:
        budget = ByteBudget(100)
        peak = 0

        async def hold(size: int) -> None:
            nonlocal peak
            async with budget.hold(size):
                peak = max(peak, budget.used)
                await asyncio.sleep(0.01)

        await asyncio.gather(*(hold(40) for _ in range(6)))
        assert peak == 80

    async def test_holders_that_fill_the_limit_exactly_run_together(self) -> None:
        budget = ByteBudget(100)
        seen: list[int] = []

        async def hold(size: int) -> None:
            async with budget.hold(size):
                seen.append(budget.used)
                await asyncio.sleep(0.01)

        await asyncio.gather(hold(60), hold(40))
        assert max(seen) == 100

    async def test_a_holder_larger_than_the_limit_runs_alone(self) -> None:
        budget = ByteBudget(100)
        seen: list[int] = []

        async def hold(size: int) -> None:
            async with budget.hold(size):
                seen.append(budget.used)
                await asyncio.sleep(0.01)

        await asyncio.gather(hold(10), hold(150), hold(10))
        assert 150 in seen
        assert max(seen) == 150

    async def test_a_gather_holds_at_most_its_budget_in_reads(self) -> None:
        big = [bytes([i]) * 50_000 for i in range(8)]
        packs = [pack([c]) for c in big]
        budget = ByteBudget(120_000)
        counting = InFlightCounter(await stored(*packs))
        needed = NeededBlobs({blob_id(c): blob_id(c) for c in big})

        sink = CollectingSink()
        await gather_blobs(
            counting,
            needed,
            cache={},
            locations=merged(*packs),
            policy=FAST,
            sink=sink,
            budget=budget,
        )
        assert counting.peak == 2  # each mpack is a little over 50,000 bytes


def unsized_frame(data: bytes) -> bytes:
    return zstandard.ZstdCompressor(write_content_size=False).compress(data)


class TestBlobsLargerThanARange:
    """With max_range_bytes of 10,000, a blob of 50,000 stored bytes is read in 5 pieces."""

    POLICY = attrs.evolve(FAST, max_range_bytes=10_000, request_cost_bytes=0)
    BIG = random.Random(7).randbytes(50_000)

    async def test_an_identity_blob_is_read_in_pieces_no_longer_than_a_range(self) -> None:
        p = pack([self.BIG])
        store = RecordingObjectStore(await stored(p))
        sink = CollectingSink()
        needed = NeededBlobs({blob_id(self.BIG): blob_id(self.BIG)})
        await gather_blobs(
            store, needed, cache={}, locations=merged(p), policy=self.POLICY, sink=sink
        )
        assert bytes(sink.served[blob_id(self.BIG)].content) == self.BIG
        ranges = store.args_of("get_mpack_range")
        assert [end - start for _, start, end in ranges] == [10_000] * 5
        assert store.ids_of("get_mpack") == []
        assert sink.pieces == [10_000] * 5

    async def test_a_zstd_blob_is_decoded_as_a_stream(self) -> None:
        p = pack([self.BIG], encoding="zstd")  # random bytes: the frame is as long as they are
        store = RecordingObjectStore(await stored(p))
        served, stats = await gather_with_stats(store, [self.BIG], merged(p), policy=self.POLICY)
        assert bytes(served[blob_id(self.BIG)].content) == self.BIG
        assert served[blob_id(self.BIG)].encoding == "identity"
        ranges = store.args_of("get_mpack_range")
        assert all(end - start <= 10_000 for _, start, end in ranges)
        assert (stats.mpack_gets, stats.range_gets) == (0, len(ranges))
        assert len(ranges) > 1

    async def test_a_zstd_blob_passed_through_is_exactly_its_frame(self) -> None:
        p = pack([self.BIG], encoding="zstd")
        served, _ = await gather_with_stats(
            await stored(p), [self.BIG], merged(p), policy=self.POLICY, accept_zstd=True
        )
        location = p.locations[blob_id(self.BIG)]
        assert location.span is not None
        assert bytes(served[blob_id(self.BIG)].content) == p.data[slice(*location.span)]

    async def test_an_unsized_frame_is_decoded_before_it_is_written(self) -> None:
        entry = {
            "object_id": blob_id(self.BIG),
            "encoding": "zstd",
            "content": unsized_frame(self.BIG),
        }
        data = encode_push(blobs=[entry])
        (parsed,) = parse_push(data).blobs
        store = MemoryObjectStore()
        await store.put_mpack(content_id(data), data)
        location = Location(content_id(data), parsed.offset, parsed.length, "zstd", len(data))
        served, _ = await gather_with_stats(
            store, [self.BIG], {blob_id(self.BIG): [location]}, policy=self.POLICY
        )
        assert bytes(served[blob_id(self.BIG)].content) == self.BIG

    async def test_a_corrupt_blob_written_through_poisons_the_document(self) -> None:
        p = pack([self.BIG])
        faulty = FaultyObjectStore(await stored(p), faults={"get_mpack_range": Faults(corrupt=1.0)})
        needed = NeededBlobs({blob_id(self.BIG): blob_id(self.BIG)})
        with pytest.raises(DocumentPoisoned) as raised:
            await gather_blobs(
                faulty,
                needed,
                cache={},
                locations=merged(p),
                policy=self.POLICY,
                sink=CollectingSink(),
            )
        assert raised.value.mpack_id == p.mpack_id
