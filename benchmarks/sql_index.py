"""The SQL index on PostgreSQL and SQLite: record, find_locations and resolve_commits.

    .venv/bin/python benchmarks/sql_index.py [--dialect both|postgres|sqlite]
        [--blobs 25000] [--commits 10000] [--repeat 5]

Measures, on each database, against the targets of issue 3:

- ``record`` of one push of 25,000 blobs (one commit, a snapshot listing every
  blob, a location per blob, a branch head), each run a new push: <= 1 s;
- ``find_locations`` for those 25,000 ids: <= 150 ms, and the number of SQL
  statements it sends, for 25, 2,500 and 25,000 ids (constant);
- ``resolve_commits`` of the tip of a 10,000-commit history (merges included)
  with no ``have`` (the whole history comes back): <= 0.5 s; and the same tip
  with a recent ``have`` (an incremental fetch), for comparison.

PostgreSQL is the server at ``FETCHCORE_PG_URL`` (default
``postgresql+asyncpg://postgres@127.0.0.1:5432/test``); the benchmark works in
a database of its own, dropped at the end. SQLite is a file in a temporary
directory. Targets are judged on the median run; each figure also says how much
of it CPython's garbage collector took (building 25,000 result objects triggers
full collections). Results go to ``benchmarks/results/sql_index.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import gc
import hashlib
import json
import os
import platform
import secrets
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import attrs
import sqlalchemy as sa
from fetchcore.adapters.sql import SqlIndexRepo, upgrade_schema

from fetchcore import Commit, IndexBatch, Location, Snapshot

RESULTS = Path(__file__).parent / "results" / "sql_index.json"
PG_URL_VARIABLE = "FETCHCORE_PG_URL"
DEFAULT_PG_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
REPO = "bench/repo"
TARGETS_S = {"record": 1.0, "find_locations": 0.150, "resolve_commits": 0.5}
LOOKUP_SIZES = (25, 2_500)
MERGE_EVERY = 25  # a side branch of a few commits is merged back this often


# ── synthetic data ───────────────────────────────────────────────────────────


def sha256_id(label: str) -> str:
    return "sha256:" + hashlib.sha256(label.encode()).hexdigest()


def object_ids_of(blob_count: int, seed: str) -> list[str]:
    return [sha256_id(f"blob {seed} {i}") for i in range(blob_count)]


def push_of(blob_count: int, seed: str) -> IndexBatch:
    """What ingest records for one push of ``blob_count`` 4 KiB zstd blobs."""
    mpack_id = sha256_id(f"mpack {seed}")
    mpack_size = blob_count * 2_100
    object_ids = object_ids_of(blob_count, seed)
    commit = Commit(sha256_id(f"commit {seed}"), sha256_id(f"snapshot {seed}"))
    manifest = {f"files/{i:07d}.dat": object_id for i, object_id in enumerate(object_ids)}
    snapshot_wire = {"snapshot_id": commit.snapshot_id, "manifest": manifest}
    return IndexBatch(
        commits=[commit],
        snapshots=[Snapshot(commit.snapshot_id, manifest, snapshot_wire)],
        locations=[
            (object_id, Location(mpack_id, 64 + i * 2_100, 2_048, "zstd", mpack_size))
            for i, object_id in enumerate(object_ids)
        ],
        branch_heads={"main": commit.commit_id},
    )


def history(commit_count: int) -> list[Commit]:
    """A main line with a short side branch merged back every ``MERGE_EVERY`` commits."""
    commits: list[Commit] = []
    tip: str | None = None
    while len(commits) < commit_count:
        number = len(commits)
        parents: tuple[str, ...] = () if tip is None else (tip,)
        room_for_a_merge = 4 <= number <= commit_count - 3
        if number % MERGE_EVERY == MERGE_EVERY - 1 and room_for_a_merge:
            side = _side_branch(commits[-4].commit_id, number)
            commits.extend(side)
            parents = (*parents, side[-1].commit_id)
        commit = Commit(sha256_id(f"c{number}"), sha256_id(f"s{number}"), parents, {"n": number})
        commits.append(commit)
        tip = commit.commit_id
    return commits


def _side_branch(fork: str, number: int) -> list[Commit]:
    first = Commit(sha256_id(f"side {number} a"), sha256_id("side"), (fork,))
    second = Commit(sha256_id(f"side {number} b"), sha256_id("side"), (first.commit_id,))
    return [first, second]


# ── measuring ────────────────────────────────────────────────────────────────


Run = tuple[float, float]
"""One timed run: wall-clock seconds, and the seconds of it spent collecting garbage."""


@attrs.define
class GarbageCollectorClock:
    """Adds up the time CPython's garbage collector runs (a ``gc.callbacks`` entry)."""

    total_s: float = 0.0
    _started: float = 0.0

    def __call__(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
        else:
            self.total_s += time.perf_counter() - self._started


GC_CLOCK = GarbageCollectorClock()


def summary(runs: list[Run], target: float) -> dict[str, Any]:
    walls = [wall for wall, _ in runs]
    median = statistics.median(walls)
    return {
        "median_s": round(median, 4),
        "best_s": round(min(walls), 4),
        "runs_s": [round(wall, 4) for wall in walls],
        "garbage_collection_median_s": round(statistics.median(g for _, g in runs), 4),
        "target_s": target,
        "met": median <= target,
    }


async def timed(run: Callable[[], Awaitable[object]]) -> Run:
    collecting_before = GC_CLOCK.total_s
    started = time.perf_counter()
    await run()
    return time.perf_counter() - started, GC_CLOCK.total_s - collecting_before


async def statement_count(index: SqlIndexRepo, run: Callable[[], Awaitable[object]]) -> int:
    with index.statements() as sent:
        await run()
    return len([statement for statement in sent if not statement.startswith("BEGIN")])


async def measure_record(index: SqlIndexRepo, blobs: int, repeat: int) -> dict[str, Any]:
    runs = []
    for n in range(repeat):
        push = push_of(blobs, f"push {n}")  # a new push each run: real inserts, no conflicts
        runs.append(await timed(functools.partial(index.record, REPO, push)))
    again, _ = await timed(functools.partial(index.record, REPO, push))
    statements = await statement_count(index, functools.partial(index.record, REPO, push))
    return {
        **summary(runs, TARGETS_S["record"]),
        "recording_the_same_push_again_s": round(again, 4),
        "statements": statements,
    }


async def measure_find_locations(index: SqlIndexRepo, blobs: int, repeat: int) -> dict[str, Any]:
    object_ids = object_ids_of(blobs, "push 0")
    found = await index.find_locations(object_ids)
    assert len(found) == blobs, f"found {len(found)} of {blobs} locations"
    runs = [await timed(lambda: index.find_locations(object_ids)) for _ in range(repeat)]
    statements = {
        str(size): await statement_count(
            index, functools.partial(index.find_locations, object_ids[:size])
        )
        for size in (*LOOKUP_SIZES, blobs)
    }
    return {**summary(runs, TARGETS_S["find_locations"]), "statements_by_id_count": statements}


async def measure_resolve(index: SqlIndexRepo, commit_count: int, repeat: int) -> dict[str, Any]:
    commits = history(commit_count)
    await index.record(REPO, IndexBatch(commits=commits))
    tip, recent = commits[-1].commit_id, commits[-10].commit_id
    resolved = await index.resolve_commits(REPO, [tip], [])
    assert len(resolved) == commit_count, f"resolved {len(resolved)} of {commit_count}"
    runs = [await timed(lambda: index.resolve_commits(REPO, [tip], [])) for _ in range(repeat)]
    incremental = [
        (await timed(lambda: index.resolve_commits(REPO, [tip], [recent])))[0]
        for _ in range(repeat)
    ]
    return {
        **summary(runs, TARGETS_S["resolve_commits"]),
        "commits": commit_count,
        "incremental_have_10_back_median_s": round(statistics.median(incremental), 4),
        "statements": await statement_count(index, lambda: index.resolve_commits(REPO, [tip], [])),
    }


async def measure(url: str, args: argparse.Namespace) -> dict[str, Any]:
    async with SqlIndexRepo.connect(url) as index:
        return {
            "record": await measure_record(index, args.blobs, args.repeat),
            "find_locations": await measure_find_locations(index, args.blobs, args.repeat),
            "resolve_commits": await measure_resolve(index, args.commits, args.repeat),
        }


# ── databases ────────────────────────────────────────────────────────────────


@asynccontextmanager
async def sqlite_database() -> AsyncIterator[str]:
    with tempfile.TemporaryDirectory(prefix="fetchcore-bench-") as directory:
        url = f"sqlite+aiosqlite:///{Path(directory) / 'index.db'}"
        await upgrade_schema(url)
        yield url


async def _admin(url: sa.URL, statement: str) -> None:
    dsn = url.set(drivername="postgresql").render_as_string(hide_password=False)
    connection = await asyncpg.connect(dsn, timeout=10)
    try:
        await connection.execute(statement)
    finally:
        await connection.close()


@asynccontextmanager
async def postgres_database() -> AsyncIterator[str]:
    server = sa.make_url(os.environ.get(PG_URL_VARIABLE, DEFAULT_PG_URL))
    name = f"fetchcore_bench_{os.getpid()}_{secrets.token_hex(4)}"
    await _admin(server, f'CREATE DATABASE "{name}"')
    try:
        url = server.set(database=name).render_as_string(hide_password=False)
        await upgrade_schema(url)
        yield url
    finally:
        await _admin(server, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


DATABASES = {"postgres": postgres_database, "sqlite": sqlite_database}


def report(name: str, figures: dict[str, Any]) -> None:
    for operation, result in figures.items():
        verdict = "ok" if result["met"] else "MISSED"
        print(
            f"{name:9} {operation:16} median {result['median_s'] * 1000:8.1f} ms"
            f" (garbage collection {result['garbage_collection_median_s'] * 1000:5.1f} ms)"
            f"  target {result['target_s'] * 1000:6.0f} ms: {verdict}"
        )
    counts = figures["find_locations"]["statements_by_id_count"]
    print(f"{name:9} find_locations statements by id count: {counts}")


async def main(args: argparse.Namespace) -> int:
    gc.callbacks.append(GC_CLOCK)
    chosen = list(DATABASES) if args.dialect == "both" else [args.dialect]
    results: dict[str, Any] = {}
    for name in chosen:
        async with DATABASES[name]() as url:
            results[name] = await measure(url, args)
        report(name, results[name])
    document = {
        "benchmark": "sql_index",
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count()},
        "parameters": {"blobs": args.blobs, "commits": args.commits, "repeat": args.repeat},
        "results": results,
    }
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(document, indent=2) + "\n")
    print(f"wrote {RESULTS}")
    met = all(result["met"] for figures in results.values() for result in figures.values())
    return 0 if met else 1


def parse_arguments(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dialect", choices=["both", *DATABASES], default="both")
    parser.add_argument("--blobs", type=int, default=25_000)
    parser.add_argument("--commits", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=5)
    return parser.parse_args(argv)


if __name__ == "__main__":
    sys.exit(asyncio.run(main(parse_arguments(sys.argv[1:]))))
