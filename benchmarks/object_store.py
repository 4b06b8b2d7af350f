"""S3ObjectStore on a local SeaweedFS: request latency, large-read and streamed-upload throughput.

    python -m benchmarks.object_store [--samples 300] [--repeat 12] [--large-mib 50]

Starts its own SeaweedFS (loopback, temporary directory; stopped at the end)
and measures, side by side in one run:

- latency: one ranged GET (4 KiB out of the large mpack, random offsets) vs one
  GET of a small (4 KiB) mpack, interleaved. Target: about the same cost;
- throughput: ``get_mpack`` of a 50 MiB mpack through S3ObjectStore vs a bare
  aiobotocore ``get_object`` + ``read()`` of the same object, interleaved
  (alternating which goes first).
  Target: fetchcore >= 80% of the bare throughput;
- streamed upload: a fetch document of the large size written in 64 KiB chunks
  through ``open_fetch`` (parts go up while the writer writes) and committed
  with its seal, vs one bare aiobotocore ``put_object`` of the same bytes,
  interleaved. Target: fetchcore >= 80% of the bare throughput;
- ``fetch_intact`` (a HEAD and a GET of the seal) vs one small GET.

Writes benchmarks/results/object_store.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aiobotocore.config import AioConfig
from aiobotocore.session import get_session
from fetchcore.adapters.s3 import S3ObjectStore
from tests.seaweed import S3Endpoint, running_seaweed

from fetchcore.ids import content_id

if TYPE_CHECKING:
    from types_aiobotocore_s3 import S3Client

RESULTS = Path(__file__).parent / "results"
BUCKET = "fetchcore-bench"
SMALL_BYTES = 4096
MiB = 1024 * 1024
RATIO_TARGET = 0.8


async def latencies_ms(
    operations: Mapping[str, Callable[[], Awaitable[object]]], samples: int
) -> dict[str, list[float]]:
    """Time each operation ``samples`` times, interleaved so drift hits all alike."""
    timings: dict[str, list[float]] = {name: [] for name in operations}
    for _ in range(samples):
        for name, operation in operations.items():
            started = time.perf_counter()
            await operation()
            timings[name].append((time.perf_counter() - started) * 1000)
    return timings


def check(condition: bool, failure: str) -> None:
    """Stop the benchmark if a read came back wrong (timings of wrong reads mean nothing)."""
    if not condition:
        raise RuntimeError(failure)


def summary_ms(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    return {
        "median_ms": statistics.median(ordered),
        "p90_ms": ordered[int(len(ordered) * 0.9)],
        "mean_ms": statistics.fmean(ordered),
    }


def throughput(size: int, seconds: list[float]) -> dict[str, Any]:
    rates = [size / MiB / s for s in seconds]
    return {
        "median_mib_s": statistics.median(rates),
        "best_mib_s": max(rates),
        "runs_s": seconds,
    }


def bare_client(endpoint: S3Endpoint) -> Any:
    """A plain aiobotocore client: only what an S3-compatible server needs (SPEC §7)."""
    config = AioConfig(
        s3={"addressing_style": "path"},
        request_checksum_calculation="when_required",
        response_checksum_validation="when_required",
    )
    return get_session().create_client(
        "s3",
        endpoint_url=endpoint.url,
        region_name=endpoint.region,
        aws_access_key_id=endpoint.access_key_id,
        aws_secret_access_key=endpoint.secret_access_key,
        config=config,
    )


async def bare_get(client: S3Client, key: str) -> bytes:
    response = await client.get_object(Bucket=BUCKET, Key=key)
    async with response["Body"] as body:
        data: bytes = await body.read()
    return data


async def measure_latency(store: S3ObjectStore, large_id: str, samples: int) -> dict[str, Any]:
    small = os.urandom(SMALL_BYTES)
    small_id = content_id(small)
    await store.put_mpack(small_id, small)
    large_size = len(await store.get_mpack(large_id) or b"")
    rng = random.Random(0)

    async def ranged_get() -> None:
        start = rng.randrange(0, large_size - SMALL_BYTES)
        data = await store.get_mpack_range(large_id, start, start + SMALL_BYTES)
        check(data is not None and len(data) == SMALL_BYTES, "short ranged read")

    async def small_get() -> None:
        check(await store.get_mpack(small_id) == small, "small mpack read back wrong")

    operations = {"ranged_get": ranged_get, "small_get": small_get}
    await latencies_ms(operations, 20)  # warm the pool and the server
    timings = await latencies_ms(operations, samples)
    ranged, whole = summary_ms(timings["ranged_get"]), summary_ms(timings["small_get"])
    return {
        "samples": samples,
        "bytes_per_read": SMALL_BYTES,
        "ranged_get": ranged,
        "small_get": whole,
        "ranged_over_small_median": ranged["median_ms"] / whole["median_ms"],
    }


async def measure_throughput(
    store: S3ObjectStore, endpoint: S3Endpoint, large: bytes, repeat: int
) -> dict[str, Any]:
    large_id = content_id(large)
    key = store.prefix + "mpacks/" + large_id.removeprefix("sha256:")
    runs: dict[str, list[float]] = {"fetchcore": [], "bare": []}
    async with bare_client(endpoint) as client:
        reads: dict[str, Callable[[], Awaitable[bytes | None]]] = {
            "fetchcore": lambda: store.get_mpack(large_id),
            "bare": lambda: bare_get(client, key),
        }
        # Both read the same object (and warm up) before anything is timed.
        for name, read in reads.items():
            check(await read() == large, f"{name} read back wrong")
        for turn in range(repeat):
            # Alternate who goes first: the second read of a pair runs on a warmer heap.
            for name in sorted(reads, reverse=turn % 2 == 1):
                started = time.perf_counter()
                await reads[name]()
                runs[name].append(time.perf_counter() - started)
    fetchcore_runs, bare_runs = runs["fetchcore"], runs["bare"]
    ours, bare = throughput(len(large), fetchcore_runs), throughput(len(large), bare_runs)
    ratio = ours["median_mib_s"] / bare["median_mib_s"]
    return {
        "bytes": len(large),
        "repeat": repeat,
        "fetchcore_get_mpack": ours,
        "bare_aiobotocore_get": bare,
        "fetchcore_over_bare_median": ratio,
        "target": RATIO_TARGET,
        "target_met": ratio >= RATIO_TARGET,
    }


WRITE_CHUNK = 64 * 1024


async def streamed_upload(store: S3ObjectStore, fetch_id: str, document: bytes) -> None:
    upload = await store.open_fetch(fetch_id)
    view = memoryview(document)
    for start in range(0, len(document), WRITE_CHUNK):
        await upload.write(bytes(view[start : start + WRITE_CHUNK]))
    await upload.commit()


async def measure_streamed_upload(
    store: S3ObjectStore, endpoint: S3Endpoint, large: bytes, repeat: int
) -> dict[str, Any]:
    fetch_id = content_id(b"benchmark fetch document")
    bare_key = store.prefix + "bare-upload"
    runs: dict[str, list[float]] = {"fetchcore": [], "bare": []}
    async with bare_client(endpoint) as client:
        writes: dict[str, Callable[[], Awaitable[object]]] = {
            "fetchcore": lambda: streamed_upload(store, fetch_id, large),
            "bare": lambda: client.put_object(Bucket=BUCKET, Key=bare_key, Body=large),
        }
        for turn in range(repeat):
            for name in sorted(writes, reverse=turn % 2 == 1):
                started = time.perf_counter()
                await writes[name]()
                runs[name].append(time.perf_counter() - started)
        check(await store.fetch_intact(fetch_id) is True, "streamed document not intact")
        check(await store.get_fetch(fetch_id) == large, "streamed document read back wrong")
        small = os.urandom(SMALL_BYTES)
        small_id = content_id(small)
        await store.put_mpack(small_id, small)
        operations: dict[str, Callable[[], Awaitable[object]]] = {
            "fetch_intact": lambda: store.fetch_intact(fetch_id),
            "small_get": lambda: store.get_mpack(small_id),
        }
        timings = await latencies_ms(operations, 100)
    ours, bare = throughput(len(large), runs["fetchcore"]), throughput(len(large), runs["bare"])
    ratio = ours["median_mib_s"] / bare["median_mib_s"]
    return {
        "bytes": len(large),
        "chunk_bytes": WRITE_CHUNK,
        "repeat": repeat,
        "fetchcore_streamed_upload": ours,
        "bare_aiobotocore_put": bare,
        "fetchcore_over_bare_median": ratio,
        "target": RATIO_TARGET,
        "target_met": ratio >= RATIO_TARGET,
        "fetch_intact": summary_ms(timings["fetch_intact"]),
        "small_get": summary_ms(timings["small_get"]),
    }


async def run(endpoint: S3Endpoint, samples: int, repeat: int, large_mib: int) -> dict[str, Any]:
    large = os.urandom(large_mib * MiB)
    large_id = content_id(large)
    async with S3ObjectStore.connect(
        bucket=BUCKET,
        endpoint_url=endpoint.url,
        access_key_id=endpoint.access_key_id,
        secret_access_key=endpoint.secret_access_key,
        region=endpoint.region,
        create_bucket=True,
    ) as store:
        started = time.perf_counter()
        await store.put_mpack(large_id, large)
        put_s = time.perf_counter() - started
        latency = await measure_latency(store, large_id, samples)
        large_read = await measure_throughput(store, endpoint, large, repeat)
        upload = await measure_streamed_upload(store, endpoint, large, max(3, repeat // 2))
    large_read["multipart_put_s"] = put_s
    return {"latency": latency, "large_get": large_read, "streamed_upload": upload}


def write_results(results: dict[str, Any], path: Path) -> None:
    document = {
        "benchmark": "object_store",
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count() or 1},
        **results,
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document, indent=2) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=300, help="latency samples per kind")
    parser.add_argument("--repeat", type=int, default=12, help="large GETs per client")
    parser.add_argument("--large-mib", type=int, default=50, help="size of the large mpack")
    parser.add_argument("--output", type=Path, default=RESULTS / "object_store.json")
    arguments = parser.parse_args()
    with (
        tempfile.TemporaryDirectory(prefix="fetchcore-bench-") as work_dir,
        running_seaweed(Path(work_dir)) as server,
    ):
        results = asyncio.run(
            run(server.endpoint, arguments.samples, arguments.repeat, arguments.large_mib)
        )
        results["seaweedfs_startup_s"] = server.startup_s
    write_results(results, arguments.output)
    print(json.dumps(results, indent=2))
    print(f"written to {arguments.output}")


if __name__ == "__main__":
    main()
