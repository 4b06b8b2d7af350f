"""The executor: runs fetch plans against an ObjectStore until every blob is served.

Rules this module keeps:
- Only verified bytes are served: every blob is decoded and hashed against its
  id, whichever source it came from; a blob that fails is a failed source.
- A failed source sends its blobs to their next source: the plan is made again
  for them with every mpack already read excluded (so each mpack is read at most
  once per fetch), then the legacy per-object key, then ObjectUnavailableError.
- At most ``Policy.max_in_flight`` storage requests run at once; each has
  ``request_timeout_s``, transient failures are retried ``read_attempts`` times
  with jittered backoff, and the whole gather fits ``deadline_s``.
- Unresolved blobs (no cache entry, no location) raise FetchNotIndexedError
  before any storage request.

Decoding and hashing run in one worker thread per gather, so the event loop
keeps issuing requests while earlier reads are verified. One, not several:
small blobs release and retake the GIL thousands of times a second, and
threads contending for it ran 4x slower than one thread alone.
"""

from __future__ import annotations

import asyncio
import bisect
import random
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

import attrs

from fetchcore import content, ids, wire
from fetchcore.errors import (
    FetchDeadlineError,
    FetchNotIndexedError,
    InvalidMPackError,
    ObjectUnavailableError,
    StorageError,
)
from fetchcore.model import Location
from fetchcore.planner import FetchPlan, MPackRead, plan_fetch
from fetchcore.policy import Policy
from fetchcore.ports import ObjectStore
from fetchcore.results import FetchStats
from fetchcore.wire import OutgoingBlob

Request = Callable[[], Awaitable[bytes | None]]
T = TypeVar("T")


@attrs.frozen
class Want:
    """What one gather must deliver and how it may deliver it."""

    spelled: Mapping[str, str]
    """canonical id -> the id as the manifest wrote it, for every needed blob."""
    accept_zstd: bool = False
    """pass zstd-stored content through (still verified) instead of decoding it."""


@attrs.define
class _Extracted:
    served: dict[str, OutgoingBlob] = attrs.field(factory=dict)
    failed: list[str] = attrs.field(factory=list)


Blobs = Mapping[str, Location]


def _extract(data: bytes, base: int, blobs: Blobs, want: Want, policy: Policy) -> _Extracted:
    """Cut, decode and verify the blobs whose stored spans lie in ``data`` (at ``base``)."""
    result = _Extracted()
    view = memoryview(data)
    for object_id, location in blobs.items():
        span = location.span
        start, end = (span[0] - base, span[1] - base) if span else (-1, -1)
        if start < 0 or end > len(data):
            result.failed.append(object_id)
            continue
        blob = _verified(object_id, view[start:end], location.encoding, want, policy)
        if blob is None:
            result.failed.append(object_id)
        else:
            result.served[object_id] = blob
    return result


def _verified(
    object_id: str, stored: memoryview | bytes, encoding: str, want: Want, policy: Policy
) -> OutgoingBlob | None:
    spelled = want.spelled[object_id]
    try:
        decoded = content.decode_verified(object_id, stored, encoding, policy.max_blob_bytes)
    except content.ContentError:
        return None
    if encoding == "zstd" and want.accept_zstd:
        return OutgoingBlob(spelled, bytes(stored), "zstd")
    return OutgoingBlob(spelled, decoded)


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


def _extract_whole(data: bytes, blobs: Blobs, want: Want, policy: Policy) -> _Extracted:
    if any(location.span is None for location in blobs.values()):
        blobs = _located_blobs(data, blobs, policy)
    return _extract(data, 0, blobs, want, policy)


def _blobs_by_range(blobs: Blobs, ranges: Sequence[tuple[int, int]]) -> list[Blobs]:
    """For each range, the blobs whose (non-empty) stored span starts inside it."""
    starts = [start for start, _ in ranges]
    groups: list[dict[str, Location]] = [{} for _ in ranges]
    for object_id, location in blobs.items():
        span = location.span
        if span is not None and span[0] < span[1]:
            groups[bisect.bisect_right(starts, span[0]) - 1][object_id] = location
    return list(groups)


