"""The planner: decisions on small cases, and its invariants on random ones."""

from __future__ import annotations

import random

import attrs
from hypothesis import given, settings
from hypothesis import strategies as st

from fetchcore import FetchPlan, Location, Policy, plan_fetch
from fetchcore.planner import MPackRead, _clusters, _coalesce, mpack_size
from fetchcore.testing import fake_id

KiB = 1024
MiB = 1024 * KiB
M1, M2, M3 = fake_id("m1"), fake_id("m2"), fake_id("m3")


def blob(n: int) -> str:
    return fake_id(f"blob-{n}")


def packed(mpack_id: str, count: int, *, size: int = 4 * KiB, gap: int = 64) -> dict[str, Location]:
    """``count`` blobs laid out back to back in one mpack, ``gap`` header bytes apart."""
    total = count * (size + gap) + gap
    return {
        blob(i): Location(mpack_id, gap + i * (size + gap), size, "zstd", total)
        for i in range(count)
    }


def read_of(plan: FetchPlan, mpack_id: str) -> MPackRead:
    (read,) = [r for r in plan.reads if r.mpack_id == mpack_id]
    return read


class TestSources:
    def test_cache_comes_first_then_mpacks_then_unresolved(self) -> None:
        locations = {blob(1): [Location(M1, 0, 10)], blob(2): [Location(M1, 10, 10)]}
        plan = plan_fetch(
            [blob(0), blob(1), blob(2), blob(3)], cached={blob(0), blob(2)}, locations=locations
        )
        assert plan.cached == tuple(sorted([blob(0), blob(2)]))
        assert [o for r in plan.reads for o in r.blobs] == [blob(1)]
        assert plan.unresolved == (blob(3),)
        assert plan.legacy == ()

    def test_a_blob_whose_every_mpack_is_excluded_goes_to_its_legacy_key(self) -> None:
        locations = {blob(1): [Location(M1, 0, 10), Location(M2, 0, 10)]}
        plan = plan_fetch([blob(1)], locations=locations, excluded={M1, M2})
        assert plan.legacy == (blob(1),)
        assert plan.reads == ()

    def test_an_excluded_mpack_is_replaced_by_another_home(self) -> None:
        locations = {blob(1): [Location(M1, 0, 10), Location(M2, 0, 10)]}
        plan = plan_fetch([blob(1)], locations=locations, excluded={M1})
        assert [r.mpack_id for r in plan.reads] == [M2]


class TestChoosingMpacks:
    def test_the_only_home_of_a_blob_also_serves_blobs_found_elsewhere(self) -> None:
        locations = {
            blob(1): [Location(M2, 0, 10)],
            blob(2): [Location(M1, 0, 10), Location(M2, 10, 10)],
        }
        plan = plan_fetch([blob(1), blob(2)], locations=locations)
        assert [r.mpack_id for r in plan.reads] == [M2]

    def test_greedy_cover_takes_the_mpack_holding_most(self) -> None:
        locations = {
            blob(1): [Location(M1, 0, 10), Location(M2, 0, 10)],
            blob(2): [Location(M2, 10, 10), Location(M3, 0, 10)],
            blob(3): [Location(M2, 20, 10), Location(M3, 10, 10)],
        }
        plan = plan_fetch([blob(1), blob(2), blob(3)], locations=locations)
        assert [r.mpack_id for r in plan.reads] == [M2]

    def test_ties_go_to_the_smallest_mpack_id(self) -> None:
        first, second = sorted([M1, M2])
        locations = {blob(1): [Location(second, 0, 10), Location(first, 0, 10)]}
        assert [r.mpack_id for r in plan_fetch([blob(1)], locations=locations).reads] == [first]


