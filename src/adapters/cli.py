"""The ``fetchcore`` command: ingest, fetch, plan, inspect and tidy, over any index and store.

A driving adapter: it parses arguments, opens the index and the store named by
``--index`` / ``--store`` (or ``FETCHCORE_INDEX`` / ``FETCHCORE_STORE``, else the
embedded default: a SQLite file and a directory under ``./.fetchcore/``), calls
the library, and turns its answers into text or JSON and exit codes:

    0 done · 1 anything else failed · 2 usage · 3 not indexed yet (retry later)
    4 unknown commit

Results go to stdout; progress (for steps over a second) and errors, one line
each, go to stderr. No password is printed: URLs are shown masked.

With ``--json`` a command prints one JSON object on stdout instead of text. Its
keys are stable (new keys may be added, none renamed or removed):

- ``ingest``: repo, mpack_id, uploaded, bytes, commit_count, snapshot_count,
  blob_count, commit_ids (list), branch_heads (branch -> commit id)
- ``fetch``: repo, mpack_id, mpack_url (null if the store cannot presign),
  commit_count, snapshot_count, blob_count, size_bytes, uploaded, seconds,
  out (null unless --out), stats {requests, mpack_gets, range_gets,
  object_gets, bytes_read, cache_hits, retries, failed_sources}
- ``plan``: repo, commit_count, snapshot_count, blob_count, cached_blobs,
  cached_bytes, legacy_blobs, not_indexed_blobs, request_count,
  reads [{mpack_id, blobs, whole, reason, bytes_to_read, ranges [[start, end]]}]
- ``log``: repo, commits [{commit_id, snapshot_id, parent_ids, branches}], newest first
- ``heads``: repo, branch_heads (branch -> commit id)
- ``migrate``: index (masked), revision
- ``delete-repo``: repo, commits, snapshots, branch_heads, objects, released_objects
- ``orphans``: min_age_s, deleted (bool), mpacks [{mpack_id, size, stored_at (ISO 8601)}]
- ``sweep-staging``: store (masked), min_age_s, removed
- ``demo``: index, store (masked), blob_count, pushes, fetch_reused,
  rows [{method, requests, bytes_read, seconds}], keys_seconds
- any command that fails: error {type, message, exit_code}
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import sys
import time
from collections.abc import (
    AsyncGenerator,
    AsyncIterator,
    Awaitable,
    Callable,
    Coroutine,
    Iterator,
    Sequence,
)
from contextlib import aclosing, asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any, TextIO, TypeVar

import attrs
from fetchcore.adapters.baseline import per_object_fetch, write_object_keys
from fetchcore.adapters.filesystem import FilesystemObjectStore
from fetchcore.adapters.urls import check_index_url, masked, parse_s3_url, scrubbed

from fetchcore import (
    FetchError,
    FetchNotIndexedError,
    FetchPreview,
    FetchResult,
    IndexRepo,
    InvalidRequestError,
    MPackRead,
    ObjectStore,
    Policy,
    UnknownCommitError,
    __version__,
    ingest_push,
    preview_fetch,
    serve_fetch,
)
from fetchcore.lifecycle import (
    DEFAULT_MIN_AGE_S,
    DEFAULT_STAGING_AGE_S,
    IndexLifecycle,
    StoreLifecycle,
    delete_orphan_mpacks,
    delete_repository,
    find_orphan_mpacks,
    sweep_staging,
)
from fetchcore.observe import Progress as BlobProgress
from fetchcore.observe import ProgressCallback, Timings
from fetchcore.testing import SyntheticPush, synthetic_history

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_NOT_INDEXED, EXIT_UNKNOWN_COMMIT = 0, 1, 2, 3, 4
# What a base install (no extras) lacks: the module that failed to import -> its extra.
EXTRA_OF_MODULE = {
    "sqlalchemy": "sql",
    "asyncpg": "sql",
    "aiosqlite": "sql",
    "alembic": "sql",
    "aiobotocore": "s3",
    "botocore": "s3",
    "aiohttp": "s3",
    "rich": "cli",
}
HOME = Path(".fetchcore")
PROGRESS_AFTER_S = 1.0
DEMO_REPO = "demo/synthetic"
T = TypeVar("T")

ENVIRONMENT = """environment variables read:
  FETCHCORE_INDEX          the index URL when --index is not given
  FETCHCORE_STORE          the store URL when --store is not given
  FETCHCORE_S3_ACCESS_KEY  S3 credentials; without them botocore's usual lookup
  FETCHCORE_S3_SECRET_KEY  (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_PROFILE, ~/.aws)