@attrs.define
class _Gather:
    """The state of one gather: what is served, what failed, what was asked of the store."""

    store: ObjectStore
    want: Want
    policy: Policy
    tally: Counter[str] = attrs.field(factory=Counter)
    """What was asked of the store: counts named like the fields of FetchStats."""
    served: dict[str, OutgoingBlob] = attrs.field(factory=dict)
    unavailable: set[str] = attrs.field(factory=set)
    worker: ThreadPoolExecutor = attrs.field(
        factory=lambda: ThreadPoolExecutor(max_workers=1, thread_name_prefix="fetchcore-verify")
    )
    gate: asyncio.Semaphore = attrs.field(init=False)

    def __attrs_post_init__(self) -> None:
        self.gate = asyncio.Semaphore(self.policy.max_in_flight)

    async def _off_loop(self, work: Callable[[], T]) -> T:
        """Run CPU-bound ``work`` on this gather's worker thread."""
        return await asyncio.get_running_loop().run_in_executor(self.worker, work)

    async def _request(self, counter: str, request: Request) -> bytes | None:
        """One storage read with the in-flight cap, a timeout and bounded retries.

        Returns None when the key is missing or the read failed for good.
        """
        for attempt in range(self.policy.read_attempts):
            if attempt:
                self.tally["retries"] += 1
                await asyncio.sleep(self._backoff(attempt))
            self.tally[counter] += 1
            try:
                async with self.gate, asyncio.timeout(self.policy.request_timeout_s):
                    data = await request()
            except (StorageError, TimeoutError):
                continue
            if data is not None:
                self.tally["bytes_read"] += len(data)
            return data
        return None

    def _backoff(self, attempt: int) -> float:
        ceiling: float = self.policy.retry_backoff_s * 2 ** (attempt - 1)
        return random.uniform(0, ceiling)

    async def _read(self, read: MPackRead) -> list[str]:
        """Serve the blobs of one mpack read; return the ids that failed."""
        if read.ranges is None:
            return await self._read_whole(read)
        return await self._read_ranges(read, read.ranges)

    async def _read_whole(self, read: MPackRead) -> list[str]:
        data = await self._request("mpack_gets", lambda: self.store.get_mpack(read.mpack_id))
        if data is None:
            self.tally["failed_sources"] += 1
            return list(read.blobs)
        extracted = await self._off_loop(
            lambda: _extract_whole(data, read.blobs, self.want, self.policy)
        )
        return self._keep(extracted)

    async def _read_ranges(self, read: MPackRead, ranges: Sequence[tuple[int, int]]) -> list[str]:
        # An empty blob needs no bytes: it is checked against its id without a request.
        empty = {o: attrs.evolve(loc, offset=0) for o, loc in read.blobs.items() if loc.length == 0}
        failed = self._keep(_extract(b"", 0, empty, self.want, self.policy))
        parts = await asyncio.gather(
            *(
                self._read_range(read.mpack_id, span, blobs)
                for span, blobs in zip(ranges, _blobs_by_range(read.blobs, ranges), strict=True)
            )
        )
        return failed + [object_id for part in parts for object_id in part]

    async def _read_range(self, mpack_id: str, span: tuple[int, int], blobs: Blobs) -> list[str]:
        start, end = span
        data = await self._request(
            "range_gets", lambda: self.store.get_mpack_range(mpack_id, start, end)
        )
        if data is None:
            self.tally["failed_sources"] += 1
            return list(blobs)
        extracted = await self._off_loop(
            lambda: _extract(data, start, blobs, self.want, self.policy)
        )
        return self._keep(extracted)

    def _keep(self, extracted: _Extracted) -> list[str]:
        if extracted.failed:
            self.tally["failed_sources"] += 1
        self.served.update(extracted.served)
        return extracted.failed

    async def _read_legacy(self, object_id: str) -> None:
        spelled = self.want.spelled[object_id]
        data = await self._request("object_gets", lambda: self.store.get_object(spelled))
        blob = None
        if data is not None:
            blob = await self._off_loop(
                lambda: _verified(object_id, data, "identity", self.want, self.policy)
            )
        if blob is None:
            self.unavailable.add(object_id)
        else:
            self.served[object_id] = blob

    async def run(self, plan: FetchPlan, locations: Mapping[str, Sequence[Location]]) -> None:
        """Run ``plan``, then re-plan failed blobs until each is served or unavailable."""
        excluded: set[str] = set()
        while True:
            legacy = [self._read_legacy(object_id) for object_id in plan.legacy]
            reads = await asyncio.gather(*(self._read(r) for r in plan.reads), *legacy)
            failed = [object_id for part in reads[: len(plan.reads)] for object_id in part or ()]
            if not failed:
                return
            excluded.update(read.mpack_id for read in plan.reads)
            plan = plan_fetch(failed, locations=locations, excluded=excluded, policy=self.policy)
            # Blobs whose only source was a corrupt cache entry go to their legacy key.
            plan = attrs.evolve(plan, legacy=plan.legacy + plan.unresolved, unresolved=())


def _verified_cache(
    cache: Mapping[str, bytes], want: Want, policy: Policy
) -> dict[str, OutgoingBlob]:
    good: dict[str, OutgoingBlob] = {}
    for object_id, data in cache.items():
        if object_id in want.spelled:
            blob = _verified(object_id, data, "identity", want, policy)
            if blob is not None:
                good[object_id] = blob
    return good


async def gather_blobs(
    store: ObjectStore,
    want: Want,
    *,
    cache: Mapping[str, bytes],
    locations: Mapping[str, Sequence[Location]],
    policy: Policy,
) -> tuple[dict[str, OutgoingBlob], FetchStats]:
    """Serve every blob of ``want`` from the cache, its mpacks or its legacy key.

    Args:
        store: where mpacks and legacy keys are read.
        want: the needed blobs (canonical id -> id as written) and accepted encodings.
        cache: content-cache entries found for them (verified here before use).
        locations: their mpack locations.
        policy: concurrency, retries, timeouts, deadline and read planning.

    Returns:
        The served blobs by canonical id, and what was read.

    Raises:
        FetchNotIndexedError: some blobs have no cache entry and no location
            (raised before any storage request).
        ObjectUnavailableError: some blobs could not be served from any source.
        FetchDeadlineError: the gather ran past ``policy.deadline_s``.
    """
    cached = await asyncio.to_thread(_verified_cache, cache, want, policy)
    plan = plan_fetch(want.spelled, cached=cached, locations=locations, policy=policy)
    not_indexed = [object_id for object_id in plan.unresolved if object_id not in cache]
    if not_indexed:
        raise FetchNotIndexedError(want.spelled[o] for o in not_indexed)
    plan = attrs.evolve(plan, legacy=plan.legacy + plan.unresolved, unresolved=())
    gather = _Gather(store, want, policy)
    gather.served.update(cached)
    gather.tally["cache_hits"] = len(cached)
    try:
        async with asyncio.timeout(policy.deadline_s):
            await gather.run(plan, locations)
    except TimeoutError:
        raise FetchDeadlineError(f"fetch ran past its deadline of {policy.deadline_s} s") from None
    finally:
        gather.worker.shutdown(wait=False, cancel_futures=True)
    if gather.unavailable:
        raise ObjectUnavailableError(want.spelled[o] for o in gather.unavailable)
    return gather.served, FetchStats(**gather.tally)
