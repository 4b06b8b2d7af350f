"""The pure planner: time per blob at 10k, 100k and 1M needed blobs over 1,000 mpacks.

    python -m benchmarks.planner

Three layouts: dense (every blob of every mpack is needed: whole reads),
sparse (every 10th blob: ranged reads) and shared (every blob in two mpacks,
so the planner's multi-mpack cover chooses among them). Targets: 1M blobs <= 2 s; time per
blob flat from 10k to 1M (within 1.5x). For scale, the same run also times the
simplest loop that any planner must make: one dict lookup per needed blob; and
the memory work of planning without its logic (each blob's location read and put
into its mpack's mapping), which shows how much of the growth from 10k to 1M is
the memory hierarchy rather than the planner.
"""

from __future__ import annotations

import argparse
import hashlib
import time
from collections.abc import Callable
from typing import Any

import attrs

from benchmarks.common import write_results
from fetchcore import FetchPlan, Location, plan_fetch
from fetchcore.testing import fake_id

MPACKS = 1_000
BLOB_BYTES = 4_096
HEADER_BYTES = 80


def layout(needed: int, every: int, copies: int = 1) -> dict[str, list[Location]]:
    """Locations of ``needed`` blobs spread over MPACKS mpacks, every ``every``-th slot,
    each blob in ``copies`` consecutive mpacks."""
    mpack_ids = [fake_id(f"mpack-{m}") for m in range(MPACKS)]
    per_mpack = needed // MPACKS * every
    size = per_mpack * (BLOB_BYTES + HEADER_BYTES) + HEADER_BYTES
    locations = {}
    for index in range(needed):
        slot = (index // MPACKS) * every
        offset = HEADER_BYTES + slot * (BLOB_BYTES + HEADER_BYTES)
        object_id = "sha256:" + hashlib.sha256(index.to_bytes(8, "big")).hexdigest()
        locations[object_id] = [
            Location(mpack_ids[(index + copy) % MPACKS], offset, BLOB_BYTES, "zstd", size)
            for copy in range(copies)
        ]
    return locations


def best_of(run: Callable[[], object], repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        started = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - started)
    return best


def same_memory_work(locations: dict[str, list[Location]]) -> Callable[[], object]:
    """The memory any planner over these locations touches, without its logic: each
    blob's entry, its list and first location, and an insert into its mpack's mapping."""
    keys = locations.keys()

    def run() -> int:
        homes: dict[str, dict[str, Location]] = {}
        stored = 0
        for object_id in keys:
            location = locations[object_id][0]
            home = homes.get(location.mpack_id)
            if home is None:
                homes[location.mpack_id] = home = {}
            home[object_id] = location
            stored += location.length or 0
        return stored

    return run


@attrs.frozen
class PlanningTimes:
    """Best seconds of the planner and of two floors over the same locations."""

    plan: FetchPlan
    seconds: float
    dict_lookup: float
    memory_work: float


def time_planning(locations: dict[str, list[Location]], repeat: int) -> PlanningTimes:
    """The plan, the best time to make it, and the best times of a bare lookup loop and
    of :func:`same_memory_work`."""
    keys = locations.keys()
    plan = plan_fetch(keys, locations=locations)
    seconds = best_of(lambda: plan_fetch(keys, locations=locations), repeat)
    floor = best_of(lambda: [locations.get(k) for k in keys], repeat)
    memory_work = best_of(same_memory_work(locations), repeat)
    return PlanningTimes(plan, seconds, floor, memory_work)


def measure(sizes: list[int], repeat: int) -> list[dict[str, Any]]:
    rows = []
    for name, every, copies in (("dense", 1, 1), ("sparse", 10, 1), ("shared", 1, 2)):
        for needed in sizes:
            locations = layout(needed, every, copies)
            times = time_planning(locations, repeat)
            plan, seconds = times.plan, times.seconds
            rows.append(
                {
                    "layout": name,
                    "needed": needed,
                    "seconds": seconds,
                    "us_per_blob": seconds / needed * 1e6,
                    "dict_lookup_us_per_blob": times.dict_lookup / needed * 1e6,
                    "memory_work_us_per_blob": times.memory_work / needed * 1e6,
                    "requests": plan.request_count,
                    "whole_reads": sum(read.whole for read in plan.reads),
                }
            )
            print(
                f"{name:>6} {needed:>9,} blobs: {seconds:6.3f} s, "
                f"{rows[-1]['us_per_blob']:.2f} us/blob (a bare dict lookup: "
                f"{rows[-1]['dict_lookup_us_per_blob']:.2f}, the same memory work: "
                f"{rows[-1]['memory_work_us_per_blob']:.2f}), {plan.request_count:,} requests",
                flush=True,
            )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    rows = measure(args.sizes, args.repeat)
    flatness = {name: spread(rows, name, "us_per_blob") for name in ("dense", "sparse", "shared")}
    memory = {name: spread(rows, name, "memory_work_us_per_blob") for name in flatness}
    write_results(
        "planner",
        {
            "mpacks": MPACKS,
            "runs": rows,
            "per_blob_spread": flatness,
            "memory_work_per_blob_spread": memory,
        },
    )
    print(
        "per-blob time, largest over smallest: "
        + ", ".join(f"{k} {v:.2f}x (memory work {memory[k]:.2f}x)" for k, v in flatness.items())
    )


def spread(rows: list[dict[str, Any]], layout_name: str, key: str) -> float:
    """Largest over smallest of ``key`` among the rows of one layout."""
    values = [float(row[key]) for row in rows if row["layout"] == layout_name]
    return max(values) / min(values)


if __name__ == "__main__":
    main()