exit codes: 0 done, 1 failed, 2 usage, 3 not indexed yet (retry later), 4 unknown commit"""


# ── opening the index and the store ──────────────────────────────────────────


def default_index_url(home: Path = HOME) -> str:
    return f"sqlite+aiosqlite:///{home / 'index.sqlite'}"


def default_store_url(home: Path = HOME) -> str:
    return f"file://{home / 'store'}"


@asynccontextmanager
async def open_index(url: str, *, create_schema: bool = False) -> AsyncIterator[IndexRepo]:
    """The index at ``url``; SQLite files get their tables created on first use.

    Args:
        create_schema: run the migrations first on any database (SQLite always does).
    """
    from fetchcore.adapters.sql import (
        SqlIndexRepo,  # imported on use: the driver is not needed before
    )

    create_schema = create_schema or url.startswith("sqlite")
    async with SqlIndexRepo.connect(url, create_schema=create_schema) as index:
        yield index


@asynccontextmanager
async def open_store(url: str, *, create_bucket: bool = False) -> AsyncIterator[ObjectStore]:
    """The store at ``file://PATH`` or ``s3://BUCKET/PREFIX?endpoint=…&region=…``.

    S3 credentials come from FETCHCORE_S3_ACCESS_KEY / FETCHCORE_S3_SECRET_KEY,
    else botocore's usual lookup (AWS_ACCESS_KEY_ID, ~/.aws, …).

    Raises:
        InvalidRequestError: the URL names no store fetchcore knows, carries an
            unknown parameter, or an endpoint without a scheme.
    """
    if url.startswith("file://"):
        yield FilesystemObjectStore(Path(url.removeprefix("file://")))
        return
    location = parse_s3_url(url)
    from fetchcore.adapters.s3 import (
        S3ObjectStore,  # imported on use: aiobotocore is slow to import
    )

    async with S3ObjectStore.connect(
        bucket=location.bucket,
        prefix=location.prefix,
        endpoint_url=location.endpoint,
        region=location.region,
        access_key_id=os.environ.get("FETCHCORE_S3_ACCESS_KEY"),
        secret_access_key=os.environ.get("FETCHCORE_S3_SECRET_KEY"),
        create_bucket=create_bucket,
    ) as store:
        yield store


def _make_local_directories(index_url: str, store_url: str) -> None:
    """Create the directories an embedded index file and a file store live in."""
    if index_url.startswith("sqlite") and ":///" in index_url:
        database = index_url.split(":///", 1)[1]
        if database:
            Path(database).parent.mkdir(parents=True, exist_ok=True)
    if store_url.startswith("file://"):
        Path(store_url.removeprefix("file://")).mkdir(parents=True, exist_ok=True)


@asynccontextmanager
async def open_stack(
    args: argparse.Namespace, *, provision: bool = False
) -> AsyncIterator[tuple[IndexRepo, ObjectStore]]:
    """The index and the store the command line names.

    Args:
        provision: also create the schema (any database) and the S3 bucket.
    """
    may_create = args.create or provision or args.index == default_index_url()
    check_index_url(args.index, create=may_create)
    _make_local_directories(args.index, args.store)
    async with (
        open_index(args.index, create_schema=provision) as index,
        open_store(args.store, create_bucket=provision) as store,
    ):
        yield index, store


def lifecycle_of(index: object, store: object) -> tuple[IndexLifecycle, StoreLifecycle]:
    """The lifecycle ports of an index and a store, which every shipped adapter has."""
    if not isinstance(index, IndexLifecycle) or not isinstance(store, StoreLifecycle):
        raise InvalidRequestError("this index or store cannot delete repositories or mpacks")
    return index, store


# ── output ───────────────────────────────────────────────────────────────────


@attrs.frozen
class Output:
    """What a command says: the same facts as a JSON object and as lines of text."""

    data: dict[str, Any]
    lines: list[str]


def megabytes(count: int) -> str:
    return f"{count / 1e6:,.1f} MB"


@attrs.define
class Progress:
    """Announces a step on stderr once it has run for a second, and its end."""

    stream: TextIO = sys.stderr

    @contextmanager
    def step(self, what: str) -> Iterator[None]:
        started = time.perf_counter()
        loop = asyncio.get_running_loop()
        announced = loop.call_later(PROGRESS_AFTER_S, self._say, f"{what}…")
        try:
            yield
        finally:
            announced.cancel()
            took = time.perf_counter() - started
            if took >= PROGRESS_AFTER_S:
                self._say(f"{what}: done in {took:.1f} s")

    def _say(self, line: str) -> None:
        print(line, file=self.stream, flush=True)


@contextmanager
def progress_bar(progress: Progress, what: str, label: str) -> Iterator[ProgressCallback | None]:
    """A rich progress bar labelled ``label`` on a terminal; piped, ``None`` and the
    step ``what`` announced as usual (a line printed under a live bar would break it)."""
    try:
        from fetchcore.adapters.progress import terminal_progress  # rich: the cli extra
    except ModuleNotFoundError:  # installed without the cli extra: no bars, the steps as ever
        with progress.step(what):
            yield None
        return
    with terminal_progress(label) as bar:
        if bar is not None:
            yield bar
            return
        with progress.step(what):
            yield None


def timings_data(timings: Timings) -> dict[str, float]:
    """Seconds per phase and the total, rounded, for ``--json``."""
    seconds = {phase: round(spent, 6) for phase, spent in timings.phases}
    return {**seconds, "total": round(timings.total_s, 6)}


async def timed(call: Awaitable[T]) -> tuple[T, float]:
    started = time.perf_counter()
    result = await call
    return result, time.perf_counter() - started


# ── ingest and fetch ─────────────────────────────────────────────────────────


INGEST_CHUNK_BYTES = 4 * 1024 * 1024
"""The CLI reads a push from disk in pieces of this size."""


async def file_chunks(
    path: Path, on_read: Callable[[int], None], chunk_bytes: int = INGEST_CHUNK_BYTES
) -> AsyncGenerator[bytes, None]:
    """The bytes of ``path`` in pieces, each read in a worker thread while the previous
    one is ingested; ``on_read`` hears how many bytes were read so far."""
    with await asyncio.to_thread(path.open, "rb") as file:
        done = 0
        reading = asyncio.ensure_future(asyncio.to_thread(file.read, chunk_bytes))
        try:
            while chunk := await reading:
                reading = asyncio.ensure_future(asyncio.to_thread(file.read, chunk_bytes))
                done += len(chunk)
                on_read(done)
                yield chunk
        finally:
            reading.cancel()
            await asyncio.gather(reading, return_exceptions=True)


def readable_size(path: Path) -> int:
    """The size of ``path``, which must be a file this process can read (else OSError)."""
    with path.open("rb") as file:
        return os.fstat(file.fileno()).st_size


async def command_ingest(args: argparse.Namespace, progress: Progress) -> Output:
    path = Path(args.file)
    try:
        size = await asyncio.to_thread(readable_size, path)
    except OSError as error:
        raise InvalidRequestError(f"cannot read {args.file}: {error.strerror}") from error
    policy = Policy(cache_max_bytes=args.cache_max_bytes)
    async with open_stack(args) as (index, store):
        with progress_bar(progress, f"ingesting {args.file}", "ingest") as bar:

            def read(done: int) -> None:
                if bar is not None:
                    bar(BlobProgress(0, 0, done, size))

            async with aclosing(file_chunks(path, read, INGEST_CHUNK_BYTES)) as chunks:
                result = await ingest_push(
                    index, store, repo_id=args.repo, mpack=chunks, policy=policy
                )
    commit_ids = list(result.commit_ids)
    heads = dict(result.branch_heads)
    lines = [
        f"ingested {result.mpack_id} into {args.repo}",
        f"  {result.commit_count:,} commit(s), {result.snapshot_count:,} snapshot(s), "
        f"{result.blob_count:,} blob(s), {megabytes(result.size_bytes)}",
        *(f"commit  {commit_id}" for commit_id in commit_ids),
        *(f"head    {branch} -> {commit_id}" for branch, commit_id in sorted(heads.items())),
    ]
    data_out = {
        "repo": args.repo,
        "mpack_id": result.mpack_id,
        "uploaded": result.uploaded,
        "bytes": result.size_bytes,
        "commit_count": result.commit_count,
        "snapshot_count": result.snapshot_count,
        "blob_count": result.blob_count,
        "commit_ids": commit_ids,
        "branch_heads": heads,
        "timings": timings_data(result.timings),
    }
    return Output(data_out, lines)


def fetch_data(args: argparse.Namespace, result: FetchResult, took: float) -> dict[str, Any]:
    stats = result.stats
    return {
        "repo": args.repo,
        "mpack_id": result.mpack_id,
        "mpack_url": result.mpack_url,
        "commit_count": result.commit_count,
        "snapshot_count": result.snapshot_count,
        "blob_count": result.blob_count,
        "size_bytes": result.size_bytes,
        "uploaded": result.uploaded,
        "seconds": round(took, 6),
        "out": args.out,
        "stats": {
            "requests": stats.requests,
            "mpack_gets": stats.mpack_gets,
            "range_gets": stats.range_gets,
            "object_gets": stats.object_gets,
            "bytes_read": stats.bytes_read,
            "cache_hits": stats.cache_hits,
            "retries": stats.retries,
            "failed_sources": stats.failed_sources,
            "timings": timings_data(stats.timings),
        },
    }


def fetch_lines(result: FetchResult, took: float, out: str | None) -> list[str]:
    stats = result.stats
    lines = [
        f"fetch mpack  {result.mpack_id}",
        f"url          {result.mpack_url or '(this store cannot presign)'}",
        f"sent         {result.commit_count:,} commit(s), {result.snapshot_count:,} snapshot(s), "
        f"{result.blob_count:,} blob(s), {megabytes(result.size_bytes)}",
        f"read         {stats.requests:,} request(s) ({stats.mpack_gets} whole, "
        f"{stats.range_gets} ranged, {stats.object_gets} per-object), "
        f"{megabytes(stats.bytes_read)}, {stats.cache_hits:,} cache hit(s), in {took:.2f} s",
    ]
    return lines + ([f"written to   {out}"] if out else [])


async def command_fetch(args: argparse.Namespace, progress: Progress) -> Output:
    encodings = ("identity", "zstd") if args.accept_zstd else ("identity",)
    async with open_stack(args) as (index, store):
        with progress_bar(progress, "serving the fetch", "fetch") as bar:
            result, took = await timed(
                serve_fetch(
                    index,
                    store,
                    repo_id=args.repo,
                    want=args.want,
                    have=args.have,
                    accept_encodings=encodings,
                    progress=bar,
                )
            )
        if args.out:
            data = await store.get_fetch(result.mpack_id)
            await asyncio.to_thread(Path(args.out).write_bytes, data or b"")
    return Output(fetch_data(args, result, took), fetch_lines(result, took, args.out))


# ── plan ─────────────────────────────────────────────────────────────────────


def describe_read(read: MPackRead) -> list[str]:
    lines = [f"  {read.mpack_id}  {len(read.blobs):,} blob(s): {read.reason}"]
    if read.ranges:
        shown = ", ".join(f"[{start:,}, {end:,})" for start, end in read.ranges[:8])
        more = f" and {len(read.ranges) - 8} more" if len(read.ranges) > 8 else ""
        lines.append(f"      ranges {shown}{more}")
    return lines


def describe_plan(preview: FetchPreview) -> list[str]:
    """The plan for a person: per source, blobs and bytes; per mpack, how and why."""
    plan = preview.plan
    to_read = sum(read.bytes_to_read or 0 for read in plan.reads)
    lines = [
        f"sends {preview.commit_count:,} commit(s), {preview.snapshot_count:,} snapshot(s), "
        f"{preview.blob_count:,} blob(s)",
        f"  content cache  {len(plan.cached):>9,} blob(s)  {megabytes(preview.cached_bytes)}, "
        "no request",
        f"  push mpacks    {sum(len(r.blobs) for r in plan.reads):>9,} blob(s)  "
        f"{len(plan.reads)} mpack(s), {plan.request_count - len(plan.legacy):,} request(s), "
        f"{megabytes(to_read)} to read",
        f"  legacy keys    {len(plan.legacy):>9,} blob(s)  one request each",
    ]
    if plan.unresolved:
        lines.append(f"  NOT INDEXED    {len(plan.unresolved):>9,} blob(s)  the fetch would fail")
    for read in plan.reads:
        lines += describe_read(read)
    return lines


def plan_data(repo: str, preview: FetchPreview) -> dict[str, Any]:
    plan = preview.plan
    reads = [
        {
            "mpack_id": read.mpack_id,
            "blobs": len(read.blobs),
            "whole": read.whole,
            "reason": read.reason,
            "bytes_to_read": read.bytes_to_read,
            "ranges": [list(span) for span in read.ranges or ()],
        }
        for read in plan.reads
    ]
    return {
        "repo": repo,
        "commit_count": preview.commit_count,
        "snapshot_count": preview.snapshot_count,
        "blob_count": preview.blob_count,
        "cached_blobs": len(plan.cached),
        "cached_bytes": preview.cached_bytes,
        "legacy_blobs": len(plan.legacy),
        "not_indexed_blobs": len(plan.unresolved),
        "request_count": plan.request_count,
        "reads": reads,
    }


async def command_plan(args: argparse.Namespace, progress: Progress) -> Output:
    async with open_stack(args) as (index, _):
        with progress.step("planning"):
            preview = await preview_fetch(index, repo_id=args.repo, want=args.want, have=args.have)
    return Output(plan_data(args.repo, preview), describe_plan(preview))


# ── inspecting a repository ──────────────────────────────────────────────────


async def command_log(args: argparse.Namespace, progress: Progress) -> Output:
    async with open_stack(args) as (index, _):
        heads = dict(await index.branch_heads(args.repo))
        commits = (
            await index.resolve_commits(args.repo, list(set(heads.values())), ()) if heads else []
        )
    branches_at: dict[str, list[str]] = {}
    for branch, commit_id in sorted(heads.items()):
        branches_at.setdefault(commit_id, []).append(branch)
    newest_first = [
        {
            "commit_id": commit.commit_id,
            "snapshot_id": commit.snapshot_id,
            "parent_ids": list(commit.parent_ids),
            "branches": branches_at.get(commit.commit_id, []),
        }
        for commit in reversed(commits)  # resolve_commits answers parents first
    ]
    lines = [_log_line(entry) for entry in newest_first] or [f"{args.repo} has no commits"]
    return Output({"repo": args.repo, "commits": newest_first}, lines)


def _log_line(entry: dict[str, Any]) -> str:
    branches = f"  ({', '.join(entry['branches'])})" if entry["branches"] else ""
    parents = ", ".join(entry["parent_ids"]) or "none"
    return f"{entry['commit_id']}  parents: {parents}{branches}"


async def command_heads(args: argparse.Namespace, progress: Progress) -> Output:
    async with open_stack(args) as (index, _):
        heads = dict(sorted((await index.branch_heads(args.repo)).items()))
    width = max((len(branch) for branch in heads), default=0)
    lines = [f"{branch:{width}}  {commit_id}" for branch, commit_id in heads.items()]
    return Output(
        {"repo": args.repo, "branch_heads": heads}, lines or [f"{args.repo} has no branches"]
    )


# ── operations ───────────────────────────────────────────────────────────────


async def command_migrate(args: argparse.Namespace, progress: Progress) -> Output:
    from fetchcore.adapters.sql.migrate import head_revision, upgrade_schema

    check_index_url(args.url, create=args.create)
    _make_local_directories(args.url, "")
    with progress.step(f"migrating {masked(args.url)}"):
        await upgrade_schema(args.url)
    revision = head_revision()
    shown = masked(args.url)
    return Output({"index": shown, "revision": revision}, [f"{shown} is at revision {revision}"])


async def command_delete_repo(args: argparse.Namespace, progress: Progress) -> Output:
    async with open_stack(args) as (index, store):
        deleted = await delete_repository(lifecycle_of(index, store)[0], args.repo)
    lines = [
        f"deleted {deleted.repo_id}: {deleted.commits:,} commit(s), {deleted.snapshots:,} "
        f"snapshot(s), {deleted.branch_heads:,} branch head(s), membership of "
        f"{deleted.objects:,} object(s) ({deleted.released_objects:,} no longer in any repository)",
        "its push mpacks stay in the store until `fetchcore orphans --delete` finds them unused",
    ]
    counts = attrs.asdict(deleted, filter=lambda field, _: field.name != "repo_id")
    return Output({"repo": deleted.repo_id, **counts}, lines)


async def command_orphans(args: argparse.Namespace, progress: Progress) -> Output:
    sweep = delete_orphan_mpacks if args.delete else find_orphan_mpacks
    async with open_stack(args) as (index, store):
        with progress.step("looking for push mpacks no repository references"):
            found = await sweep(*lifecycle_of(index, store), min_age_s=args.min_age)
    mpacks = [
        {"mpack_id": o.mpack_id, "size": o.size, "stored_at": o.stored_at.isoformat()}
        for o in found
    ]
    verb = "deleted" if args.delete else "unreferenced (dry run: pass --delete to delete them)"
    lines = [
        f"{o.mpack_id}  {megabytes(o.size)}  stored {o.stored_at:%Y-%m-%d %H:%M:%S}" for o in found
    ]
    total = megabytes(sum(o.size for o in found))
    lines.append(f"{len(found):,} push mpack(s), {total}, {verb}")
    return Output({"min_age_s": args.min_age, "deleted": args.delete, "mpacks": mpacks}, lines)


async def command_sweep_staging(args: argparse.Namespace, progress: Progress) -> Output:
    shown = masked(args.store)
    async with open_store(args.store) as store:
        with progress.step(f"sweeping what crashed ingests staged in {shown}"):
            removed = await sweep_staging(store, min_age_s=args.min_age)
    line = (
        f"{removed:,} staged push(es) or incomplete upload(s) removed from {shown} "
        f"(begun at least {args.min_age:,.0f} s ago)"
    )
    return Output({"store": shown, "min_age_s": args.min_age, "removed": removed}, [line])


# ── demo ─────────────────────────────────────────────────────────────────────


@attrs.frozen
class DemoRow:
    method: str
    requests: int
    bytes_read: int
    seconds: float


def demo_table(rows: Sequence[DemoRow]) -> list[str]:
    lines = [f"{'':34}{'requests':>10}{'bytes read':>14}{'time':>10}"]
    lines += [
        f"{row.method:34}{row.requests:>10,}{megabytes(row.bytes_read):>14}{row.seconds:>9.2f}s"
        for row in rows
    ]
    return lines


def demo_stack(args: argparse.Namespace) -> None:
    """Unless told otherwise, the demo runs on a fresh embedded default in .fetchcore/demo."""
    if args.index == default_index_url() and args.store == default_store_url():
        shutil.rmtree(HOME / "demo", ignore_errors=True)
        args.index, args.store = default_index_url(HOME / "demo"), default_store_url(HOME / "demo")


async def ingest_history(
    index: IndexRepo,
    store: ObjectStore,
    history: Sequence[SyntheticPush],
    bar: ProgressCallback | None,
) -> None:
    """Ingest the pushes in order, moving ``bar`` by blobs and bytes after each push."""
    blobs_total = sum(len(push.blobs) for push in history)
    bytes_total = sum(len(push.data) for push in history)
    blobs_done = bytes_done = 0
    for push in history:
        await ingest_push(index, store, repo_id=DEMO_REPO, mpack=push.data)
        blobs_done += len(push.blobs)
        bytes_done += len(push.data)
        if bar is not None:
            bar(BlobProgress(blobs_done, blobs_total, bytes_done, bytes_total))


async def command_demo(args: argparse.Namespace, progress: Progress) -> Output:
    demo_stack(args)
    with progress.step(f"building a repository of {args.blobs:,} blobs in {args.pushes} pushes"):
        history = synthetic_history(
            blob_count=args.blobs, pushes=args.pushes, blob_size=args.blob_size
        )
    want = [history[-1].commit_id]
    async with open_stack(args, provision=True) as (index, store):
        # A used database: start the demo repository afresh (the pushes are content-addressed).
        await delete_repository(lifecycle_of(index, store)[0], DEMO_REPO)
        with progress_bar(progress, "ingesting the pushes", "ingest") as bar:
            await ingest_history(index, store, history, bar)
        with progress_bar(progress, "serving a full fetch with fetchcore", "fetch") as bar:
            result, took = await timed(
                serve_fetch(index, store, repo_id=DEMO_REPO, want=want, progress=bar)
            )
        with progress.step("writing one key per blob, as the old hub's background job did"):
            _, keys_took = await timed(
                write_object_keys(store, {o: c for push in history for o, c in push.blobs.items()})
            )
        with progress.step("serving the same fetch with one GET per blob"):
            (_, baseline_bytes), baseline_took = await timed(
                per_object_fetch(index, store, repo_id=DEMO_REPO, want=want)
            )
    rows = [
        DemoRow("fetchcore", result.stats.requests, result.stats.bytes_read, took),
        DemoRow("one GET per blob (the old way)", result.blob_count, baseline_bytes, baseline_took),
    ]
    return Output(
        demo_data(args, result, rows, keys_took, len(history)),
        demo_lines(args, result, rows, keys_took, len(history)),
    )


def demo_data(
    args: argparse.Namespace, result: FetchResult, rows: list[DemoRow], keys_s: float, pushes: int
) -> dict[str, Any]:
    return {
        "index": masked(args.index),
        "store": masked(args.store),
        "blob_count": result.blob_count,
        "pushes": pushes,
        "fetch_reused": result.reused,
        "rows": [attrs.asdict(row) for row in rows],
        "keys_seconds": keys_s,
    }


def demo_lines(
    args: argparse.Namespace, result: FetchResult, rows: list[DemoRow], keys_s: float, pushes: int
) -> list[str]:
    ours, baseline = rows
    reused = " (the stored fetch document was reused)" if result.reused else ""
    return [
        f"A full fetch of {result.blob_count:,} blobs from {pushes} push mpacks "
        f"({masked(args.index)}, {masked(args.store)}){reused}:",
        *demo_table(rows),
        f"fetchcore: {baseline.seconds / max(ours.seconds, 1e-9):.1f}x faster, "
        f"{result.blob_count / max(1, ours.requests):,.0f}x fewer requests; "
        f"and no per-push job writing {result.blob_count:,} keys ({keys_s:.1f} s the old way).",
    ]


# ── wiring ───────────────────────────────────────────────────────────────────

Command = Callable[[argparse.Namespace, Progress], Coroutine[Any, Any, Output]]


def _with_default(about: str, default: object) -> str:
    return f"{about} (default: {default})"


def _common_options() -> argparse.ArgumentParser:
    """Options every command takes after its name: --json, and the stack options again.

    The stack options default to SUPPRESS here, so that given before the command
    name they are not overwritten by a subcommand's default.
    """
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--json", action="store_true", help="print one JSON object, not text")
    about = "as before the command (see fetchcore --help)"
    common.add_argument("--index", default=argparse.SUPPRESS, help=about)
    common.add_argument("--store", default=argparse.SUPPRESS, help=about)
    common.add_argument("--create", action="store_true", default=argparse.SUPPRESS, help=about)
    return common


def _add_stack_options(parser: argparse.ArgumentParser) -> None:
    index_url = os.environ.get("FETCHCORE_INDEX", default_index_url())
    store_url = os.environ.get("FETCHCORE_STORE", default_store_url())
    parser.add_argument(
        "--index",
        default=index_url,
        help=_with_default(
            "index URL: sqlite+aiosqlite:///FILE or postgresql+asyncpg://USER:PASSWORD@HOST/DB; "
            "$FETCHCORE_INDEX when set",
            masked(index_url),
        ),
    )
    parser.add_argument(
        "--store",
        default=store_url,
        help=_with_default(
            "store URL: file://PATH or s3://BUCKET/PREFIX?endpoint=URL&region=REGION; "
            "$FETCHCORE_STORE when set",
            masked(store_url),
        ),
    )
    parser.add_argument(
        "--create",
        action="store_true",
        help="create a SQLite index file that does not exist yet (the default index always is)",
    )


def _add_fetch_commands(commands: Any, common: argparse.ArgumentParser) -> None:
    for name, run, about in [
        ("fetch", command_fetch, "serve a fetch"),
        ("plan", command_plan, "explain how a fetch would read, without reading"),
    ]:
        sub = commands.add_parser(name, help=about, description=about, parents=[common])
        sub.add_argument("--repo", required=True)
        sub.add_argument("--want", action="append", required=True, help="a wanted commit (repeat)")
        sub.add_argument(
            "--have", action="append", default=[], help="a commit the client has (repeat)"
        )
        sub.set_defaults(run=run)
        if name == "fetch":
            sub.add_argument("--out", help="also write the fetch mpack to this file")
            sub.add_argument("--accept-zstd", action="store_true", help="pass zstd blobs through")


def _add_min_age(parser: argparse.ArgumentParser, default_s: float, meaning: str) -> None:
    """The ``--min-age`` option of a command that removes what is old enough."""
    parser.add_argument(
        "--min-age", type=float, default=default_s, help=_with_default(meaning, f"{default_s:.0f}")
    )


def _add_repository_commands(commands: Any, common: argparse.ArgumentParser) -> None:
    for name, run, about in [
        ("log", command_log, "list a repository's commits, newest first, with their parents"),
        ("heads", command_heads, "list a repository's branch heads"),
        ("delete-repo", command_delete_repo, "delete a repository's index data"),
    ]:
        sub = commands.add_parser(name, help=about, description=about, parents=[common])
        sub.add_argument("--repo", required=True)
        sub.set_defaults(run=run)

    about = "list push mpacks that no repository references (a dry run), or delete them"
    orphans = commands.add_parser("orphans", help=about, description=about, parents=[common])
    _add_min_age(
        orphans,
        DEFAULT_MIN_AGE_S,
        "seconds since upload before an unreferenced mpack counts: an ingest uploads "
        "its mpack before it records it",
    )
    orphans.add_argument("--delete", action="store_true", help="delete them (default: only list)")
    orphans.set_defaults(run=command_orphans)

    about = "remove what crashed ingests staged: staged pushes and incomplete multipart uploads"
    staging = commands.add_parser("sweep-staging", help=about, description=about, parents=[common])
    _add_min_age(
        staging,
        DEFAULT_STAGING_AGE_S,
        "seconds since a staged push began (or was last written, on a file store) "
        "before it counts as left behind: a running ingest stages its push",
    )
    staging.set_defaults(run=command_sweep_staging)


def _add_other_commands(commands: Any, common: argparse.ArgumentParser) -> None:
    ingest = commands.add_parser("ingest", help="ingest a push mpack", parents=[common])
    ingest.add_argument("file")
    ingest.add_argument("--repo", required=True)
    ingest.add_argument(
        "--cache-max-bytes",
        type=int,
        default=0,
        help=_with_default("also cache blobs up to this size in the index", "0, none"),
    )
    ingest.set_defaults(run=command_ingest)

    about = "create or upgrade fetchcore's tables in the database at URL"
    migrate = commands.add_parser("migrate", help=about, description=about, parents=[common])
    migrate.add_argument("url", help="postgresql+asyncpg://… or sqlite+aiosqlite:///FILE")
    migrate.set_defaults(run=command_migrate)

    about = "a synthetic repository, ingested and fetched two ways (creates schema and bucket)"
    demo = commands.add_parser("demo", help=about, description=about, parents=[common])
    demo.add_argument("--blobs", type=int, default=25_000, help=_with_default("blobs", 25_000))
    demo.add_argument("--pushes", type=int, default=4, help=_with_default("pushes", 4))
    demo.add_argument(
        "--blob-size", type=int, default=4096, help=_with_default("bytes per blob", 4096)
    )
    demo.set_defaults(run=command_demo)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="fetchcore",
        description="Ingest, fetch, plan, inspect and tidy, over any index and store.",
        epilog=ENVIRONMENT,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"fetchcore {__version__}")
    _add_stack_options(parser)
    common = _common_options()
    commands = parser.add_subparsers(dest="command", required=True)
    _add_other_commands(commands, common)
    _add_fetch_commands(commands, common)
    _add_repository_commands(commands, common)
    return parser


def exit_code(error: BaseException) -> int:
    """The exit code for an error that ended a command."""
    if isinstance(error, FetchNotIndexedError):
        return EXIT_NOT_INDEXED
    if isinstance(error, UnknownCommitError):
        return EXIT_UNKNOWN_COMMIT
    if isinstance(error, InvalidRequestError):
        return EXIT_USAGE
    return EXIT_FAILED


def missing_extra_hint(error: ModuleNotFoundError) -> str | None:
    """One line saying which extra to install, if ``error`` is a missing extra's module."""
    module = (error.name or "").partition(".")[0]
    extra = EXTRA_OF_MODULE.get(module)
    if extra is None:
        return None
    return (
        f"fetchcore: error: this needs the {extra!r} extra ({module} is not installed): "
        f"pip install 'fetchcore[{extra}]'"
    )


