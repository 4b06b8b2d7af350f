"""Shared pieces of the benchmarks: a synthetic repository, the baselines, timing, results.

Every benchmark measures fetchcore and its baselines side by side in one run,
on the same stack, so ratios hold even on a noisy shared machine.

Baselines (what a hub would do by hand, or the old hub did):
- ``fetchcore.adapters.baseline.per_object_fetch``: one ``get_object`` per blob
  (sequential, or N in flight), each verified, then the same encode + upload.
- ``raw_io_floor``: GET the covering mpacks' bytes and PUT the real fetch
  document (under another id) with the same client: the I/O no fetch can avoid.
"""

from __future__ import annotations

import asyncio
import json
import os
import platform
import statistics
import time
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import attrs
from fetchcore.adapters.baseline import write_object_keys
from fetchcore.adapters.wrapping import ObjectStoreWrapper

from fetchcore import IndexRepo, ObjectStore, ingest_push
from fetchcore.ids import content_id
from fetchcore.testing import SyntheticPush, synthetic_history

RESULTS = Path(__file__).parent / "results"
REPO = "bench/repo"


@attrs.frozen
class Repository:
    """A synthetic repository, ingested: its pushes and the commit a full fetch wants."""

    pushes: tuple[SyntheticPush, ...]

    @property
    def head(self) -> str:
        return self.pushes[-1].commit_id


async def ingest_repository(
    index: IndexRepo,
    store: ObjectStore,
    *,
    blob_count: int,
    pushes: int = 4,
    blob_size: int = 4096,
    legacy_keys: bool = True,
    seed: int = 0,
) -> Repository:
    """Ingest a synthetic history; with ``legacy_keys``, also write the old per-object keys."""
    history = synthetic_history(
        blob_count=blob_count, pushes=pushes, blob_size=blob_size, seed=seed
    )
    for push in history:
        await ingest_push(index, store, repo_id=REPO, mpack=push.data)
    if legacy_keys:
        for push in history:
            await write_object_keys(store, push.blobs)
    return Repository(tuple(history))


async def raw_io_floor(store: ObjectStore, mpack_ids: Sequence[str], document: bytes) -> int:
    """GET every covering mpack (concurrently) and PUT ``document`` as a fetch document
    (in parts of 8 MiB, as the stores upload them), the GETs and the PUT side by side."""

    async def put() -> None:
        upload = await store.open_fetch(content_id(document + b"floor"))
        view = memoryview(document)
        for start in range(0, len(document), 8 << 20):
            await upload.write(bytes(view[start : start + (8 << 20)]))
        await upload.commit()

    parts, _ = await asyncio.gather(asyncio.gather(*(store.get_mpack(m) for m in mpack_ids)), put())
    return sum(len(p or b"") for p in parts)


def covering_mpacks(repository: Repository) -> list[str]:
    return [content_id(push.data) for push in repository.pushes]


@attrs.frozen
class Timing:
    """Wall-clock seconds of repeated runs."""

    runs: tuple[float, ...]

    @property
    def best(self) -> float:
        return min(self.runs)

    @property
    def median(self) -> float:
        return statistics.median(self.runs)

    def as_json(self) -> dict[str, Any]:
        return {"best_s": self.best, "median_s": self.median, "runs_s": list(self.runs)}


async def timed(run: Callable[[], Awaitable[object]], repeat: int) -> Timing:
    """Time ``run`` ``repeat`` times."""
    runs = []
    for _ in range(repeat):
        started = time.perf_counter()
        await run()
        runs.append(time.perf_counter() - started)
    return Timing(tuple(runs))


async def timed_alternately(
    first: Callable[[], Awaitable[object]], second: Callable[[], Awaitable[object]], repeat: int
) -> tuple[Timing, Timing]:
    """Time ``first`` and ``second`` ``repeat`` times each, in turns, so that a drift
    in the machine's load weighs on both alike (for a ratio between them)."""
    runs: tuple[list[float], list[float]] = ([], [])
    for _ in range(repeat):
        for run, times in ((first, runs[0]), (second, runs[1])):
            started = time.perf_counter()
            await run()
            times.append(time.perf_counter() - started)
    return Timing(tuple(runs[0])), Timing(tuple(runs[1]))


def write_results(name: str, results: dict[str, Any]) -> Path:
    """Write ``results`` (plus the machine and date) to benchmarks/results/<name>.json."""
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"{name}.json"
    document = {
        "benchmark": name,
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count() or 1},
        **results,
    }
    path.write_text(json.dumps(document, indent=2) + "\n")
    return path


@attrs.define
class AlwaysUpload(ObjectStoreWrapper):
    """A store that never admits to holding a fetch document intact, so every fetch is
    built and uploaded (otherwise repeated runs would reuse the first one's document)."""

    async def fetch_intact(self, fetch_id: str) -> bool | None:
        return False


@attrs.define
class CountingReads(ObjectStoreWrapper):
    """Counts push-mpack reads (whole and ranged) that pass through it."""

    reads: int = 0

    async def get_mpack(self, mpack_id: str) -> bytes | None:
        self.reads += 1
        return await self.inner.get_mpack(mpack_id)

    async def get_mpack_range(self, mpack_id: str, start: int, end: int) -> bytes | None:
        self.reads += 1
        return await self.inner.get_mpack_range(mpack_id, start, end)
