"""A sparse fetch: 1% of the blobs of one 64 MiB push mpack. Bytes read vs bytes needed.

    python -m benchmarks.sparse --stack production

The push holds 16,384 blobs of 4 KiB (identity: 64 MiB of content); a root
commit names every 100th of them. fetchcore should read byte ranges of about
the needed size (target: bytes read <= 2x bytes needed), not the whole mpack.
"""

from __future__ import annotations

import argparse
import asyncio
import random
from typing import Any

from benchmarks.common import REPO, AlwaysUpload, timed, write_results
from benchmarks.stacks import STACKS, open_stack
from fetchcore import FetchResult, ingest_push, serve_fetch
from fetchcore.testing import (
    blob_entry,
    blob_id,
    commit_entry,
    fake_id,
    snapshot_entry,
    synthetic_content,
)
from fetchcore.wire import encode_push


def sparse_repository(blob_count: int, blob_size: int, every: int) -> tuple[bytes, bytes, int]:
    """(the big push, a push of a commit naming every ``every``-th blob, bytes needed)."""
    rng = random.Random(0)
    contents = [synthetic_content(rng, blob_size, index) for index in range(blob_count)]
    big = encode_push(
        commits=[commit_entry(fake_id("all"), fake_id("s-all"))],
        snapshots=[
            snapshot_entry(fake_id("s-all"), {f"{i}": blob_id(c) for i, c in enumerate(contents)})
        ],
        blobs=[blob_entry(content) for content in contents],
        branch_heads={"all": fake_id("all")},
    )
    chosen = contents[::every]
    few = encode_push(
        commits=[commit_entry(fake_id("few"), fake_id("s-few"))],
        snapshots=[
            snapshot_entry(fake_id("s-few"), {f"{i}": blob_id(c) for i, c in enumerate(chosen)})
        ],
        branch_heads={"few": fake_id("few")},
    )
    return big, few, sum(len(c) for c in chosen)


async def measure(stack: str, blob_count: int, blob_size: int, every: int) -> dict[str, Any]:
    big, few, needed = sparse_repository(blob_count, blob_size, every)
    async with open_stack(stack) as (index, store):
        await ingest_push(index, store, repo_id=REPO, mpack=big)
        await ingest_push(index, store, repo_id=REPO, mpack=few)
        results: list[FetchResult] = []

        async def fetch() -> None:
            results.append(
                await serve_fetch(index, AlwaysUpload(store), repo_id=REPO, want=[fake_id("few")])
            )

        timing = await timed(fetch, 3)
    stats = results[-1].stats
    return {
        "stack": stack,
        "mpack_bytes": len(big),
        "blobs_needed": results[-1].blob_count,
        "bytes_needed": needed,
        "bytes_read": stats.bytes_read,
        "read_over_needed": stats.bytes_read / needed,
        "range_gets": stats.range_gets,
        "mpack_gets": stats.mpack_gets,
        **timing.as_json(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--stack", choices=sorted(STACKS), default="production")
    parser.add_argument("--blobs", type=int, default=16_384)
    parser.add_argument("--blob-size", type=int, default=4096)
    parser.add_argument("--every", type=int, default=100)
    args = parser.parse_args()
    figures = asyncio.run(measure(args.stack, args.blobs, args.blob_size, args.every))
    write_results(f"sparse_{args.stack}", figures)
    print(
        f"sparse fetch on {args.stack}: {figures['blobs_needed']} blobs of a "
        f"{figures['mpack_bytes'] / 2**20:.0f} MiB mpack; read {figures['bytes_read']:,} bytes "
        f"for {figures['bytes_needed']:,} needed ({figures['read_over_needed']:.2f}x) in "
        f"{figures['range_gets']} ranged GETs, {figures['best_s']:.3f} s"
    )


if __name__ == "__main__":
    main()
