"""The executor: serves every needed blob, verified, into a sink, reading each mpack once.

Rules this module keeps:
- A blob tries its sources in one fixed order, :data:`SOURCE_ORDER`: its
  content-cache entry, the mpack the planner chose, the other mpacks that hold
  it (re-planned with every mpack already read excluded, so no mpack is read
  twice), its legacy per-object key (asked with the id as the manifest wrote
  it), and otherwise it is unavailable. Each stage takes the blobs still
  unserved and returns the ones it could not serve.
- Only verified bytes leave: every blob is decoded and hashed against its id,
  whichever source it came from; a zstd blob passed through is exactly its
  stored frame, and that frame decoded matches the id. One exception, which
  proves the same thing for less: the blobs cut from a whole push mpack whose
  bytes hash to its id are the bytes ingest verified blob by blob, so that one
  sha256 stands in for theirs (they are still decoded within every limit); an
  mpack whose bytes do not match has each blob checked on its own. This trusts
  the locations (span and encoding) to be those ingest recorded from that mpack;
  ``Policy.verify_each_blob`` turns it off.
- The blobs of one gather decode to at most ``Policy.max_fetch_decoded_bytes``,
  refused before any read when the index already knows the sizes and otherwise
  before each frame is decoded; past it the fetch stops (FetchTooLargeError),
  since every other source holds the same content. More blobs left for their
  legacy keys than ``Policy.max_legacy_gets`` stop it before any of those GETs
  (LegacyFallbackLimitError): the mpacks are not where the store looks.
- A failure tied to one source (missing, corrupt, an InvalidRequestError such as
  a malformed mpack id from the index, any StorageError, a timeout) fails that
  source only; its blobs move on to their next source.
- At most ``Policy.max_in_flight`` reads hold data at once, from the request
  until their blobs are in the sink, so memory is bounded by the reads in
  flight times the range size. A blob longer than ``max_range_bytes`` is read
  in pieces of that size, decoded as a stream, hashed and written through; if
  it then fails verification the document is poisoned (:class:`DocumentPoisoned`)
  and the builder starts again without that mpack. Each try of a request has ``request_timeout_s``
  (the wait for a slot does not count); a request is tried ``read_attempts``
  times with jittered backoff, once if the store retries its own faults
  (``retries_reads``: one retry layer per kind of fault).

Decoding and hashing run in one worker thread per gather, so the event loop
keeps issuing requests while earlier reads are verified. One, not several:
small blobs release and retake the GIL thousands of times a second, and
threads contending for it ran 4x slower than one thread alone.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import functools
import random
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Collection, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractAsyncContextManager
from typing import Protocol, TypeVar

import attrs

from fetchcore import content, ids, wire
from fetchcore.errors import (
    FetchNotIndexedError,
    FetchTooLargeError,
    InvalidMPackError,
    InvalidRequestError,
    LegacyFallbackLimitError,
    StorageError,
)
from fetchcore.events import FanOut, FetchPhase, ReadKind
from fetchcore.model import Location
from fetchcore.observation import FetchObservation
from fetchcore.planner import MPackRead, plan_fetch
from fetchcore.policy import Policy
from fetchcore.ports import FetchStore, RangedReads, retries_its_reads
from fetchcore.results import FetchStats

T = TypeVar("T")
Request = Callable[[], Awaitable[bytes | None]]
Blobs = Mapping[str, Location]
WritePiece = Callable[[bytes], Awaitable[None]]


class BlobSink(Protocol):
    """Where verified blobs go (the document writer), each once, as soon as verified."""

    async def add_encoded(self, object_ids: Sequence[str], encoded: bytes) -> None:
        """Verified blobs (canonical ids), already encoded as document entries."""
        ...

    def streamed(
        self, object_id: str, written_id: str, encoding: str, length: int
    ) -> AbstractAsyncContextManager[WritePiece]:
        """A blob of ``length`` content bytes written through in pieces; the caller
        verifies it and raises inside the block if it fails."""
        ...


class DocumentPoisoned(Exception):  # noqa: N818 (a signal to the builder, never raised to users)
    """A blob written through in pieces failed after some of it reached the sink.

    The document cannot be mended: the builder aborts it and builds again without
    ``mpack_id``.
    """

    def __init__(self, mpack_id: str) -> None:
        super().__init__(mpack_id)
        self.mpack_id = mpack_id


SOURCE_ORDER = ("cache", "chosen mpack", "alternate mpacks", "legacy key")
"""Where a blob is looked for, in order; after the last it is unavailable."""


@attrs.frozen
class NeededBlobs:
    """The blobs one fetch must send, and how it may send them."""

    as_written: Mapping[str, str]
    """canonical id -> the id as the manifest wrote it, for every needed blob."""
    accept_zstd: bool = False
    """pass zstd-stored content through (still verified) instead of decoding it."""


class ByteBudget:
    """Bytes that reads may hold at once, shared by the fetches of one limiter.

    A read larger than the whole budget still runs, alone: refusing it would
    make the fetch impossible rather than bounded.
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.used = 0
        self._changed = asyncio.Condition()

    @contextlib.asynccontextmanager
    async def hold(self, size: int) -> AsyncIterator[None]:
        async with self._changed:
            await self._changed.wait_for(lambda: self.used == 0 or self.used + size <= self.limit)
            self.used += size
        try:
            yield
        finally:
            async with self._changed:
                self.used -= size
                self._changed.notify_all()


