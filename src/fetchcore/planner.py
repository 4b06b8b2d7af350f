"""The planner: which source serves each needed blob, and how each mpack is read. Pure.

Rules this module keeps:
- Every needed blob gets exactly one first source: the content cache, one mpack,
  its legacy per-object key (when every mpack holding it is excluded), or it is
  unresolved (no cache entry, no location).
- Few mpacks are read: an mpack that is the only home of some blob is taken
  first, then greedily the mpack covering most remaining blobs (ties: smallest id).
- Each mpack is read once: one whole GET, or byte ranges that are sorted,
  disjoint and cover every assigned span. A gap wider than
  ``coalesce_gap_bytes`` is never read, and a ranged read never reads more
  than ``max_read_amplification`` times the bytes it needs, except when the
  ranges stand in for a whole read (``tiled``).
- When offsets are known, an mpack larger than ``max_range_bytes`` is never
  read whole (memory stays bounded by the range size): where a whole read
  would be chosen, it is read in tiles, consecutive ranges of at most
  ``max_range_bytes`` cut between blobs, that read no more than the whole.
  A store without ranged reads has every mpack read whole.
- The plan depends on its inputs as sets, never on their order.
"""

from __future__ import annotations

import heapq
from collections.abc import Collection, Iterable, Mapping, Sequence, Set
from types import MappingProxyType

import attrs

from fetchcore.model import Location
from fetchcore.policy import Policy

Span = tuple[int, int]
Assigned = dict[str, Location]
"""The blobs one mpack serves: canonical id -> its location in that mpack."""


def _read_only(blobs: Mapping[str, Location]) -> Mapping[str, Location]:
    if isinstance(blobs, MappingProxyType):
        return blobs  # already read-only (the planner hands over its own dicts this way)
    return MappingProxyType(dict(blobs))


@attrs.define(slots=True)
class _Home:
    """The blobs assigned to one mpack so far, with totals kept as they come in
    (a second pass over a large fetch's locations would cost a cache miss per blob)."""

    blobs: Assigned = attrs.field(factory=dict)
    stored: int = 0
    size: int | None = None
    offsets_known: bool = True

    def add(self, object_id: str, location: Location) -> None:
        self.blobs[object_id] = location
        if location.length is None or location.offset is None:
            self.offsets_known = False
        else:
            self.stored += location.length
        if location.mpack_size is not None and (
            self.size is None or location.mpack_size > self.size
        ):
            self.size = location.mpack_size


@attrs.frozen
class MPackRead:
    """How one mpack is read: whole (``ranges is None``) or by byte ranges ``[start, end)``."""

    mpack_id: str
    blobs: Mapping[str, Location] = attrs.field(converter=_read_only, hash=False)
    ranges: tuple[Span, ...] | None = None
    reason: str = ""
    tiled: bool = False
    """The ranges stand in for a whole read of an mpack over max_range_bytes."""

    @property
    def whole(self) -> bool:
        return self.ranges is None

    @property
    def request_count(self) -> int:
        return 1 if self.ranges is None else len(self.ranges)

    @property
    def bytes_needed(self) -> int | None:
        """Bytes of stored content assigned to this read (None when spans are unknown)."""
        spans = [location.span for location in self.blobs.values()]
        if any(span is None for span in spans):
            return None
        return _union_length(s for s in spans if s is not None)

    @property
    def bytes_to_read(self) -> int | None:
        """Bytes this read fetches (None for a whole read of an mpack of unknown size)."""
        if self.ranges is not None:
            return sum(end - start for start, end in self.ranges)
        return mpack_size(self.blobs.values())


@attrs.frozen
class FetchPlan:
    """The first source of every needed blob, as sorted tuples of canonical ids."""

    cached: tuple[str, ...] = ()
    reads: tuple[MPackRead, ...] = ()
    legacy: tuple[str, ...] = ()
    unresolved: tuple[str, ...] = ()

    @property
    def request_count(self) -> int:
        """Storage requests the plan makes if nothing fails."""
        return sum(read.request_count for read in self.reads) + len(self.legacy)


