"""Staged pushes on a local SeaweedFS: a push streamed in pieces and committed, against a
plain multipart PUT of the same bytes plus one server-side copy.

    python -m benchmarks.staged_push [--push-mib 256] [--repeat 3]

Starts its own SeaweedFS (loopback, temporary directory; stopped at the end) and
measures, interleaved in one run (alternating who goes first):

- ``staged``: ``open_push``, the push written in 1 MiB chunks (parts go up while it
  is written), ``commit(mpack_id)``: complete, CopyObject to the mpack, delete the
  staging object. The mpack is deleted before each run (untimed), so the copy happens;
- ``staged_part_copy``: the same with ``single_copy_limit_bytes`` at 64 MiB, so the
  commit copies with UploadPartCopy;
- ``bare``: what the issue compares against: an aiobotocore multipart upload of the
  same bytes (same part size and parts in flight), then one CopyObject and a delete.
  Target: ``staged`` <= 1.3x ``bare`` (median);
- ``commit_intact``: a staged push whose mpack is already stored intact (the commit
  is a HEAD and an abort).

Writes benchmarks/results/staged_push.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fetchcore.adapters.s3 import S3ObjectStore, S3Tuning
from tests.seaweed import S3Endpoint

from benchmarks.object_store import bare_client, check
from benchmarks.stacks import s3_endpoint
from fetchcore.ids import content_id

if TYPE_CHECKING:
    from types_aiobotocore_s3 import S3Client
    from types_aiobotocore_s3.type_defs import CompletedPartTypeDef

RESULTS = Path(__file__).parent / "results"
BUCKET = "fetchcore-bench"
MiB = 1024 * 1024
WRITE_CHUNK = MiB
PART_COPY_LIMIT = 64 * MiB
RATIO_TARGET = 1.3


def connect(endpoint: S3Endpoint, prefix: str, **tuning: Any) -> Any:
    return S3ObjectStore.connect(
        bucket=BUCKET,
        endpoint_url=endpoint.url,
        access_key_id=endpoint.access_key_id,
        secret_access_key=endpoint.secret_access_key,
        region=endpoint.region,
        prefix=prefix,
        create_bucket=True,
        **tuning,
    )


async def staged_push(store: S3ObjectStore, push: bytes, mpack_id: str) -> float:
    """Stream ``push`` into a staged upload and commit it; returns the commit's seconds."""
    upload = await store.open_push()
    view = memoryview(push)
    for start in range(0, len(push), WRITE_CHUNK):
        await upload.write(bytes(view[start : start + WRITE_CHUNK]))
    started = time.perf_counter()
    await upload.commit(mpack_id)
    return time.perf_counter() - started


async def bare_multipart_and_copy(client: S3Client, push: bytes, tuning: S3Tuning) -> None:
    """A plain multipart PUT (same parts, same parallelism), one CopyObject, one delete."""
    source, target = "bare/staging", "bare/mpack"
    created = await client.create_multipart_upload(Bucket=BUCKET, Key=source)
    upload_id = created["UploadId"]
    slots = asyncio.Semaphore(tuning.multipart_concurrency)
    part_bytes = tuning.multipart_part_bytes

    async def send(number: int, start: int) -> CompletedPartTypeDef:
        async with slots:
            sent = await client.upload_part(
                Bucket=BUCKET,
                Key=source,
                UploadId=upload_id,
                PartNumber=number,
                Body=push[start : start + part_bytes],
            )
        return {"PartNumber": number, "ETag": sent["ETag"]}

    offsets = range(0, len(push), part_bytes)
    parts = await asyncio.gather(*(send(n, o) for n, o in enumerate(offsets, start=1)))
    await client.complete_multipart_upload(
        Bucket=BUCKET, Key=source, UploadId=upload_id, MultipartUpload={"Parts": list(parts)}
    )
    await client.copy_object(
        Bucket=BUCKET, Key=target, CopySource={"Bucket": BUCKET, "Key": source}
    )
    await client.delete_object(Bucket=BUCKET, Key=source)


def summary(seconds: list[float]) -> dict[str, Any]:
    return {"median_s": statistics.median(seconds), "best_s": min(seconds), "runs_s": seconds}


async def run(endpoint: S3Endpoint, push_mib: int, repeat: int) -> dict[str, Any]:
    push = os.urandom(push_mib * MiB)
    mpack_id = content_id(push)
    runs: dict[str, list[float]] = {"staged": [], "staged_part_copy": [], "bare": []}
    commits: dict[str, list[float]] = {"staged": [], "staged_part_copy": []}
    async with (
        connect(endpoint, "single/") as single,
        connect(endpoint, "parts/", single_copy_limit_bytes=PART_COPY_LIMIT) as parted,
        bare_client(endpoint) as client,
    ):
        stores = {"staged": single, "staged_part_copy": parted}

        async def staged(name: str) -> None:
            await stores[name].delete_mpack(mpack_id)  # untimed below: the copy must happen
            started = time.perf_counter()
            commit_s = await staged_push(stores[name], push, mpack_id)
            runs[name].append(time.perf_counter() - started)
            commits[name].append(commit_s)

        async def bare() -> None:
            started = time.perf_counter()
            await bare_multipart_and_copy(client, push, single.tuning)
            runs["bare"].append(time.perf_counter() - started)

        ways: dict[str, Callable[[], Awaitable[None]]] = {
            "staged": lambda: staged("staged"),
            "staged_part_copy": lambda: staged("staged_part_copy"),
            "bare": bare,
        }
        for turn in range(repeat):
            for name in sorted(ways, reverse=turn % 2 == 1):
                await ways[name]()
        for store in stores.values():
            check(await store.get_mpack(mpack_id) == push, "staged push read back wrong")
        intact = [await staged_push(single, push, mpack_id) for _ in range(repeat)]
    ratio = statistics.median(runs["staged"]) / statistics.median(runs["bare"])
    return {
        "push_bytes": len(push),
        "write_chunk_bytes": WRITE_CHUNK,
        "part_bytes": S3Tuning().multipart_part_bytes,
        "parts_in_flight": S3Tuning().multipart_concurrency,
        "repeat": repeat,
        "staged": {**summary(runs["staged"]), "commit": summary(commits["staged"])},
        "staged_part_copy": {
            **summary(runs["staged_part_copy"]),
            "commit": summary(commits["staged_part_copy"]),
            "single_copy_limit_bytes": PART_COPY_LIMIT,
        },
        "bare_multipart_put_and_copy": summary(runs["bare"]),
        "commit_when_intact": summary(intact),
        "staged_over_bare_median": ratio,
        "target": RATIO_TARGET,
        "target_met": ratio <= RATIO_TARGET,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--push-mib", type=int, default=256, help="size of the push")
    parser.add_argument("--repeat", type=int, default=3, help="runs of each way")
    parser.add_argument("--output", type=Path, default=RESULTS / "staged_push.json")
    arguments = parser.parse_args()
    with s3_endpoint() as endpoint:
        results = asyncio.run(run(endpoint, arguments.push_mib, arguments.repeat))
    document = {
        "benchmark": "staged_push",
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count() or 1},
        **results,
    }
    arguments.output.parent.mkdir(parents=True, exist_ok=True)
    arguments.output.write_text(json.dumps(document, indent=2) + "\n")
    print(json.dumps(document, indent=2))
    print(f"written to {arguments.output}")


if __name__ == "__main__":
    main()