def unindexed(
    needed: NeededBlobs, cache: Collection[str], locations: Mapping[str, Sequence[Location]]
) -> list[str]:
    """The needed blobs with no cache entry and no location (sorted, as written)."""
    missing = [o for o in needed.as_written if o not in cache and not locations.get(o)]
    return sorted(needed.as_written[o] for o in missing)


def check_indexed(
    needed: NeededBlobs, cache: Collection[str], locations: Mapping[str, Sequence[Location]]
) -> None:
    """Raise FetchNotIndexedError for blobs that no source could ever serve (before any read)."""
    missing = unindexed(needed, cache, locations)
    if missing:
        raise FetchNotIndexedError(missing)


def least_decoded_size(
    object_id: str, cache: Mapping[str, bytes], locations: Mapping[str, Sequence[Location]]
) -> int:
    """The least a blob can decode to, known before reading: the size of its cache entry or
    of an identity location; 0 as soon as one source is zstd (its size is in its frame)."""
    least = len(cache[object_id]) if object_id in cache else None
    for location in locations.get(object_id, ()):
        identity = location.encoding == "identity"
        size = location.length if identity and location.length is not None else 0
        if least is None or size < least:
            least = size
    return least or 0


def check_decoded_size(
    needed: NeededBlobs,
    cache: Mapping[str, bytes],
    locations: Mapping[str, Sequence[Location]],
    policy: Policy,
) -> None:
    """Raise FetchTooLargeError when the sizes the index knows already pass
    ``max_fetch_decoded_bytes`` (before any read; zstd frames are checked as they come)."""
    known = sum(least_decoded_size(o, cache, locations) for o in needed.as_written)
    if known > policy.max_fetch_decoded_bytes:
        raise FetchTooLargeError(policy.max_fetch_decoded_bytes)


# ── cutting and verifying (pure, run on the worker thread) ───────────────────


