"""Peak memory (RSS) of the 25,000-blob fetch on PostgreSQL + S3.

    python -m benchmarks.memory_peak

The parent sets up the stack and ingests the repository; a fresh child process
connects to the same index and bucket, serves one full fetch and reports its
own peak RSS (the whole process: interpreter and libraries included).
Target: peak <= 3x the fetch mpack's size + 100 MB.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
from typing import Any

from fetchcore.adapters.s3 import S3ObjectStore
from fetchcore.adapters.sql import SqlIndexRepo
from tests.seaweed import S3Endpoint

from benchmarks.common import REPO, ingest_repository, write_results
from benchmarks.stacks import s3_endpoint, scratch_postgres
from fetchcore import serve_fetch

BUCKET = "fetchcore-bench"
PREFIX = "memory-peak/"
MB = 1_000_000


def store(endpoint: S3Endpoint, *, create_bucket: bool = False) -> Any:
    return S3ObjectStore.connect(
        bucket=BUCKET,
        endpoint_url=endpoint.url,
        access_key_id=endpoint.access_key_id or None,
        secret_access_key=endpoint.secret_access_key or None,
        prefix=PREFIX,
        create_bucket=create_bucket,
    )


def peak_rss_bytes() -> int:
    """This process's peak RSS (VmHWM: unlike ru_maxrss, not inherited from the parent)."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024  # kB
    raise RuntimeError("no VmHWM in /proc/self/status (Linux only)")


async def child(index_url: str, endpoint: S3Endpoint, want: str) -> dict[str, Any]:
    async with SqlIndexRepo.connect(index_url) as index, store(endpoint) as s3:
        before = peak_rss_bytes()
        result = await serve_fetch(index, s3, repo_id=REPO, want=[want])
    return {
        "rss_before_fetch": before,
        "peak_rss": peak_rss_bytes(),
        "fetch_mpack_bytes": result.size_bytes,
    }


async def parent(blob_count: int) -> dict[str, Any]:
    with s3_endpoint() as endpoint:
        async with scratch_postgres() as url:
            async with (
                SqlIndexRepo.connect(url, create_schema=True) as index,
                store(endpoint, create_bucket=True) as s3,
            ):
                repository = await ingest_repository(
                    index, s3, blob_count=blob_count, legacy_keys=False
                )
            environment = {
                **os.environ,
                "BENCH_S3_URL": endpoint.url,
                "BENCH_S3_KEY": endpoint.access_key_id,
                "BENCH_S3_SECRET": endpoint.secret_access_key,
            }
            completed = await asyncio.to_thread(
                subprocess.run,
                [sys.executable, "-m", "benchmarks.memory_peak", "--child", url, repository.head],
                env=environment,
                capture_output=True,
                text=True,
                check=True,
            )
    figures: dict[str, Any] = json.loads(completed.stdout.strip().splitlines()[-1])
    budget = 3 * figures["fetch_mpack_bytes"] + 100 * MB
    return {
        "blobs": blob_count,
        **figures,
        "budget_bytes": budget,
        "within_budget": figures["peak_rss"] <= budget,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--blobs", type=int, default=25_000)
    parser.add_argument("--child", nargs=2, metavar=("INDEX_URL", "WANT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        endpoint = S3Endpoint(
            os.environ["BENCH_S3_URL"], os.environ["BENCH_S3_KEY"], os.environ["BENCH_S3_SECRET"]
        )
        print(json.dumps(asyncio.run(child(args.child[0], endpoint, args.child[1]))))
        return
    figures = asyncio.run(parent(args.blobs))
    write_results("memory_peak", figures)
    print(
        f"fetch of {figures['blobs']:,} blobs: peak RSS {figures['peak_rss'] / MB:.0f} MB "
        f"(before the fetch: {figures['rss_before_fetch'] / MB:.0f} MB) for a "
        f"{figures['fetch_mpack_bytes'] / MB:.0f} MB fetch mpack; budget "
        f"{figures['budget_bytes'] / MB:.0f} MB"
    )


if __name__ == "__main__":
    main()
