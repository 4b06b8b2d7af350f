"""Peak memory (RSS) of a full fetch, above the process's baseline.

    python -m benchmarks.memory_peak                                # 25,000 blobs, PostgreSQL + S3
    python -m benchmarks.memory_peak --stack memory --blobs 512 --blob-size 4194304

production: the parent sets up the stack and ingests the repository; a fresh
child process connects to the same index and bucket, serves one full fetch
and reports its own peak RSS.

memory: one process ingests into the in-memory adapters, drops everything but
the stored push mpacks, resets its peak RSS (``/proc/self/clear_refs``) and
serves the fetch into an upload that discards what it is given (the document
would otherwise sit in the same process's memory). The figure is what the
fetch itself holds.

Target (issue 10): peak above the baseline <= 256 MiB with the default policy,
whatever the fetch's size.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ctypes
import gc
import json
import os
import subprocess
import sys
import time
from typing import Any

import attrs
from fetchcore.adapters.memory import MemoryIndexRepo, MemoryObjectStore
from fetchcore.adapters.sql import SqlIndexRepo
from fetchcore.adapters.wrapping import ObjectStoreWrapper
from tests.seaweed import S3Endpoint

from benchmarks.common import REPO, ingest_repository, write_results
from benchmarks.stacks import s3_endpoint, s3_store, scratch_postgres
from fetchcore import serve_fetch
from fetchcore.ports import FetchUpload

BUCKET = "fetchcore-bench"
PREFIX = "memory-peak/"
MB = 1_000_000
MiB = 1 << 20
BUDGET_OVER_BASELINE = 256 * MiB


def store(endpoint: S3Endpoint, *, create_bucket: bool = False) -> Any:
    return s3_store(endpoint, BUCKET, prefix=PREFIX, create_bucket=create_bucket)


def peak_rss_bytes() -> int:
    """This process's peak RSS (VmHWM: unlike ru_maxrss, not inherited from the parent)."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024  # kB
    raise RuntimeError("no VmHWM in /proc/self/status (Linux only)")


def rss_bytes() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS in /proc/self/status (Linux only)")


def release_and_reset_peak() -> None:
    """Give freed heap back to the OS, then make the peak RSS start from now."""
    gc.collect()
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    with open("/proc/self/clear_refs", "w") as clear_refs:
        clear_refs.write("5")


@attrs.define
class Discarded:
    """A fetch upload that counts what it is given and keeps nothing."""

    size: int = 0

    async def write(self, chunk: bytes) -> None:
        self.size += len(chunk)

    async def commit(self) -> None:
        return None

    async def abort(self) -> None:
        return None


@attrs.define
class DiscardingUploads(ObjectStoreWrapper):
    """A store whose fetch documents are built every time and then dropped."""

    async def fetch_intact(self, fetch_id: str) -> bool | None:
        return False

    async def open_fetch(self, fetch_id: str) -> FetchUpload:
        return Discarded()

    async def presign_fetch(self, fetch_id: str, ttl_s: int) -> str | None:
        return None


async def in_process(blob_count: int, blob_size: int) -> dict[str, Any]:
    index, store = MemoryIndexRepo(), MemoryObjectStore()
    repository = await ingest_repository(
        index, store, blob_count=blob_count, blob_size=blob_size, legacy_keys=False
    )
    head = repository.head
    del repository
    release_and_reset_peak()
    before = rss_bytes()
    started = time.perf_counter()
    result = await serve_fetch(index, DiscardingUploads(store), repo_id=REPO, want=[head])
    elapsed = time.perf_counter() - started
    peak = peak_rss_bytes()
    return {
        "stack": "memory",
        "blobs": blob_count,
        "blob_size": blob_size,
        "fetch_mpack_bytes": result.size_bytes,
        "push_mpack_bytes": sum(len(data) for data in store.mpacks.values()),
        "rss_before_fetch": before,
        "peak_rss": peak,
        "peak_over_baseline": peak - before,
        "budget_over_baseline": BUDGET_OVER_BASELINE,
        "within_budget": peak - before <= BUDGET_OVER_BASELINE,
        "seconds": elapsed,
        "seconds_per_gib": elapsed / (result.size_bytes / (1 << 30)),
    }


async def run_child(module: str, arguments: list[str], endpoint: S3Endpoint) -> dict[str, Any]:
    """Run ``python -m module --child *arguments`` in a fresh process that reaches the S3
    server at ``endpoint`` (see :func:`endpoint_of_parent`); its last line of output, as JSON."""
    environment = {
        **os.environ,
        "BENCH_S3_URL": endpoint.url,
        "BENCH_S3_KEY": endpoint.access_key_id,
        "BENCH_S3_SECRET": endpoint.secret_access_key,
    }
    command = [sys.executable, "-m", module, "--child", *arguments]
    completed = await asyncio.to_thread(
        subprocess.run, command, env=environment, capture_output=True, text=True, check=True
    )
    figures: dict[str, Any] = json.loads(completed.stdout.strip().splitlines()[-1])
    return figures


def endpoint_of_parent() -> S3Endpoint:
    """In a child started by :func:`run_child`: the parent's S3 server."""
    return S3Endpoint(
        os.environ["BENCH_S3_URL"], os.environ["BENCH_S3_KEY"], os.environ["BENCH_S3_SECRET"]
    )


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
            figures = await run_child("benchmarks.memory_peak", [url, repository.head], endpoint)
    over = figures["peak_rss"] - figures["rss_before_fetch"]
    return {
        "stack": "production",
        "blobs": blob_count,
        **figures,
        "peak_over_baseline": over,
        "budget_over_baseline": BUDGET_OVER_BASELINE,
        "within_budget": over <= BUDGET_OVER_BASELINE,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--stack", choices=["production", "memory"], default="production")
    parser.add_argument("--blobs", type=int, default=25_000)
    parser.add_argument("--blob-size", type=int, default=4096)
    parser.add_argument("--child", nargs=2, metavar=("INDEX_URL", "WANT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        endpoint = endpoint_of_parent()
        print(json.dumps(asyncio.run(child(args.child[0], endpoint, args.child[1]))))
        return
    if args.stack == "memory":
        figures = asyncio.run(in_process(args.blobs, args.blob_size))
        name = f"memory_peak_memory_{args.blobs}x{args.blob_size}"
    else:
        figures = asyncio.run(parent(args.blobs))
        name = "memory_peak"
    write_results(name, figures)
    print(
        f"fetch of {figures['blobs']:,} blobs on {figures['stack']}: peak RSS "
        f"{figures['peak_over_baseline'] / MiB:.0f} MiB above the "
        f"{figures['rss_before_fetch'] / MiB:.0f} MiB before the fetch, for a "
        f"{figures['fetch_mpack_bytes'] / MiB:.0f} MiB document; budget "
        f"{figures['budget_over_baseline'] / MiB:.0f} MiB above the baseline"
    )


if __name__ == "__main__":
    main()