def plan_fetch(
    needed: Iterable[str],
    *,
    cached: Collection[str] = frozenset(),
    locations: Mapping[str, Sequence[Location]] | None = None,
    excluded: Collection[str] = frozenset(),
    policy: Policy = Policy(),
    ranged_reads: bool = True,
) -> FetchPlan:
    """Choose the first source of every needed blob and how to read each mpack.

    Args:
        needed: canonical ids of the blobs to serve.
        cached: ids that have a (verified) content-cache entry.
        locations: every known mpack location of the ids.
        excluded: mpacks that must not be read (failed, or already read this fetch).
        policy: coalescing, range and amplification limits.
        ranged_reads: whether the store serves byte ranges; without them every
            mpack is read whole.

    Returns:
        A plan; ``plan.unresolved`` lists the ids with no cache entry and no location.
    """
    locations = locations or {}
    excluded = frozenset(excluded)
    from_cache: list[str] = []
    legacy: list[str] = []
    unresolved: list[str] = []
    sole_home: dict[str, _Home] = {}
    many_homes: list[tuple[str, dict[str, Location]]] = []
    # The hot loop of a large fetch: one pass, the common case (one location) inline.
    # Order does not matter here; every list is sorted before it leaves.
    unique = needed if isinstance(needed, Mapping | Set) else dict.fromkeys(needed)
    for object_id in unique:
        if object_id in cached:
            from_cache.append(object_id)
            continue
        candidates = locations.get(object_id)
        if not candidates:
            unresolved.append(object_id)
        elif len(candidates) == 1:
            location = candidates[0]
            mpack_id = location.mpack_id
            home = sole_home.get(mpack_id)
            if home is not None:
                home.add(object_id, location)
            elif mpack_id in excluded:
                legacy.append(object_id)
            else:
                sole_home[mpack_id] = home = _Home()
                home.add(object_id, location)
        else:
            homes = _homes(candidates, excluded)
            if not homes:
                legacy.append(object_id)
            elif len(homes) == 1:
                ((mpack_id, location),) = homes.items()
                sole_home.setdefault(mpack_id, _Home()).add(object_id, location)
            else:
                many_homes.append((object_id, homes))
    assigned = _assign_shared(sole_home, many_homes)
    reads = tuple(
        _read_for(mpack_id, blobs, policy, ranged_reads)
        for mpack_id, blobs in sorted(assigned.items())
    )
    return FetchPlan(
        tuple(sorted(from_cache)), reads, tuple(sorted(legacy)), tuple(sorted(unresolved))
    )


def _preference(location: Location) -> tuple[bool, int, int, str]:
    """Within one mpack: a known span first, then the earliest."""
    return (location.span is None, location.offset or 0, location.length or 0, location.encoding)


def _homes(candidates: Sequence[Location], excluded: frozenset[str]) -> dict[str, Location]:
    """The preferred usable location in each mpack ({} if every mpack is excluded)."""
    homes: dict[str, Location] = {}
    for location in candidates:
        if location.mpack_id in excluded:
            continue
        current = homes.get(location.mpack_id)
        # Preference matters only between two locations in one mpack (rare): no sort.
        if current is None or _preference(location) < _preference(current):
            homes[location.mpack_id] = location
    return homes


def _assign_shared(
    sole_home: dict[str, _Home], many_homes: list[tuple[str, dict[str, Location]]]
) -> dict[str, _Home]:
    """Give each blob with several homes to an mpack that is read anyway, else greedily."""
    assigned = sole_home
    uncovered: dict[str, dict[str, Location]] = {}
    for object_id, homes in many_homes:
        taken = [mpack_id for mpack_id in homes if mpack_id in assigned]
        if taken:
            chosen = min(taken)
            assigned[chosen].add(object_id, homes[chosen])
        else:
            uncovered[object_id] = homes
    for mpack_id, object_ids in _greedy_cover(uncovered):
        home = assigned[mpack_id] = _Home()
        for object_id in object_ids:
            home.add(object_id, uncovered[object_id][mpack_id])
    return assigned


def _greedy_cover(uncovered: Mapping[str, Mapping[str, Location]]) -> list[tuple[str, list[str]]]:
    """Greedy set cover: repeatedly the mpack holding most uncovered blobs (ties: smallest id)."""
    holds: dict[str, list[str]] = {}
    for object_id, homes in uncovered.items():
        for mpack_id in homes:
            holds.setdefault(mpack_id, []).append(object_id)
    heap = [(-len(object_ids), mpack_id) for mpack_id, object_ids in holds.items()]
    heapq.heapify(heap)
    covered: set[str] = set()
    picks: list[tuple[str, list[str]]] = []
    while heap:
        negative_count, mpack_id = heapq.heappop(heap)
        fresh = [o for o in holds[mpack_id] if o not in covered]
        if not fresh:
            continue
        if len(fresh) < -negative_count:
            holds[mpack_id] = fresh
            heapq.heappush(heap, (-len(fresh), mpack_id))
            continue
        covered.update(fresh)
        picks.append((mpack_id, fresh))
    return picks


# ── how one mpack is read ───────────────────────────────────────────────────


def mpack_size(locations: Iterable[Location]) -> int | None:
    """The mpack's size, if any of its locations knows it."""
    return max(
        (location.mpack_size for location in locations if location.mpack_size is not None),
        default=None,
    )