class TestWholeOrRanged:
    def test_unknown_offsets_mean_a_whole_read(self) -> None:
        plan = plan_fetch([blob(1)], locations={blob(1): [Location(M1)]})
        assert read_of(plan, M1).whole
        assert "offsets are unknown" in read_of(plan, M1).reason

    def test_a_dense_fetch_reads_each_mpack_whole_once(self) -> None:
        layout = packed(M1, 1_000)
        plan = plan_fetch(layout, locations={o: [loc] for o, loc in layout.items()})
        assert plan.request_count == 1
        assert read_of(plan, M1).whole

    def test_a_sparse_fetch_reads_ranges_within_the_amplification_budget(self) -> None:
        layout = packed(M1, 16_384)  # a 64 MiB mpack of 4 KiB blobs
        wanted = sorted(layout)[::100]  # 1%
        plan = plan_fetch(wanted, locations={o: [layout[o]] for o in wanted})
        read = read_of(plan, M1)
        assert not read.whole
        needed = read.bytes_needed
        assert needed is not None
        assert read.bytes_to_read is not None
        assert read.bytes_to_read <= 2 * needed

    def test_a_tiny_mpack_is_read_whole(self) -> None:
        locations = {blob(1): [Location(M1, 10, 5, "identity", 100)]}
        assert read_of(plan_fetch([blob(1)], locations=locations), M1).whole

    def test_close_spans_are_coalesced_and_far_ones_are_not(self) -> None:
        size = 100 * MiB
        locations = {
            blob(1): [Location(M1, 0, 1000, "identity", size)],
            blob(2): [Location(M1, 1500, 1000, "identity", size)],
            blob(3): [Location(M1, 50 * MiB, 1000, "identity", size)],
        }
        policy = Policy(coalesce_gap_bytes=1000, request_cost_bytes=0)
        plan = plan_fetch(sorted(locations), locations=locations, policy=policy)
        assert read_of(plan, M1).ranges == ((0, 2500), (50 * MiB, 50 * MiB + 1000))

    def test_a_range_stops_at_the_range_limit(self) -> None:
        layout = packed(M1, 100, size=1000, gap=0)
        unsized = {o: [attrs.evolve(loc, mpack_size=None)] for o, loc in layout.items()}
        policy = Policy(max_range_bytes=10_000, request_cost_bytes=0, max_read_amplification=1.0)
        plan = plan_fetch(layout, locations=unsized, policy=policy)
        ranges = read_of(plan, M1).ranges
        assert ranges is not None
        assert len(ranges) == 10
        assert all(end - start == 10_000 for start, end in ranges)

    def test_a_gap_of_exactly_the_coalescing_limit_is_joined(self) -> None:
        locations = {
            blob(1): [Location(M1, 0, 1000, "identity", 100 * MiB)],
            blob(2): [Location(M1, 1500, 1000, "identity", 100 * MiB)],
        }
        policy = Policy(coalesce_gap_bytes=500, request_cost_bytes=0)
        plan = plan_fetch(sorted(locations), locations=locations, policy=policy)
        assert read_of(plan, M1).ranges == ((0, 2500),)

    def test_a_gap_one_byte_over_the_coalescing_limit_is_not_read(self) -> None:
        locations = {
            blob(1): [Location(M1, 0, 1000, "identity", 100 * MiB)],
            blob(2): [Location(M1, 1501, 1000, "identity", 100 * MiB)],
        }
        policy = Policy(coalesce_gap_bytes=500, request_cost_bytes=0)
        plan = plan_fetch(sorted(locations), locations=locations, policy=policy)
        assert read_of(plan, M1).ranges == ((0, 1000), (1501, 2501))

    def test_the_cost_of_ranges_counts_one_request_per_range(self) -> None:
        """Two ranges cost 20,000 bytes + 2 requests = 180,000; one whole GET costs
        100,000 + 1 request = 180,000: at equal cost the single GET wins."""
        locations = {
            blob(1): [Location(M1, 0, 10_000, "identity", 100_000)],
            blob(2): [Location(M1, 90_000, 10_000, "identity", 100_000)],
        }
        policy = Policy(coalesce_gap_bytes=0, request_cost_bytes=80_000)
        plan = plan_fetch(sorted(locations), locations=locations, policy=policy)
        assert read_of(plan, M1).whole
        cheaper_requests = attrs.evolve(policy, request_cost_bytes=79_999)
        plan = plan_fetch(sorted(locations), locations=locations, policy=cheaper_requests)
        assert read_of(plan, M1).ranges == ((0, 10_000), (90_000, 100_000))

    def test_an_mpack_of_exactly_the_range_limit_may_be_read_whole(self) -> None:
        layout = packed(M1, 10, size=1000, gap=0)
        policy = Policy(max_range_bytes=10_000)
        plan = plan_fetch(layout, locations={o: [loc] for o, loc in layout.items()}, policy=policy)
        assert read_of(plan, M1).whole

    def test_an_mpack_one_byte_over_the_range_limit_is_read_in_ranges_within_it(self) -> None:
        layout = {
            o: attrs.evolve(loc, mpack_size=10_001)
            for o, loc in packed(M1, 10, size=1000, gap=0).items()
        }
        policy = Policy(max_range_bytes=10_000)
        plan = plan_fetch(layout, locations={o: [loc] for o, loc in layout.items()}, policy=policy)
        ranges = read_of(plan, M1).ranges
        assert ranges is not None
        assert all(end - start <= 10_000 for start, end in ranges)

    def test_a_large_mpack_that_would_be_read_whole_is_read_in_few_tiles(self) -> None:
        """Every 10th blob of a 41 MB mpack: read whole before, now in tiles of at most
        max_range_bytes, a handful of requests rather than one per blob."""
        layout = packed(M1, 10_000)
        wanted = sorted(layout, key=lambda o: layout[o].offset or 0)[::10]
        plan = plan_fetch(wanted, locations={o: [layout[o]] for o in wanted})
        read = read_of(plan, M1)
        assert read.tiled
        assert read.ranges is not None
        assert len(read.ranges) <= 3
        assert all(end - start <= Policy().max_range_bytes for start, end in read.ranges)

    def test_a_store_without_ranged_reads_gets_whole_reads_only(self) -> None:
        layout = packed(M1, 16_384)
        wanted = sorted(layout)[::100]
        locations = {o: [layout[o]] for o in wanted}
        plan = plan_fetch(wanted, locations=locations, ranged_reads=False)
        assert read_of(plan, M1).whole