@attrs.define
class _Extracted:
    """The blobs of one read, verified and already encoded as document entries (on the
    worker: the loop only writes them), and the ids that failed.

    Entries are encoded as each blob is verified, so nothing per blob outlives the loop
    over them: a fetch of many small blobs would otherwise keep a few objects per blob
    alive until the read is done, and the garbage collector would walk them again and again.
    """

    batches: list[_Batch] = attrs.field(factory=list)
    failed: list[str] = attrs.field(factory=list)
    whole_mpack_verified: bool = False
    _ids: list[str] = attrs.field(factory=list)
    _pieces: list[bytes | memoryview] = attrs.field(factory=list)
    _pending: int = 0

    def serve(
        self, object_id: str, written_id: str, body: bytes | memoryview, encoding: str
    ) -> None:
        self._ids.append(object_id)
        self._pieces.append(wire.blob_head(len(body), encoding))
        self._pieces.append(body)
        self._pieces.append(wire.blob_tail(written_id, encoding))
        self._pending += len(body)
        if self._pending >= _BATCH_BYTES:
            self._join()

    def encoded(self) -> _Encoded:
        self._join()
        return _Encoded(self.batches, self.failed, self.whole_mpack_verified)

    def _join(self) -> None:
        if self._ids:
            self.batches.append(_Batch(self._ids, b"".join(self._pieces)))
            self._ids, self._pieces, self._pending = [], [], 0


_BATCH_BYTES = 1 << 20
"""Entries are joined about a MiB at a time as blobs verify: the pieces of a whole read
and their join never coexist (a 25,000-blob fetch held 76 MiB of joins at its peak)."""


@attrs.frozen
class _Batch:
    """Consecutive verified blobs (canonical ids) and their document entries."""

    served: list[str]
    entries: bytes


@attrs.frozen
class _Encoded:
    """Verified blobs of one read, encoded in batches; and the ids that failed."""

    batches: list[_Batch]
    failed: list[str]
    whole_mpack_verified: bool = False
    """The blobs came from a whole mpack whose bytes matched its id (one hash for all)."""

    @property
    def served(self) -> list[str]:
        """The verified blobs (canonical ids), in order."""
        return [object_id for batch in self.batches for object_id in batch.served]


def _leaves_as(encoding: str, needed: NeededBlobs) -> str:
    """The encoding a blob stored in ``encoding`` has in the document."""
    return "zstd" if encoding == "zstd" and needed.accept_zstd else "identity"


def _passed_through_unhashed(
    stored: memoryview | bytes, policy: Policy, budget: content.DecodeBudget
) -> bool:
    """Charge a zstd frame that ingest verified and that leaves as stored, without decoding
    it, when its header declares its size within the limits (False: decode it instead)."""
    size = content.declared_size(stored, "zstd", len(stored))
    if size is None or size > policy.max_blob_bytes:
        return False
    budget.charge(size)
    return True


def _verified(
    object_id: str,
    stored: memoryview | bytes,
    encoding: str,
    needed: NeededBlobs,
    policy: Policy,
    budget: content.DecodeBudget,
    *,
    from_verified_mpack: bool = False,
) -> bytes | memoryview | None:
    """The blob's body as it leaves (see :func:`_leaves_as`), or None if ``stored`` fails
    as its source.

    ``from_verified_mpack``: ``stored`` was cut from a push mpack whose bytes match its
    id, so it is decoded within the limits but not hashed again.
    """
    pass_through = encoding == "zstd" and needed.accept_zstd
    try:
        if (
            from_verified_mpack
            and pass_through
            and _passed_through_unhashed(stored, policy, budget)
        ):
            return stored
        decoded = budget.decode_verified(
            object_id, stored, encoding, policy.max_blob_bytes, verified=from_verified_mpack
        )
    except content.DecodeBudgetError:
        # Every source holds the same content: trying another would only spend more.
        raise FetchTooLargeError(policy.max_fetch_decoded_bytes) from None
    except content.ContentError:
        return None
    return stored if pass_through else decoded


def _cut(view: memoryview, base: int, location: Location) -> memoryview | None:
    """The location's stored bytes in ``view`` (read from offset ``base``), or None
    unless its whole span is known and inside."""
    offset, length = location.offset, location.length
    if offset is None or length is None or length < 0:
        return None
    start = offset - base
    return view[start : start + length] if 0 <= start <= len(view) - length else None