def _read_for(mpack_id: str, home: _Home, policy: Policy, ranged_reads: bool) -> MPackRead:
    blobs = MappingProxyType(home.blobs)
    if not ranged_reads:
        return MPackRead(mpack_id, blobs, None, "whole: the store reads no ranges")
    if not home.offsets_known:
        return MPackRead(mpack_id, blobs, None, "whole: some offsets are unknown")
    # Decided from the per-mpack totals, before any range is built (distinct blobs never
    # share stored bytes, so their lengths add up to the union of their spans). Nothing
    # stored, nothing to read: that case goes on to the clusters, which say so.
    size = home.size
    if size is not None and home.stored and (verdict := _dense_verdict(size, home.stored, policy)):
        return _whole(mpack_id, blobs, verdict, size, policy)
    spans = [location.span for location in blobs.values()]
    clusters = _clusters([span for span in spans if span is not None and span[0] < span[1]])
    if not clusters:
        return MPackRead(mpack_id, blobs, (), "nothing to read: every blob is empty")
    needed = sum(end - start for start, end in clusters)
    ranges = _coalesce(clusters, needed, policy)
    if size is not None and (verdict := _cheaper_whole_verdict(size, ranges, policy)):
        return _whole(mpack_id, blobs, verdict, size, policy)
    reason = f"ranged: {len(ranges)} range(s), {_read_bytes(ranges)} bytes for {needed} needed"
    return MPackRead(mpack_id, blobs, tuple(ranges), reason)


def _whole(
    mpack_id: str,
    blobs: Mapping[str, Location],
    verdict: str,
    size: int,
    policy: Policy,
) -> MPackRead:
    """A whole read, or its tiles when the mpack is larger than one range."""
    if size <= policy.max_range_bytes:
        return MPackRead(mpack_id, blobs, None, verdict)
    spans = [location.span for location in blobs.values()]
    clusters = _clusters([span for span in spans if span is not None and span[0] < span[1]])
    tiles = tuple(_tiles(clusters, policy.max_range_bytes))
    reason = f"{verdict}; read in {len(tiles)} tile(s) of at most {policy.max_range_bytes} bytes"
    return MPackRead(mpack_id, blobs, tiles, reason, tiled=True)


def _tiles(clusters: list[Span], max_range_bytes: int) -> list[Span]:
    """Consecutive ranges over ``clusters``, each at most ``max_range_bytes`` unless one
    cluster alone is longer, cut only between clusters (a blob is never split)."""
    tiles: list[Span] = []
    for start, end in clusters:
        if tiles and end - tiles[-1][0] <= max_range_bytes:
            tiles[-1] = (tiles[-1][0], end)
        else:
            tiles.append((start, end))
    return tiles


def _dense_verdict(size: int, needed: int, policy: Policy) -> str | None:
    """Why a whole read is right whatever the layout, or None."""
    if size <= policy.request_cost_bytes:
        return f"whole: {size} bytes is less than one request's worth"
    if size <= policy.max_read_amplification * needed:
        return f"whole: {needed} of {size} bytes are needed"
    return None


def _cheaper_whole_verdict(size: int, ranges: list[Span], policy: Policy) -> str | None:
    """Why one whole GET beats these ranges, counting request_cost_bytes per request, or None."""
    ranged_cost = _read_bytes(ranges) + len(ranges) * policy.request_cost_bytes
    if size + policy.request_cost_bytes <= ranged_cost:
        return f"whole: cheaper than {len(ranges)} ranges"
    return None


def _read_bytes(ranges: Iterable[Span]) -> int:
    return sum(end - start for start, end in ranges)


def _union_length(spans: Iterable[Span]) -> int:
    return sum(end - start for start, end in _clusters(list(spans)))


def _clusters(spans: list[Span]) -> list[Span]:
    """Sorted, disjoint unions of overlapping spans (overlaps must share one range)."""
    clusters: list[Span] = []
    for start, end in sorted(spans):
        if clusters and start < clusters[-1][1]:
            last_start, last_end = clusters[-1]
            clusters[-1] = (last_start, max(last_end, end))
        else:
            clusters.append((start, end))
    return clusters


def _coalesce(clusters: list[Span], needed: int, policy: Policy) -> list[Span]:
    """Join clusters across the cheapest gaps, within the gap limit and the read budget.

    Gaps are taken smallest first while each is at most ``coalesce_gap_bytes`` and
    all taken gaps together stay within ``(max_read_amplification - 1) * needed``.
    A range grows past ``max_range_bytes`` only if one cluster alone is longer.
    """
    gaps = sorted((clusters[i + 1][0] - clusters[i][1], i) for i in range(len(clusters) - 1))
    budget = (policy.max_read_amplification - 1.0) * needed
    joined: set[int] = set()
    for gap, index in gaps:
        if gap > policy.coalesce_gap_bytes or gap > budget:
            break
        budget -= gap
        joined.add(index)
    ranges: list[Span] = []
    for index, (start, end) in enumerate(clusters):
        if ranges and index - 1 in joined and end - ranges[-1][0] <= policy.max_range_bytes:
            ranges[-1] = (ranges[-1][0], end)
        else:
            ranges.append((start, end))
    return ranges
