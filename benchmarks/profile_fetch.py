"""Where the CPU of one fresh fetch goes: phases, index lookups, garbage collection, profile.

    python -m benchmarks.profile_fetch --stack production --blobs 25000 [--repeat 5]

On one stack, for a synthetic repository of N blobs (4 KiB, zstd, 4 push
mpacks), each figure the median of ``--repeat`` fresh fetches (the document
always rebuilt, see AlwaysUpload):

- the phases of ``FetchResult.stats.timings`` (resolve, lookup, plan, read, upload);
- ``find_locations`` and ``find_cached`` of the needed blobs, called alone;
- the time the garbage collector ran during a fetch (``gc.callbacks``), and how
  many collections of each generation;
- the functions that took most of the time of one more fetch under cProfile;
- with ``--warm-heap N``: fetch time in a process holding N million live small
  objects (a long-lived hub's heap), with the collector as it is and after
  ``gc.freeze()``, alternating, side by side.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import gc
import io
import pstats
import statistics
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import attrs

from benchmarks.common import REPO, AlwaysUpload, ingest_repository, write_results
from benchmarks.stacks import STACKS, open_stack
from fetchcore import FetchResult, IndexRepo, ObjectStore, ids, serve_fetch
from fetchcore.observe import SILENT


@attrs.define
class GcClock:
    """Seconds the collector ran, and collections per generation, while installed."""

    seconds: float = 0.0
    collections: list[int] = attrs.field(factory=lambda: [0, 0, 0])
    _started: float = 0.0

    def __call__(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
        else:
            self.seconds += time.perf_counter() - self._started
            self.collections[info["generation"]] += 1

    @contextmanager
    def installed(self) -> Iterator[GcClock]:
        gc.callbacks.append(self)
        try:
            yield self
        finally:
            gc.callbacks.remove(self)


@attrs.frozen
class FetchRun:
    """One fresh fetch: its wall time, its phases and the collector's share."""

    seconds: float
    cpu_seconds: float
    """CPU time of the whole process (every thread): far steadier than wall time on a
    loaded machine, and what the CPU path changes."""
    phases: dict[str, float]
    gc_seconds: float
    gc_collections: list[int]


async def fresh_fetch(index: IndexRepo, store: ObjectStore, want: list[str]) -> FetchResult:
    return await serve_fetch(index, AlwaysUpload(store), repo_id=REPO, want=want, observer=SILENT)


async def measured_fetch(index: IndexRepo, store: ObjectStore, want: list[str]) -> FetchRun:
    with GcClock().installed() as clock:
        started, cpu_started = time.perf_counter(), time.process_time()
        result = await fresh_fetch(index, store, want)
        seconds, cpu_seconds = time.perf_counter() - started, time.process_time() - cpu_started
    phases = dict(result.stats.timings.as_dict())
    return FetchRun(seconds, cpu_seconds, phases, clock.seconds, clock.collections)


def _median_runs(runs: list[FetchRun]) -> dict[str, Any]:
    names = sorted({name for run in runs for name in run.phases})
    return {
        "fetch_s": statistics.median(run.seconds for run in runs),
        "cpu_s": statistics.median(run.cpu_seconds for run in runs),
        "phases_s": {n: statistics.median(r.phases.get(n, 0.0) for r in runs) for n in names},
        "gc_s": statistics.median(run.gc_seconds for run in runs),
        "gc_collections": [statistics.median(r.gc_collections[g] for r in runs) for g in range(3)],
        "runs_s": [run.seconds for run in runs],
    }


async def lookup_times(index: IndexRepo, needed: list[str], repeat: int) -> dict[str, float]:
    """Median seconds of find_locations and find_cached of the needed blobs, alone."""
    times: dict[str, list[float]] = {"find_locations_s": [], "find_cached_s": []}
    for _ in range(repeat):
        started = time.perf_counter()
        await index.find_locations(needed)
        times["find_locations_s"].append(time.perf_counter() - started)
        started = time.perf_counter()
        await index.find_cached(needed)
        times["find_cached_s"].append(time.perf_counter() - started)
    return {name: statistics.median(values) for name, values in times.items()}


@attrs.define
class ThreadProfiles:
    """A profile of every thread started while installed (the executor's worker among them)."""

    profiles: list[cProfile.Profile] = attrs.field(factory=list)

    def _start(self, *_: object) -> None:
        profile = cProfile.Profile()
        self.profiles.append(profile)
        profile.enable()  # replaces this hook in the new thread

    @contextmanager
    def installed(self) -> Iterator[ThreadProfiles]:
        threading.setprofile(self._start)
        try:
            yield self
        finally:
            threading.setprofile(None)


def _top(profiles: list[cProfile.Profile], title: str, top: int) -> str:
    out = io.StringIO()
    out.write(f"── {title} ──\n")
    if not profiles:
        return out.getvalue() + "(none)\n"
    for profile in profiles:
        profile.create_stats()
    stats = pstats.Stats(*profiles, stream=out)
    stats.sort_stats("tottime").print_stats(top)
    stats.sort_stats("cumulative").print_stats(top)
    return out.getvalue()