def _extract(
    data: bytes,
    base: int,
    blobs: Blobs,
    needed: NeededBlobs,
    policy: Policy,
    budget: content.DecodeBudget,
    *,
    from_verified_mpack: bool = False,
) -> _Extracted:
    """Cut, decode and verify the blobs whose stored spans lie in ``data`` (at ``base``);
    ``from_verified_mpack``: ``data`` is a whole push mpack that matches its id."""
    result = _Extracted(whole_mpack_verified=from_verified_mpack)
    view = memoryview(data)
    as_written = needed.as_written
    for object_id, location in blobs.items():
        encoding = location.encoding
        stored = _cut(view, base, location)
        body = None
        if stored is not None:
            body = _verified(
                object_id,
                stored,
                encoding,
                needed,
                policy,
                budget,
                from_verified_mpack=from_verified_mpack,
            )
        if body is None:
            result.failed.append(object_id)
        else:
            result.serve(object_id, as_written[object_id], body, _leaves_as(encoding, needed))
    return result


def _located_blobs(data: bytes, blobs: Blobs, policy: Policy) -> Blobs:
    """Give every blob its span by parsing the whole mpack (for locations without offsets)."""
    try:
        document = wire.parse_push(data, policy)
    except InvalidMPackError:
        return {object_id: Location(location.mpack_id) for object_id, location in blobs.items()}
    spans: dict[str, Location] = {}
    for entry in document.blobs:
        found = Location("", entry.offset, entry.length, entry.encoding)
        spans.setdefault(ids.canonical(entry.object_id), found)
    return {object_id: spans.get(object_id, location) for object_id, location in blobs.items()}


def _extract_whole(
    mpack_id: str,
    data: bytes,
    blobs: Blobs,
    needed: NeededBlobs,
    policy: Policy,
    budget: content.DecodeBudget,
) -> _Extracted:
    """The blobs of a whole mpack. When its bytes match its id, they are the bytes that
    ingest parsed and verified blob by blob: one sha256 of the whole stands in for one
    per blob. Otherwise (a damaged or replaced copy) every blob is checked on its own."""
    if any(location.span is None for location in blobs.values()):
        blobs = _located_blobs(data, blobs, policy)
    intact = not policy.verify_each_blob and ids.matches(mpack_id, data)
    return _extract(data, 0, blobs, needed, policy, budget, from_verified_mpack=intact)


def _verified_cache(
    cache: Mapping[str, bytes], needed: NeededBlobs, policy: Policy, budget: content.DecodeBudget
) -> _Extracted:
    """Cache entries and legacy objects: identity content, verified (and charged) like the rest."""
    result = _Extracted()
    for object_id, data in cache.items():
        if object_id in needed.as_written:
            body = _verified(object_id, data, "identity", needed, policy, budget)
            if body is None:
                result.failed.append(object_id)
            else:
                result.serve(object_id, needed.as_written[object_id], body, "identity")
    return result


def _blobs_by_range(blobs: Blobs, ranges: Sequence[tuple[int, int]]) -> list[Blobs]:
    """For each range, the blobs whose (non-empty) stored span starts inside it."""
    starts = [start for start, _ in ranges]
    groups: list[dict[str, Location]] = [{} for _ in ranges]
    for object_id, location in blobs.items():
        span = location.span
        if span is not None and span[0] < span[1]:
            groups[bisect.bisect_right(starts, span[0]) - 1][object_id] = location
    return list(groups)


# ── one gather ───────────────────────────────────────────────────────────────

_READ_KIND = {
    "mpack_gets": ReadKind.MPACK,
    "range_gets": ReadKind.RANGE,
    "object_gets": ReadKind.OBJECT,
}
"""The kind of read each request counter counts."""