# ── invariants on random inputs ──────────────────────────────────────────────


@attrs.frozen
class Case:
    needed: list[str]
    cached: set[str]
    locations: dict[str, list[Location]]
    excluded: set[str]
    policy: Policy

    def plan(self) -> FetchPlan:
        return plan_fetch(
            self.needed,
            cached=self.cached,
            locations=self.locations,
            excluded=self.excluded,
            policy=self.policy,
        )


@st.composite
def cases(draw: st.DrawFn) -> Case:
    mpacks = [fake_id(f"mpack-{i}") for i in range(draw(st.integers(0, 5)))]
    cursor = {m: draw(st.integers(0, 200)) for m in mpacks}
    offsets_known = {m: draw(st.booleans()) or draw(st.booleans()) for m in mpacks}
    blobs = [blob(i) for i in range(draw(st.integers(0, 40)))]
    placed: dict[str, list[tuple[str, int, int]]] = {}
    for object_id in blobs:
        homes = draw(st.lists(st.sampled_from(mpacks), max_size=3, unique=True)) if mpacks else []
        for mpack_id in homes:
            start = cursor[mpack_id] + draw(st.integers(0, 4_000))
            length = draw(st.integers(0, 3_000))
            cursor[mpack_id] = start + length
            placed.setdefault(object_id, []).append((mpack_id, start, length))
    sizes = {
        m: cursor[m] + draw(st.integers(0, 500)) if draw(st.booleans()) else None for m in mpacks
    }
    locations = {
        object_id: [
            Location(m, s, n, "identity", sizes[m])
            if offsets_known[m]
            else Location(m, mpack_size=sizes[m])
            for m, s, n in homes
        ]
        for object_id, homes in placed.items()
    }
    needed = draw(st.lists(st.sampled_from([*blobs, blob(999)]), unique=True)) if blobs else []
    policy = Policy(
        coalesce_gap_bytes=draw(st.integers(0, 3_000)),
        max_range_bytes=draw(st.integers(1, 20_000)),
        max_read_amplification=draw(st.floats(1.0, 4.0)),
        request_cost_bytes=draw(st.integers(0, 10_000)),
    )
    return Case(
        needed=needed,
        cached=set(draw(st.lists(st.sampled_from(needed), unique=True))) if needed else set(),
        locations=locations,
        excluded=set(draw(st.lists(st.sampled_from(mpacks), unique=True))) if mpacks else set(),
        policy=policy,
    )


def _total(ranges: tuple[tuple[int, int], ...]) -> int:
    return sum(end - start for start, end in ranges)


def read_blobs(plan: FetchPlan) -> list[str]:
    return [object_id for read in plan.reads for object_id in read.blobs]


def uncovered_gaps(read: MPackRead) -> list[int]:
    """Lengths of the stretches inside the ranges that no assigned span covers."""
    assert read.ranges is not None
    spans = sorted(loc.span for loc in read.blobs.values() if loc.span is not None)
    gaps = []
    for start, end in read.ranges:
        cursor = start
        for span_start, span_end in spans:
            if span_end <= start or span_start >= end:
                continue
            if span_start > cursor:
                gaps.append(span_start - cursor)
            cursor = max(cursor, span_end)
        if end > cursor:
            gaps.append(end - cursor)
    return gaps


