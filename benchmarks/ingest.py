"""Ingest of one 25,000-blob push (parse, verify, store, index) vs the old per-object job.

    python -m benchmarks.ingest --stack production

Side by side on one stack: fetchcore's ingest_push of the push mpack, and what
the old hub's background job did after every push (write each blob under its
own key, 32 in flight). Target: ingest <= 2 s on PostgreSQL (the old job: ~40 s).
"""

from __future__ import annotations

import argparse
import asyncio
import os
from typing import Any

from fetchcore.adapters.baseline import write_object_keys

from benchmarks.common import REPO, timed, write_results
from benchmarks.stacks import STACKS, open_stack
from fetchcore import ObjectStore, ingest_push
from fetchcore.ids import content_id
from fetchcore.testing import synthetic_history


async def warm_up(store: ObjectStore) -> None:
    payload = os.urandom(1 << 20)
    await store.put_mpack(content_id(payload), payload)


async def measure(stack: str, blob_count: int, repeat: int) -> dict[str, Any]:
    (push,) = synthetic_history(blob_count=blob_count, pushes=1, seed=7)
    runs = []
    for _ in range(repeat):
        async with open_stack(stack) as (index, store):
            # Each run on a fresh stack (a second ingest of the same push is a no-op),
            # warmed up first: a new SeaweedFS allocates its volumes on the first write.
            await warm_up(store)
            runs.append(
                await timed(lambda: ingest_push(index, store, repo_id=REPO, mpack=push.data), 1)
            )
    async with open_stack(stack) as (_, store):
        await warm_up(store)
        old_job = await timed(lambda: write_object_keys(store, push.blobs), 1)
    best = min(run.best for run in runs)
    return {
        "stack": stack,
        "blobs": blob_count,
        "push_bytes": len(push.data),
        "ingest_push": {"best_s": best, "runs_s": [run.best for run in runs]},
        "old_per_object_job": old_job.as_json(),
        "speedup": old_job.best / best,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--stack", choices=sorted(STACKS), default="production")
    parser.add_argument("--blobs", type=int, default=25_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    figures = asyncio.run(measure(args.stack, args.blobs, args.repeat))
    write_results(f"ingest_{args.stack}", figures)
    print(
        f"ingest of a {args.blobs:,}-blob push ({figures['push_bytes'] / 1e6:.0f} MB) on "
        f"{args.stack}: {figures['ingest_push']['best_s']:.2f} s; the old per-object job: "
        f"{figures['old_per_object_job']['best_s']:.2f} s ({figures['speedup']:.0f}x)"
    )


if __name__ == "__main__":
    main()