def _stats(tally: Counter[str]) -> FetchStats:
    """The counts of a tally; timings are the caller's (it knows the phases)."""
    return FetchStats(
        cache_hits=tally["cache_hits"],
        mpack_gets=tally["mpack_gets"],
        range_gets=tally["range_gets"],
        object_gets=tally["object_gets"],
        bytes_read=tally["bytes_read"],
        retries=tally["retries"],
        failed_sources=tally["failed_sources"],
        verified_whole_mpacks=tally["verified_whole_mpacks"],
    )


def _unobserved() -> FetchObservation:
    return FetchObservation.start(FanOut(()), repo_id="", want_count=0, have_count=0)


def _mpacks_holding(
    object_ids: Collection[str], locations: Mapping[str, Sequence[Location]]
) -> tuple[str, ...]:
    """The mpacks indexed for ``object_ids``: tried, and none of them served these blobs."""
    return tuple(sorted({loc.mpack_id for o in object_ids for loc in locations.get(o, ())}))


@attrs.define
class _Gather:
    """The state of one gather: what was asked of the store, what is served, what is read."""

    store: FetchStore
    needed: NeededBlobs
    policy: Policy
    sink: BlobSink
    budget: ByteBudget
    seen: FetchObservation
    tally: Counter[str] = attrs.field(factory=Counter)
    """What was asked of the store: counts named like the fields of FetchStats."""
    served: set[str] = attrs.field(factory=set)
    read_mpacks: set[str] = attrs.field(factory=set)
    """Every mpack read (or tried) in this gather: never read again."""
    worker: ThreadPoolExecutor = attrs.field(
        factory=lambda: ThreadPoolExecutor(max_workers=1, thread_name_prefix="fetchcore-verify")
    )
    slots: asyncio.Semaphore = attrs.field(init=False)
    decoded: content.DecodeBudget = attrs.field(init=False)
    """The decoded bytes this gather may still send. Spent only on ``worker`` (its one
    thread), so it needs no lock; a poisoned attempt starts again with a fresh one."""

    def __attrs_post_init__(self) -> None:
        self.slots = asyncio.Semaphore(self.policy.max_in_flight)
        self.decoded = content.DecodeBudget(self.policy.max_fetch_decoded_bytes)

    @property
    def ranged(self) -> bool:
        return isinstance(self.store, RangedReads)

    async def _off_loop(self, work: Callable[[], T]) -> T:
        """Run CPU-bound ``work`` on this gather's worker thread."""
        return await asyncio.get_running_loop().run_in_executor(self.worker, work)

    async def _deliver(self, encoded: _Encoded) -> list[str]:
        """Hand the served blobs to the sink; return the ids that failed."""
        if encoded.whole_mpack_verified:
            self.tally["verified_whole_mpacks"] += 1
        if served := encoded.served:
            # Each blob has one source per plan and plans run one after another, so no
            # blob is served twice (the writer counts blobs against the announced total).
            self.served.update(served)
            for batch in encoded.batches:
                await self.sink.add_encoded(batch.served, batch.entries)
        if encoded.failed:
            self.tally["failed_sources"] += 1
        return encoded.failed

    async def _request(self, counter: str, source_id: str, request: Request) -> bytes | None:
        """One storage read: ``read_attempts`` tries, each with its own timeout.

        The caller holds a slot; the timeout starts only now. Returns None when the
        key is missing or the read failed for good. Each try and each retry is reported.
        A store that declares ``retries_reads`` is tried once. Bytes that fail
        verification are never read again: their blobs go to their next source.
        """
        kind = _READ_KIND[counter]
        failure: BaseException | None = None
        # One retry layer per fault: a store that retries its own faults gets one try.
        attempts = 1 if retries_its_reads(self.store) else self.policy.read_attempts
        for attempt in range(1, attempts + 1):
            if failure is not None:
                self.tally["retries"] += 1
                delay = self._backoff(attempt - 1)
                self.seen.retry_scheduled(kind, source_id, attempt, delay, failure)
                await asyncio.sleep(delay)
            self.tally[counter] += 1
            try:
                with self.seen.reading(kind, source_id, attempt) as read:
                    async with asyncio.timeout(self.policy.request_timeout_s):
                        data = read.received(await request())
            except InvalidRequestError:
                return None  # a bad id stays bad: trying again cannot help
            except (StorageError, TimeoutError) as error:
                failure = error
                continue
            if data is not None:
                self.tally["bytes_read"] += len(data)
            return data
        return None

    def _backoff(self, attempt: int) -> float:
        ceiling: float = self.policy.retry_backoff_s * 2 ** (attempt - 1)
        return random.uniform(0, ceiling)

    # The stages, in SOURCE_ORDER. Each takes the blobs still unserved and
    # returns those it could not serve.

    async def from_cache(self, left: list[str], cache: Mapping[str, bytes]) -> list[str]:
        if not cache:
            return left  # the common case (nothing is cached by default): no pass, no hop
        entries = {o: cache[o] for o in left if o in cache}
        verified = await self._off_loop(
            lambda: _verified_cache(entries, self.needed, self.policy, self.decoded).encoded()
        )
        self.tally["cache_hits"] = len(verified.served)
        await self._deliver(attrs.evolve(verified, failed=[]))
        return [o for o in left if o not in self.served]

    async def from_mpacks(
        self, left: list[str], locations: Mapping[str, Sequence[Location]]
    ) -> list[str]:
        """The chosen mpack of each blob, then its alternates until none is left unread."""
        while True:
            with self.seen.phase(FetchPhase.PLAN):
                plan = plan_fetch(
                    left,
                    locations=locations,
                    excluded=self.read_mpacks,
                    policy=self.policy,
                    ranged_reads=self.ranged,
                )
            if not plan.reads:
                return left
            self.read_mpacks.update(read.mpack_id for read in plan.reads)
            with self.seen.phase(FetchPhase.READ, reads=len(plan.reads)):
                failed = await asyncio.gather(*(self._read(read) for read in plan.reads))
            left = [*plan.legacy, *plan.unresolved, *(o for part in failed for o in part)]

    async def from_legacy_keys(
        self, left: list[str], locations: Mapping[str, Sequence[Location]]
    ) -> list[str]:
        unreadable = _mpacks_holding(left, locations)
        if len(left) > self.policy.max_legacy_gets:
            # So many fallbacks mean the mpacks are not where the store looks: fail
            # before the storm of GETs, naming the mpacks that could not be read.
            written = [self.needed.as_written[o] for o in left]
            raise LegacyFallbackLimitError(written, unreadable, self.policy.max_legacy_gets)
        self.seen.legacy_fallback(len(left), unreadable)
        results = await asyncio.gather(*(self._read_legacy(object_id) for object_id in left))
        return [object_id for object_id, served in zip(left, results, strict=True) if not served]

    async def _read(self, read: MPackRead) -> list[str]:
        if read.ranges is None:
            return await self._read_whole(read)
        empty = {o: attrs.evolve(loc, offset=0) for o, loc in read.blobs.items() if loc.length == 0}
        failed = await self._deliver(
            _extract(b"", 0, empty, self.needed, self.policy, self.decoded).encoded()
        )
        by_range = _blobs_by_range(read.blobs, read.ranges)
        parts = await asyncio.gather(
            *(
                self._read_long_range(read.mpack_id, span, blobs)
                if span[1] - span[0] > self.policy.max_range_bytes
                else self._read_range(read.mpack_id, span, blobs)
                for span, blobs in zip(read.ranges, by_range, strict=True)
            )
        )
        return failed + [object_id for part in parts for object_id in part]

    async def _read_whole(self, read: MPackRead) -> list[str]:
        expected = read.bytes_to_read or self.policy.max_range_bytes
        async with self.slots, self.budget.hold(expected):
            data = await self._request(
                "mpack_gets", read.mpack_id, lambda: self.store.get_mpack(read.mpack_id)
            )
            if data is None:
                self.tally["failed_sources"] += 1
                return list(read.blobs)
            extracted = await self._off_loop(
                lambda: _extract_whole(
                    read.mpack_id, data, read.blobs, self.needed, self.policy, self.decoded
                ).encoded()
            )
            return await self._deliver(extracted)

    async def _read_range(self, mpack_id: str, span: tuple[int, int], blobs: Blobs) -> list[str]:
        start, end = span
        assert isinstance(self.store, RangedReads)  # the planner makes ranges only for such stores
        store = self.store
        async with self.slots, self.budget.hold(end - start):
            data = await self._request(
                "range_gets", mpack_id, lambda: store.get_mpack_range(mpack_id, start, end)
            )
            if data is None:
                self.tally["failed_sources"] += 1
                return list(blobs)
            extracted = await self._off_loop(
                lambda: _extract(
                    data, start, blobs, self.needed, self.policy, self.decoded
                ).encoded()
            )
            return await self._deliver(extracted)

    async def _read_piece(self, mpack_id: str, span: tuple[int, int]) -> bytes | None:
        start, end = span
        store = self.store
        assert isinstance(store, RangedReads)  # the planner makes ranges only for such stores
        async with self.slots, self.budget.hold(end - start):
            data = await self._request(
                "range_gets", mpack_id, lambda: store.get_mpack_range(mpack_id, start, end)
            )
        return data if data is None or len(data) == end - start else None

    def _pieces(self, span: tuple[int, int]) -> list[tuple[int, int]]:
        step = self.policy.max_range_bytes
        return [(at, min(at + step, span[1])) for at in range(span[0], span[1], step)]

    async def _read_long_range(
        self, mpack_id: str, span: tuple[int, int], blobs: Blobs
    ) -> list[str]:
        """A range longer than max_range_bytes: one blob (or blobs that overlap) in pieces."""
        if len(blobs) == 1:
            ((object_id, location),) = blobs.items()
            if location.span == span:
                return await self._stream_blob(mpack_id, object_id, location)
        return await self._read_joined(mpack_id, span, blobs)

    async def _read_joined(self, mpack_id: str, span: tuple[int, int], blobs: Blobs) -> list[str]:
        """Read ``span`` in pieces and extract its blobs from the joined bytes."""
        pieces = []
        for piece_span in self._pieces(span):
            piece = await self._read_piece(mpack_id, piece_span)
            if piece is None:
                self.tally["failed_sources"] += 1
                return list(blobs)
            pieces.append(piece)
        data = b"".join(pieces)
        del pieces
        extracted = await self._off_loop(
            lambda: _extract(data, span[0], blobs, self.needed, self.policy, self.decoded).encoded()
        )
        return await self._deliver(extracted)

    async def _stream_blob(self, mpack_id: str, object_id: str, location: Location) -> list[str]:
        """Read, decode, hash and write through one blob longer than a range."""
        assert location.span is not None
        assert location.length is not None
        pieces = self._pieces(location.span)
        first = await self._read_piece(mpack_id, pieces[0])
        if first is None:
            self.tally["failed_sources"] += 1
            return [object_id]
        pass_through = location.encoding == "zstd" and self.needed.accept_zstd
        decoded_size = content.declared_size(first, location.encoding, location.length)
        if decoded_size is None or decoded_size > self.policy.max_blob_bytes:
            # An unsized frame is decoded whole (bounded by max_blob_bytes and the decode
            # budget) before it is sent; one over the limit fails as it would whole.
            return await self._read_joined(mpack_id, location.span, {object_id: location})
        length = location.length if pass_through else decoded_size
        await self._off_loop(functools.partial(self._charge, decoded_size))
        decoder = content.PieceDecoder(object_id, location.encoding, decoded_size)
        written_id = self.needed.as_written[object_id]
        try:
            async with self.sink.streamed(
                object_id, written_id, "zstd" if pass_through else "identity", length
            ) as write:
                piece: bytes | None = first
                for span in [None, *pieces[1:]]:
                    if span is not None:
                        piece = await self._read_piece(mpack_id, span)
                    if piece is None:
                        raise content.ContentError("a piece of the blob could not be read")
                    decoded = await self._off_loop(functools.partial(decoder.feed, piece))
                    await write(piece if pass_through else decoded)
                await self._off_loop(decoder.finish)
        except content.ContentError:
            self.tally["failed_sources"] += 1
            raise DocumentPoisoned(mpack_id) from None
        self.served.add(object_id)
        return []

    def _charge(self, size: int) -> None:
        """Spend ``size`` decoded bytes before streaming them (on the worker, like every spend)."""
        try:
            self.decoded.charge(size)
        except content.DecodeBudgetError:
            raise FetchTooLargeError(self.policy.max_fetch_decoded_bytes) from None

    async def _read_legacy(self, object_id: str) -> bool:
        written = self.needed.as_written[object_id]
        async with self.slots:
            data = await self._request(
                "object_gets", written, lambda: self.store.get_object(written)
            )
            if data is None:
                return False
            extracted = await self._off_loop(
                lambda: _verified_cache(
                    {object_id: data}, self.needed, self.policy, self.decoded
                ).encoded()
            )
            return not await self._deliver(extracted) and object_id in self.served