class TestInvariants:
    @settings(max_examples=200)
    @given(cases())
    def test_every_needed_blob_gets_exactly_one_first_source(self, case: Case) -> None:
        plan = case.plan()
        sources = [*plan.cached, *read_blobs(plan), *plan.legacy, *plan.unresolved]
        assert sorted(sources) == sorted(set(case.needed))

    @settings(max_examples=200)
    @given(cases())
    def test_cached_blobs_never_cause_a_storage_request(self, case: Case) -> None:
        plan = case.plan()
        assert set(plan.cached) == case.cached & set(case.needed)
        assert not case.cached & {*read_blobs(plan), *plan.legacy}

    @settings(max_examples=200)
    @given(cases())
    def test_each_mpack_is_read_at_most_once(self, case: Case) -> None:
        mpack_ids = [read.mpack_id for read in case.plan().reads]
        assert len(mpack_ids) == len(set(mpack_ids))

    @settings(max_examples=200)
    @given(cases())
    def test_ranges_are_sorted_disjoint_inside_and_cover_every_span(self, case: Case) -> None:
        """(An empty blob needs no bytes: no range has to cover it.)"""
        for read in case.plan().reads:
            if read.ranges is None:
                continue
            assert all(start < end for start, end in read.ranges)
            assert all(a[1] <= b[0] for a, b in zip(read.ranges, read.ranges[1:], strict=False))
            size = next(iter(read.blobs.values())).mpack_size
            assert size is None or not read.ranges or read.ranges[-1][1] <= size
            for location in read.blobs.values():
                assert location.span is not None
                start, end = location.span
                assert start == end or any(
                    r_start <= start and end <= r_end for r_start, r_end in read.ranges
                )

    @settings(max_examples=200)
    @given(cases())
    def test_tiles_read_no_more_than_the_whole_in_ranges_within_the_limit(self, case: Case) -> None:
        for read in case.plan().reads:
            if read.tiled:
                assert read.ranges is not None
                size = mpack_size(read.blobs.values())
                assert size is not None
                assert size > case.policy.max_range_bytes
                assert _total(read.ranges) <= size
                longest_blob = max((loc.length or 0 for loc in read.blobs.values()), default=0)
                limit = max(case.policy.max_range_bytes, longest_blob)
                assert all(end - start <= limit for start, end in read.ranges)

    @settings(max_examples=200)
    @given(cases())
    def test_an_mpack_over_the_range_limit_is_never_read_whole_when_offsets_are_known(
        self, case: Case
    ) -> None:
        for read in case.plan().reads:
            spans_known = all(location.span is not None for location in read.blobs.values())
            size = mpack_size(read.blobs.values())
            if read.whole and spans_known and size is not None:
                assert size <= case.policy.max_range_bytes

    @settings(max_examples=200)
    @given(cases())
    def test_gaps_wider_than_the_coalescing_limit_are_never_read(self, case: Case) -> None:
        for read in case.plan().reads:
            if read.ranges is not None and not read.tiled:
                assert all(gap <= case.policy.coalesce_gap_bytes for gap in uncovered_gaps(read))

    @settings(max_examples=200)
    @given(cases())
    def test_a_ranged_read_stays_within_the_amplification_budget(self, case: Case) -> None:
        for read in case.plan().reads:
            if read.ranges is not None and not read.tiled:
                needed = read.bytes_needed
                assert needed is not None
                assert read.bytes_to_read is not None
                assert read.bytes_to_read <= case.policy.max_read_amplification * needed + 1e-6

    @settings(max_examples=200)
    @given(cases())
    def test_excluded_mpacks_are_never_used(self, case: Case) -> None:
        plan = case.plan()
        assert not {read.mpack_id for read in plan.reads} & case.excluded
        for read in plan.reads:
            assert all(location.mpack_id == read.mpack_id for location in read.blobs.values())

    @settings(max_examples=200)
    @given(cases())
    def test_unresolved_is_needed_minus_cached_minus_located(self, case: Case) -> None:
        located = {o for o, locations in case.locations.items() if locations}
        expected = set(case.needed) - case.cached - located
        assert set(case.plan().unresolved) == expected

    @settings(max_examples=200)
    @given(cases())
    def test_legacy_is_exactly_the_blobs_whose_every_mpack_is_excluded(self, case: Case) -> None:
        expected = {
            o
            for o in set(case.needed) - case.cached
            if case.locations.get(o)
            and all(loc.mpack_id in case.excluded for loc in case.locations[o])
        }
        assert set(case.plan().legacy) == expected

    @settings(max_examples=200)
    @given(cases(), st.randoms(use_true_random=False))
    def test_the_plan_does_not_depend_on_input_order(self, case: Case, rng: random.Random) -> None:
        needed = list(case.needed)
        rng.shuffle(needed)
        items = list(case.locations.items())
        rng.shuffle(items)
        locations = {o: rng.sample(locs, len(locs)) for o, locs in items}
        shuffled = attrs.evolve(case, needed=needed, locations=locations)
        assert shuffled.plan() == case.plan()