def report(args: argparse.Namespace, output: Output) -> None:
    if args.json:
        print(json.dumps(output.data, sort_keys=True))
    else:
        print("\n".join(output.lines))


def report_error(args: argparse.Namespace, error: BaseException, code: int) -> None:
    """One line on stderr (and with --json, the error as JSON on stdout); no password."""
    urls = [getattr(args, "index", ""), getattr(args, "store", ""), getattr(args, "url", "")]
    message = scrubbed(str(error), [url for url in urls if url])
    print(f"fetchcore: error: {message}", file=sys.stderr)
    if args.json:
        failure = {"type": type(error).__name__, "message": message, "exit_code": code}
        print(json.dumps({"error": failure}, sort_keys=True))


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit code."""
    args = build_parser().parse_args(argv)
    run: Command = args.run
    try:
        report(args, asyncio.run(run(args, Progress())))
    except ModuleNotFoundError as error:
        hint = missing_extra_hint(error)
        if hint is None:
            raise
        print(hint, file=sys.stderr)
        return EXIT_FAILED
    except (FetchError, OSError) as error:
        report_error(args, error, exit_code(error))
        return exit_code(error)
    except KeyboardInterrupt:
        print("fetchcore: interrupted", file=sys.stderr)
        return EXIT_FAILED
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
