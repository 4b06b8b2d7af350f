"""Full fetches of N blobs (4 KiB, zstd, in 4 push mpacks): fetchcore vs its baselines.

    python -m benchmarks.fetch --stack production --blobs 1000 10000 25000 100000

For each N, on one stack and in one run, side by side, every figure the median
of ``--repeat`` runs: fetchcore's serve_fetch building a fresh document (see
AlwaysUpload), the same fetch repeated (the stored document reused; with the
hub's FetchMemo, which has seen the request before, and without a memo), 8
identical fetches at once (no memo: they share one resolution and one build),
one get_object per blob (sequential, and 32 in flight), and the raw I/O floor
(GET the covering mpacks + PUT the real document, same client).
"""

from __future__ import annotations

import argparse
import asyncio
from typing import Any

from fetchcore.adapters.baseline import per_object_fetch

from benchmarks.common import (
    REPO,
    AlwaysUpload,
    CountingReads,
    covering_mpacks,
    ingest_repository,
    raw_io_floor,
    timed,
    timed_alternately,
    write_results,
)
from benchmarks.stacks import STACKS, open_stack
from fetchcore import FetchMemo, FetchResult, serve_fetch


async def measure(
    stack_name: str, blob_count: int, repeat: int, baseline_repeat: int
) -> dict[str, Any]:
    """fetchcore and the baselines for one repository of ``blob_count`` blobs."""
    async with open_stack(stack_name) as (index, store):
        repository = await ingest_repository(index, store, blob_count=blob_count)
        want = [repository.head]
        results: list[FetchResult] = []

        async def fresh_fetch() -> None:
            results.append(await serve_fetch(index, AlwaysUpload(store), repo_id=REPO, want=want))

        counting = CountingReads(AlwaysUpload(store))

        async def eight_at_once() -> None:
            await asyncio.gather(
                *(serve_fetch(index, counting, repo_id=REPO, want=want) for _ in range(8))
            )

        # In turns: the ratio of 8 at once to one fetch is the figure, on a shared machine.
        fresh, concurrent = await timed_alternately(fresh_fetch, eight_at_once, repeat)
        result = results[-1]
        document = await store.get_fetch(result.mpack_id) or b""
        mpacks = covering_mpacks(repository)
        floor = await timed(lambda: raw_io_floor(store, mpacks, document), repeat)
        unremembered = await timed(
            lambda: serve_fetch(index, store, repo_id=REPO, want=want), repeat
        )
        memo = FetchMemo()  # the hub's, shared across requests
        await serve_fetch(index, store, repo_id=REPO, want=want, memo=memo)  # the request seen once
        repeated = await timed(
            lambda: serve_fetch(index, store, repo_id=REPO, want=want, memo=memo), repeat
        )
        in_flight = await timed(
            lambda: per_object_fetch(index, store, repo_id=REPO, want=want, in_flight=32),
            baseline_repeat,
        )
        sequential = await timed(
            lambda: per_object_fetch(index, store, repo_id=REPO, want=want), baseline_repeat
        )
    return {
        "blobs": blob_count,
        "pushes": len(repository.pushes),
        "fetch_mpack_bytes": result.size_bytes,
        "fetchcore": {
            **fresh.as_json(),
            "requests": result.stats.requests,
            "bytes_read": result.stats.bytes_read,
        },
        "fetchcore_repeated": {**repeated.as_json(), "requests": 0},
        "fetchcore_repeated_no_memo": {**unremembered.as_json(), "requests": 0},
        "fetchcore_8_concurrent": {
            **concurrent.as_json(),
            "requests": counting.reads // repeat,
            "push_mpack_reads_per_round": counting.reads / repeat,
            "one_fetch_requests": result.stats.requests,
        },
        "per_object_sequential": {**sequential.as_json(), "requests": blob_count},
        "per_object_32_in_flight": {**in_flight.as_json(), "requests": blob_count},
        "raw_io_floor": {**floor.as_json(), "requests": len(mpacks) + 1},
        "speedup_vs_sequential": sequential.median / fresh.median,
        "speedup_vs_32_in_flight": in_flight.median / fresh.median,
        "times_the_floor": fresh.median / floor.median,
        "repeated_times_the_floor": repeated.median / floor.median,
        "repeated_no_memo_times_the_floor": unremembered.median / floor.median,
        "concurrent_times_one_fetch": concurrent.median / fresh.median,
    }


def report(stack: str, figures: dict[str, Any]) -> str:
    rows = [
        ("fetchcore, fresh", figures["fetchcore"]),
        ("fetchcore, repeated (memo)", figures["fetchcore_repeated"]),
        ("fetchcore, repeated (no memo)", figures["fetchcore_repeated_no_memo"]),
        ("fetchcore, 8 identical at once", figures["fetchcore_8_concurrent"]),
        ("one GET per blob, sequential", figures["per_object_sequential"]),
        ("one GET per blob, 32 in flight", figures["per_object_32_in_flight"]),
        ("raw I/O floor", figures["raw_io_floor"]),
    ]
    lines = [f"{figures['blobs']:,} blobs on {stack}:"]
    lines += [
        f"  {name:<32} {row['median_s']:8.3f} s  {row['requests']:>7,} requests"
        for name, row in rows
    ]
    lines.append(
        f"  fetchcore: {figures['speedup_vs_sequential']:.1f}x faster than sequential, "
        f"{figures['speedup_vs_32_in_flight']:.1f}x than 32 in flight, "
        f"{figures['times_the_floor']:.2f}x the raw I/O floor; repeated "
        f"{figures['repeated_times_the_floor']:.3f}x the floor "
        f"({figures['repeated_no_memo_times_the_floor']:.3f}x without a memo); 8 at once "
        f"{figures['concurrent_times_one_fetch']:.2f}x one fetch (medians)"
    )
    return "\n".join(lines)


async def measure_all(
    stack: str, sizes: list[int], repeat: int, baseline_repeat: int
) -> list[dict[str, Any]]:
    runs = []
    for size in sizes:
        figures = await measure(stack, size, repeat, baseline_repeat)
        print(report(stack, figures), flush=True)
        runs.append(figures)
    return runs


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--stack", choices=sorted(STACKS), default="production")
    parser.add_argument("--blobs", type=int, nargs="+", default=[25_000])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--baseline-repeat", type=int, default=3)
    args = parser.parse_args()
    runs = asyncio.run(measure_all(args.stack, args.blobs, args.repeat, args.baseline_repeat))
    write_results(f"fetch_{args.stack}", {"stack": args.stack, "runs": runs})


if __name__ == "__main__":
    main()
