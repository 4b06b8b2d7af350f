"""Full fetches of N blobs (4 KiB, zstd, in 4 push mpacks): fetchcore vs its baselines.

    python -m benchmarks.fetch --stack production --blobs 1000 10000 25000 100000

For each N, on one stack and in one run, side by side: fetchcore's serve_fetch,
one get_object per blob (sequential, and 32 in flight), and the raw I/O floor
(GET the covering mpacks + PUT a blob of the output's size, same client).
Every fetchcore run uploads its fetch mpack (see AlwaysUpload).
"""

from __future__ import annotations

import argparse
import asyncio
from typing import Any

from fetchcore.adapters.baseline import per_object_fetch

from benchmarks.common import (
    REPO,
    AlwaysUpload,
    covering_mpacks,
    ingest_repository,
    raw_io_floor,
    timed,
    write_results,
)
from benchmarks.stacks import STACKS, open_stack
from fetchcore import FetchResult, serve_fetch


async def measure(
    stack_name: str, blob_count: int, repeat: int, baseline_repeat: int
) -> dict[str, Any]:
    """fetchcore and the baselines for one repository of ``blob_count`` blobs."""
    async with open_stack(stack_name) as (index, store):
        repository = await ingest_repository(index, store, blob_count=blob_count)
        want = [repository.head]
        results: list[FetchResult] = []

        async def fetchcore_fetch() -> None:
            results.append(await serve_fetch(index, AlwaysUpload(store), repo_id=REPO, want=want))

        fetchcore_time = await timed(fetchcore_fetch, repeat)
        result = results[-1]
        mpacks = covering_mpacks(repository)
        floor = await timed(lambda: raw_io_floor(store, mpacks, result.size_bytes), repeat)
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
            **fetchcore_time.as_json(),
            "requests": result.stats.requests,
            "bytes_read": result.stats.bytes_read,
        },
        "per_object_sequential": {**sequential.as_json(), "requests": blob_count},
        "per_object_32_in_flight": {**in_flight.as_json(), "requests": blob_count},
        "raw_io_floor": {**floor.as_json(), "requests": len(mpacks) + 1},
        "speedup_vs_sequential": sequential.best / fetchcore_time.best,
        "speedup_vs_32_in_flight": in_flight.best / fetchcore_time.best,
        "times_the_floor": fetchcore_time.best / floor.best,
    }


def report(stack: str, figures: dict[str, Any]) -> str:
    rows = [
        ("fetchcore", figures["fetchcore"]),
        ("one GET per blob, sequential", figures["per_object_sequential"]),
        ("one GET per blob, 32 in flight", figures["per_object_32_in_flight"]),
        ("raw I/O floor", figures["raw_io_floor"]),
    ]
    lines = [f"{figures['blobs']:,} blobs on {stack}:"]
    lines += [
        f"  {name:<32} {row['best_s']:8.3f} s  {row['requests']:>7,} requests" for name, row in rows
    ]
    lines.append(
        f"  fetchcore: {figures['speedup_vs_sequential']:.1f}x faster than sequential, "
        f"{figures['speedup_vs_32_in_flight']:.1f}x than 32 in flight, "
        f"{figures['times_the_floor']:.2f}x the raw I/O floor"
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
    parser.add_argument("--baseline-repeat", type=int, default=1)
    args = parser.parse_args()
    runs = asyncio.run(measure_all(args.stack, args.blobs, args.repeat, args.baseline_repeat))
    write_results(f"fetch_{args.stack}", {"stack": args.stack, "runs": runs})


if __name__ == "__main__":
    main()
