"""Streamed ingest: a push received in pieces, on PostgreSQL + S3 (SeaweedFS).

    python -m benchmarks.ingest_stream [--part large|small|both] [--repeat 2] [--small-repeat 5]

large: a 2 GiB push (512 blobs of 4 MiB, random content, zstd: each frame ~4 MiB),
written once to a temporary file and streamed from it in 1 MiB chunks. Interleaved
in one run (alternating who goes first):

- ``streamed_ingest``: ``ingest_push`` of the file's chunks, in a fresh child process
  that reports its peak RSS above its baseline (taken after it connected, peak
  reset there: see benchmarks/memory_peak.py). Target: <= 256 MiB with the default
  policy. The mpack is deleted before each run (untimed), so the server-side copy
  happens every time;
- ``bare``: a plain multipart PUT of the same bytes read from the same file (same part
  size and parts in flight), then one server-side copy (the store's: UploadPartCopy
  parts above ``S3Tuning.single_copy_limit_bytes``, as its commit) and a delete. Target: the
  streamed ingest's median <= 1.3x this one's.

small: the 25,000-blob push of benchmarks/ingest.py, ingested as ``bytes`` and
streamed in 1 MiB chunks (cut before the clock starts, as the bytes are ready before
it), on one stack (a new repository and a deleted mpack per
run), medians side by side. Target: streamed no slower than bytes (and <= 1 s).

Writes benchmarks/results/ingest_stream.json.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import random
import statistics
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

import msgpack
import zstandard
from fetchcore.adapters.s3 import S3ObjectStore, S3Tuning
from fetchcore.adapters.sql import SqlIndexRepo
from tests.seaweed import S3Endpoint

from benchmarks.common import write_results
from benchmarks.memory_peak import (
    endpoint_of_parent,
    peak_rss_bytes,
    release_and_reset_peak,
    rss_bytes,
    run_child,
)
from benchmarks.object_store import bare_client
from benchmarks.stacks import s3_endpoint, s3_store, scratch_postgres
from fetchcore import ingest_push
from fetchcore.ids import content_id
from fetchcore.testing import synthetic_history

if TYPE_CHECKING:
    from types_aiobotocore_s3 import S3Client
    from types_aiobotocore_s3.type_defs import CompletedPartTypeDef

BUCKET = "fetchcore-bench"
PREFIX = "ingest-stream/"
MiB = 1 << 20
CHUNK = MiB
BUDGET_OVER_BASELINE = 256 * MiB
RATIO_TARGET = 1.3


def connect(endpoint: S3Endpoint, *, create_bucket: bool = False) -> Any:
    return s3_store(endpoint, BUCKET, prefix=PREFIX, create_bucket=create_bucket)


# ── the 2 GiB push, on disk ──────────────────────────────────────────────────


def blob_content(index: int, size: int) -> bytes:
    return random.Random(index).randbytes(size)


def write_large_push(path: Path, blobs: int, blob_bytes: int) -> str:
    """Write the push to ``path`` (two passes over the blobs: ids first, since the
    manifest comes before them); returns its mpack id."""
    ids = [
        "sha256:" + hashlib.sha256(blob_content(i, blob_bytes)).hexdigest() for i in range(blobs)
    ]
    manifest = {f"stems/{i:04}.wav": object_id for i, object_id in enumerate(ids)}
    compressor = zstandard.ZstdCompressor(level=1)
    whole = hashlib.sha256()
    with path.open("wb") as file:

        def put(data: bytes) -> None:
            whole.update(data)
            file.write(data)

        put(b"\x84")
        put(msgpack.packb("commits") + msgpack.packb([{"commit_id": "c1", "snapshot_id": "s1"}]))
        put(msgpack.packb("snapshots"))
        put(msgpack.packb([{"snapshot_id": "s1", "manifest": manifest}]))
        put(msgpack.packb("blobs") + b"\xdd" + blobs.to_bytes(4, "big"))
        for i, object_id in enumerate(ids):
            frame = compressor.compress(blob_content(i, blob_bytes))
            entry = {"object_id": object_id, "encoding": "zstd", "content": frame}
            put(msgpack.packb(entry, use_bin_type=True))
        put(msgpack.packb("branch_heads") + msgpack.packb({"main": "c1"}))
    return "sha256:" + whole.hexdigest()


async def file_chunks(path: Path, chunk: int = CHUNK) -> AsyncIterator[bytes]:
    """The file in pieces, each read in a thread while the previous one is ingested."""
    file: BinaryIO = await asyncio.to_thread(path.open, "rb")
    try:
        reading = asyncio.ensure_future(asyncio.to_thread(file.read, chunk))
        while data := await reading:
            reading = asyncio.ensure_future(asyncio.to_thread(file.read, chunk))
            yield data
    finally:
        file.close()


# ── the child: one streamed ingest, its peak RSS ─────────────────────────────


async def child(path: Path, index_url: str, endpoint: S3Endpoint) -> dict[str, Any]:
    async with SqlIndexRepo.connect(index_url) as index, connect(endpoint) as store:
        await store.has_mpack(content_id(b""))  # the connection is open: part of the baseline
        release_and_reset_peak()
        before = rss_bytes()
        started = time.perf_counter()
        result = await ingest_push(index, store, repo_id="bench/stems", mpack=file_chunks(path))
        seconds = time.perf_counter() - started
        peak = peak_rss_bytes()
    return {
        "mpack_id": result.mpack_id,
        "seconds": seconds,
        "rss_before": before,
        "peak_rss": peak,
        "phases": {str(phase): spent for phase, spent in result.timings.phases},
    }


async def streamed_in_child(path: Path, index_url: str, endpoint: S3Endpoint) -> dict[str, Any]:
    return await run_child("benchmarks.ingest_stream", [str(path), index_url], endpoint)


# ── the floor: a plain multipart PUT of the file, one copy ───────────────────


async def bare_put_and_copy(client: S3Client, store: S3ObjectStore, path: Path, size: int) -> None:
    """Multipart PUT of the file (same parts, same parallelism, read from disk), one
    server-side copy (the store's own, as its commit makes it), one delete."""
    tuning = store.tuning
    source, target = f"{PREFIX}bare/staging", f"{PREFIX}bare/mpack"
    created = await client.create_multipart_upload(Bucket=BUCKET, Key=source)
    upload_id = created["UploadId"]
    slots = asyncio.Semaphore(tuning.multipart_concurrency)
    part_bytes = tuning.multipart_part_bytes

    def read(start: int) -> bytes:
        with path.open("rb") as file:
            file.seek(start)
            return file.read(part_bytes)

    async def send(number: int, start: int) -> CompletedPartTypeDef:
        async with slots:
            body = await asyncio.to_thread(read, start)
            sent = await client.upload_part(
                Bucket=BUCKET, Key=source, UploadId=upload_id, PartNumber=number, Body=body
            )
        return {"PartNumber": number, "ETag": sent["ETag"]}

    offsets = range(0, size, part_bytes)
    parts = await asyncio.gather(*(send(n, o) for n, o in enumerate(offsets, start=1)))
    await client.complete_multipart_upload(
        Bucket=BUCKET, Key=source, UploadId=upload_id, MultipartUpload={"Parts": list(parts)}
    )
    # The copy the store's commit makes: CopyObject up to single_copy_limit_bytes,
    # UploadPartCopy parts in parallel above.
    await store._copy(source, target, size, {})
    await client.delete_object(Bucket=BUCKET, Key=source)
    await client.delete_object(Bucket=BUCKET, Key=target)


def summary(seconds: list[float]) -> dict[str, Any]:
    return {"median_s": statistics.median(seconds), "best_s": min(seconds), "runs_s": seconds}


async def large(blobs: int, blob_bytes: int, repeat: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="fetchcore-bench-push-") as directory:
        path = Path(directory) / "push.mpack"
        mpack_id = await asyncio.to_thread(write_large_push, path, blobs, blob_bytes)
        size = path.stat().st_size
        with s3_endpoint() as endpoint:
            async with scratch_postgres() as url:
                async with SqlIndexRepo.connect(url, create_schema=True):
                    pass
                return await large_runs(endpoint, url, path, mpack_id, size, repeat, blobs)


async def large_runs(
    endpoint: S3Endpoint,
    url: str,
    path: Path,
    mpack_id: str,
    size: int,
    repeat: int,
    blobs: int,
) -> dict[str, Any]:
    children: list[dict[str, Any]] = []
    bare_runs: list[float] = []
    async with connect(endpoint, create_bucket=True) as store, bare_client(endpoint) as client:

        async def streamed() -> None:
            await store.delete_mpack(mpack_id)  # untimed: the copy must happen every run
            figures = await streamed_in_child(path, url, endpoint)
            if figures["mpack_id"] != mpack_id:
                raise SystemExit(f"streamed ingest stored {figures['mpack_id']}, not {mpack_id}")
            children.append(figures)

        async def bare() -> None:
            started = time.perf_counter()
            await bare_put_and_copy(client, store, path, size)
            bare_runs.append(time.perf_counter() - started)

        ways: dict[str, Callable[[], Awaitable[None]]] = {"streamed": streamed, "bare": bare}
        for turn in range(repeat):
            for name in sorted(ways, reverse=turn % 2 == 1):
                await ways[name]()
        if not await store.has_mpack(mpack_id):
            raise SystemExit("the streamed push is not stored")
    streamed_runs = [figures["seconds"] for figures in children]
    over = [figures["peak_rss"] - figures["rss_before"] for figures in children]
    ratio = statistics.median(streamed_runs) / statistics.median(bare_runs)
    return {
        "push_bytes": size,
        "blobs": blobs,
        "chunk_bytes": CHUNK,
        "part_bytes": S3Tuning().multipart_part_bytes,
        "parts_in_flight": S3Tuning().multipart_concurrency,
        "repeat": repeat,
        "streamed_ingest": {**summary(streamed_runs), "phases": [f["phases"] for f in children]},
        "bare_multipart_put_and_copy": summary(bare_runs),
        "streamed_over_bare_median": ratio,
        "time_target": RATIO_TARGET,
        "time_target_met": ratio <= RATIO_TARGET,
        "peak_rss_over_baseline": max(over),
        "peak_rss_over_baseline_runs": over,
        "rss_baseline": [figures["rss_before"] for figures in children],
        "memory_budget": BUDGET_OVER_BASELINE,
        "memory_target_met": max(over) <= BUDGET_OVER_BASELINE,
    }


# ── the 25,000-blob push: bytes against streamed ─────────────────────────────


def cut(data: bytes, size: int = CHUNK) -> list[bytes]:
    """``data`` in chunks of ``size``, made before the clock starts: the bytes path's
    push is ready in memory too, so neither way is timed making its input."""
    view = memoryview(data)
    return [bytes(view[start : start + size]) for start in range(0, len(data), size)]


async def arriving(chunks: list[bytes]) -> AsyncIterator[bytes]:
    """The chunks as a request body hands them over."""
    for chunk in chunks:
        yield chunk


async def small(blob_count: int, repeat: int) -> dict[str, Any]:
    (push,) = synthetic_history(blob_count=blob_count, pushes=1, seed=7)
    mpack_id = content_id(push.data)
    chunks = cut(push.data)
    runs: dict[str, list[float]] = {"bytes": [], "streamed": []}
    with s3_endpoint() as endpoint:
        async with (
            scratch_postgres() as url,
            SqlIndexRepo.connect(url, create_schema=True) as index,
            connect(endpoint, create_bucket=True) as store,
        ):
            await store.put_mpack(content_id(os.urandom(MiB)), os.urandom(MiB))  # warm up

            async def ingest(name: str, run: int) -> None:
                await store.delete_mpack(mpack_id)
                mpack = push.data if name == "bytes" else arriving(chunks)
                started = time.perf_counter()
                await ingest_push(index, store, repo_id=f"bench/{name}-{run}", mpack=mpack)
                runs[name].append(time.perf_counter() - started)

            for turn in range(repeat):
                for name in sorted(runs, reverse=turn % 2 == 1):
                    await ingest(name, turn)
    ratio = statistics.median(runs["streamed"]) / statistics.median(runs["bytes"])
    return {
        "blobs": blob_count,
        "push_bytes": len(push.data),
        "chunk_bytes": CHUNK,
        "repeat": repeat,
        "bytes": summary(runs["bytes"]),
        "streamed": summary(runs["streamed"]),
        "streamed_over_bytes_median": ratio,
        "target_met": ratio <= 1.0,
        "under_one_second": statistics.median(runs["streamed"]) <= 1.0,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--part", choices=["large", "small", "both"], default="both")
    parser.add_argument("--blobs", type=int, default=512, help="blobs of the large push")
    parser.add_argument("--blob-mib", type=int, default=4, help="MiB per blob of the large push")
    parser.add_argument("--repeat", type=int, default=2, help="runs of each way, large push")
    parser.add_argument("--small-blobs", type=int, default=25_000)
    parser.add_argument("--small-repeat", type=int, default=5)
    parser.add_argument("--child", nargs=2, metavar=("FILE", "INDEX_URL"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        endpoint = endpoint_of_parent()
        print(json.dumps(asyncio.run(child(Path(args.child[0]), args.child[1], endpoint))))
        return
    figures: dict[str, Any] = {"load_average_before": os.getloadavg()}
    if args.part in ("small", "both"):
        figures["small"] = asyncio.run(small(args.small_blobs, args.small_repeat))
        print(json.dumps(figures["small"], indent=2))
    if args.part in ("large", "both"):
        figures["large"] = asyncio.run(large(args.blobs, args.blob_mib * MiB, args.repeat))
        print(json.dumps(figures["large"], indent=2))
    figures["load_average_after"] = os.getloadavg()
    path = write_results("ingest_stream", figures)
    print(f"written to {path}")


if __name__ == "__main__":
    main()