async def gather_blobs(
    store: FetchStore,
    needed: NeededBlobs,
    *,
    cache: Mapping[str, bytes],
    locations: Mapping[str, Sequence[Location]],
    policy: Policy,
    sink: BlobSink,
    budget: ByteBudget | None = None,
    excluded: Collection[str] = (),
    observation: FetchObservation | None = None,
) -> tuple[list[str], FetchStats]:
    """Serve every needed blob into ``sink``, trying its sources in :data:`SOURCE_ORDER`.

    Args:
        store: where mpacks and legacy keys are read (read whole unless it has RangedReads).
        needed: the needed blobs (canonical id -> id as written) and accepted encodings.
        cache: content-cache entries found for them (verified here before use).
        locations: their mpack locations.
        policy: concurrency, retries, timeouts and read planning.
        sink: receives each verified blob once, as soon as it is verified.
        budget: bytes that reads may hold at once (shared across fetches by a limiter).
        excluded: mpacks not to read (they poisoned an earlier attempt).
        observation: where reads, retries, legacy fallbacks and the plan and read
            phases are reported (None: nowhere).

    Returns:
        The canonical ids that no source could serve (sorted), and what was read.

    Raises:
        FetchNotIndexedError: some blobs have no cache entry and no location
            (raised before any storage request).
        FetchTooLargeError: the blobs decode to more than ``max_fetch_decoded_bytes``
            (before any read when the index already knows it).
        LegacyFallbackLimitError: more blobs than ``max_legacy_gets`` are left for their
            legacy keys (raised before any of those GETs).
        DocumentPoisoned: a blob written through in pieces failed verification.
    """
    check_indexed(needed, cache, locations)
    check_decoded_size(needed, cache, locations, policy)
    seen = observation or _unobserved()
    gather = _Gather(store, needed, policy, sink, budget or ByteBudget(1 << 62), seen)
    gather.read_mpacks.update(excluded)
    left = list(needed.as_written)
    try:
        with seen.phase(FetchPhase.READ):
            left = await gather.from_cache(left, cache)
        left = await gather.from_mpacks(left, locations)
        if left:
            with seen.phase(FetchPhase.READ):
                left = await gather.from_legacy_keys(left, locations)
    finally:
        gather.worker.shutdown(wait=False, cancel_futures=True)
    return sorted(left), _stats(gather.tally)