def reads_the_whole_by_the_rule_of_ranges(read: MPackRead, policy: Policy) -> bool | None:
    """The rule as it was before per-mpack totals: build the ranges first, then read the
    whole mpack when it is small, dense, or cheaper than the ranges. None: nothing to read."""
    spans = [location.span for location in read.blobs.values()]
    if any(span is None for span in spans):
        return True
    clusters = _clusters([span for span in spans if span is not None and span[0] < span[1]])
    if not clusters:
        return None
    needed = sum(end - start for start, end in clusters)
    ranges = _coalesce(clusters, needed, policy)
    size = mpack_size(read.blobs.values())
    if size is None:
        return False
    ranged_cost = _total(tuple(ranges)) + len(ranges) * policy.request_cost_bytes
    return (
        size <= policy.request_cost_bytes
        or size <= policy.max_read_amplification * needed
        or size + policy.request_cost_bytes <= ranged_cost
    )


class TestDecisionFromTotals:
    @settings(max_examples=300)
    @given(cases())
    def test_whole_or_ranged_is_what_the_rule_of_ranges_decides(self, case: Case) -> None:
        for read in case.plan().reads:
            expected = reads_the_whole_by_the_rule_of_ranges(read, case.policy)
            if expected is None:
                assert read.ranges == ()
            else:
                assert (read.whole or read.tiled) == expected, read.reason

    def test_an_mpack_whose_blobs_are_all_empty_is_not_read(self) -> None:
        locations = {blob(n): [Location(M1, 10 * n, 0, "identity", 100)] for n in range(3)}
        plan = plan_fetch(sorted(locations), locations=locations)
        assert read_of(plan, M1).ranges == ()
        assert plan.request_count == 0


# ── exact limits (each `>` against `>=` gets a test at the limit) ────────────


def spread(count: int, *, length: int, step: int, size: int) -> dict[str, list[Location]]:
    """``count`` blobs of ``length`` bytes, one every ``step`` bytes of an mpack of ``size``."""
    return {blob(n): [Location(M1, n * step, length, "identity", size)] for n in range(count)}


def gap_ranges(gap: int) -> tuple[tuple[int, int], ...] | None:
    """The ranges planned for two 1,000-byte blobs ``gap`` bytes apart (gap limit 1,000)."""
    locations = spread(2, length=1000, step=1000 + gap, size=100 * MiB)
    policy = Policy(coalesce_gap_bytes=1000, request_cost_bytes=0, max_read_amplification=10)
    return read_of(plan_fetch(sorted(locations), locations=locations, policy=policy), M1).ranges


def whole_for(size: int) -> bool:
    """Whether ten 10-byte blobs spread over an mpack of ``size`` are read whole: their
    ten ranges cost 100 bytes + 10 requests of 1,000 = 10,100; one whole read size + 1,000."""
    locations = spread(10, length=10, step=500, size=size)
    policy = Policy(coalesce_gap_bytes=0, request_cost_bytes=1000)
    return read_of(plan_fetch(sorted(locations), locations=locations, policy=policy), M1).whole


class TestExactLimits:
    def test_a_gap_of_exactly_coalesce_gap_bytes_is_joined(self) -> None:
        assert gap_ranges(1000) == ((0, 3000),)

    def test_a_gap_one_byte_over_coalesce_gap_bytes_is_not_joined(self) -> None:
        assert gap_ranges(1001) == ((0, 1000), (2001, 3001))

    def test_a_whole_read_costing_exactly_the_ranges_is_chosen(self) -> None:
        assert whole_for(9_100)

    def test_the_whole_read_is_weighed_against_one_request_per_range(self) -> None:
        assert whole_for(9_000)  # one request for all ten ranges would make them cheaper

    def test_a_whole_read_costing_one_byte_more_than_the_ranges_is_not_chosen(self) -> None:
        assert not whole_for(9_101)