async def profiled_fetch(index: IndexRepo, store: ObjectStore, want: list[str], top: int) -> str:
    """The ``top`` functions by own time, then by cumulative time, of one fetch: on the
    event loop's thread, then on the threads it started (decoding and verifying)."""
    profile = cProfile.Profile()
    with ThreadProfiles().installed() as threads:
        profile.enable()
        await fresh_fetch(index, store, want)
        profile.disable()
    await asyncio.sleep(0.1)  # the worker thread ends once its gather is done
    loop_thread = _top([profile], "the event loop's thread", top)
    return loop_thread + _top(threads.profiles, "worker threads", top)


def warm_heap(millions: float) -> list[Any]:
    """Live small container objects, as a long-lived hub holds (modules, ORM rows, caches):
    each a tuple the collector tracks, holding a string."""
    return [(i, str(i)) for i in range(int(millions * 1_000_000))]


async def gc_freeze_times(
    index: IndexRepo, store: ObjectStore, want: list[str], repeat: int, millions: float
) -> dict[str, Any]:
    """Fetches over a warm heap, with the collector as it is and after gc.freeze(), alternating."""
    heap = warm_heap(millions)
    plain: list[FetchRun] = []
    frozen: list[FetchRun] = []
    for _ in range(repeat):
        gc.collect()
        plain.append(await measured_fetch(index, store, want))
        gc.freeze()
        frozen.append(await measured_fetch(index, store, want))
        gc.unfreeze()
    del heap
    return {
        "live_objects_millions": millions,
        "without_freeze": _median_runs(plain),
        "after_gc_freeze": _median_runs(frozen),
    }


async def measure(
    stack: str, blob_count: int, repeat: int, top: int, warm_millions: float
) -> tuple[dict[str, Any], str]:
    async with open_stack(stack) as (index, store):
        repository = await ingest_repository(index, store, blob_count=blob_count, legacy_keys=False)
        want = [repository.head]
        first = await fresh_fetch(index, store, want)  # warms connections and caches
        needed = sorted({ids.canonical(o) for push in repository.pushes for o in push.blobs})
        runs = [await measured_fetch(index, store, want) for _ in range(repeat)]
        figures: dict[str, Any] = {
            "stack": stack,
            "blobs": blob_count,
            "document_bytes": first.size_bytes,
            "fresh": _median_runs(runs),
            "lookups": await lookup_times(index, needed, repeat),
        }
        if warm_millions > 0:
            figures["gc_freeze"] = await gc_freeze_times(index, store, want, repeat, warm_millions)
        profile = await profiled_fetch(index, store, want, top)
    return figures, profile


def report(figures: dict[str, Any]) -> str:
    fresh = figures["fresh"]
    phases = ", ".join(f"{name} {s * 1e3:.0f}" for name, s in fresh["phases_s"].items())
    lookups = ", ".join(f"{n[:-2]} {s * 1e3:.0f} ms" for n, s in figures["lookups"].items())
    lines = [
        f"{figures['blobs']:,} blobs on {figures['stack']} (medians of {len(fresh['runs_s'])}):",
        f"  fresh fetch {fresh['fetch_s'] * 1e3:.0f} ms, {fresh['cpu_s'] * 1e3:.0f} ms of CPU "
        f"in this process; phases (ms): {phases}",
        f"  gc {fresh['gc_s'] * 1e3:.0f} ms per fetch, collections per generation "
        f"{fresh['gc_collections']}",
        f"  alone: {lookups}",
    ]
    if "gc_freeze" in figures:
        frozen = figures["gc_freeze"]
        plain, after = frozen["without_freeze"], frozen["after_gc_freeze"]
        lines.append(
            f"  over {frozen['live_objects_millions']}M live objects: "
            f"{plain['fetch_s'] * 1e3:.0f} ms, CPU {plain['cpu_s'] * 1e3:.0f} ms "
            f"(gc {plain['gc_s'] * 1e3:.0f} ms) without gc.freeze(); "
            f"{after['fetch_s'] * 1e3:.0f} ms, CPU {after['cpu_s'] * 1e3:.0f} ms "
            f"(gc {after['gc_s'] * 1e3:.0f} ms) after"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--stack", choices=sorted(STACKS), default="production")
    parser.add_argument("--blobs", type=int, default=25_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--top", type=int, default=25, help="functions listed by cProfile")
    parser.add_argument(
        "--warm-heap", type=float, default=0.0, help="millions of live objects (0: skip)"
    )
    parser.add_argument("--no-profile", action="store_true", help="do not print the profile")
    args = parser.parse_args()
    figures, profile = asyncio.run(
        measure(args.stack, args.blobs, args.repeat, args.top, args.warm_heap)
    )
    if not args.no_profile:
        print(profile)
    print(report(figures), flush=True)
    write_results(f"profile_fetch_{args.stack}", figures)


if __name__ == "__main__":
    main()
