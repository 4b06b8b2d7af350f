"""The ``fetchcore`` command: ingest, fetch, plan and demo, over any index and store.

A driving adapter: it parses arguments, opens the index and the store named by
``--index`` / ``--store`` (or ``FETCHCORE_INDEX`` / ``FETCHCORE_STORE``, else the
embedded default: a SQLite file and a directory under ``./.fetchcore/``), calls
the library, and turns its answers into text and exit codes:

    0 done · 1 anything else failed · 2 usage · 3 not indexed yet (retry later)
    4 unknown commit

Results go to stdout; progress (for steps over a second) and errors, one line
each, go to stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any, TextIO, TypeVar
from urllib.parse import parse_qs, urlsplit

import attrs
from fetchcore.adapters.baseline import per_object_fetch, write_object_keys
from fetchcore.adapters.filesystem import FilesystemObjectStore

from fetchcore import (
    FetchError,
    FetchNotIndexedError,
    FetchPreview,
    IndexRepo,
    InvalidRequestError,
    MPackRead,
    ObjectStore,
    Policy,
    UnknownCommitError,
    ingest_push,
    preview_fetch,
    serve_fetch,
)
from fetchcore.testing import synthetic_history

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
}
HOME = Path(".fetchcore")
PROGRESS_AFTER_S = 1.0
T = TypeVar("T")


# ── opening the index and the store ──────────────────────────────────────────


def default_index_url(home: Path = HOME) -> str:
    return f"sqlite+aiosqlite:///{home / 'index.sqlite'}"


def default_store_url(home: Path = HOME) -> str:
    return f"file://{home / 'store'}"


@asynccontextmanager
async def open_index(url: str) -> AsyncIterator[IndexRepo]:
    """The index at ``url``; SQLite files get their tables created on first use."""
    from fetchcore.adapters.sql import (
        SqlIndexRepo,  # imported on use: the driver is not needed before
    )

    async with SqlIndexRepo.connect(url, create_schema=url.startswith("sqlite")) as index:
        yield index


@asynccontextmanager
async def open_store(url: str) -> AsyncIterator[ObjectStore]:
    """The store at ``file://PATH`` or ``s3://BUCKET/PREFIX?endpoint=…&region=…``.

    S3 credentials come from FETCHCORE_S3_ACCESS_KEY / FETCHCORE_S3_SECRET_KEY,
    else botocore's usual lookup (AWS_ACCESS_KEY_ID, ~/.aws, …).

    Raises:
        InvalidRequestError: the URL names no store fetchcore knows.
    """
    if url.startswith("file://"):
        yield FilesystemObjectStore(Path(url.removeprefix("file://")))
        return
    parts = urlsplit(url)
    if parts.scheme != "s3" or not parts.netloc:
        raise InvalidRequestError(
            f"unknown store URL {url!r}: use file://PATH or s3://BUCKET/PREFIX"
        )
    query = {key: values[-1] for key, values in parse_qs(parts.query).items()}
    from fetchcore.adapters.s3 import (
        S3ObjectStore,  # imported on use: aiobotocore is slow to import
    )

    async with S3ObjectStore.connect(
        bucket=parts.netloc,
        prefix=parts.path.lstrip("/"),
        endpoint_url=query.get("endpoint"),
        region=query.get("region", "us-east-1"),
        access_key_id=os.environ.get("FETCHCORE_S3_ACCESS_KEY"),
        secret_access_key=os.environ.get("FETCHCORE_S3_SECRET_KEY"),
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
async def open_stack(args: argparse.Namespace) -> AsyncIterator[tuple[IndexRepo, ObjectStore]]:
    """The index and the store the command line names."""
    _make_local_directories(args.index, args.store)
    async with open_index(args.index) as index, open_store(args.store) as store:
        yield index, store


# ── output ───────────────────────────────────────────────────────────────────


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


async def timed(call: Awaitable[T]) -> tuple[T, float]:
    started = time.perf_counter()
    result = await call
    return result, time.perf_counter() - started


# ── commands ─────────────────────────────────────────────────────────────────


async def command_ingest(args: argparse.Namespace, progress: Progress) -> None:
    try:
        data = await asyncio.to_thread(Path(args.file).read_bytes)
    except OSError as error:
        raise InvalidRequestError(f"cannot read {args.file}: {error.strerror}") from error
    policy = Policy(cache_max_bytes=args.cache_max_bytes)
    async with open_stack(args) as (index, store):
        with progress.step(f"ingesting {args.file}"):
            result = await ingest_push(index, store, repo_id=args.repo, mpack=data, policy=policy)
    stored = "stored" if result.uploaded else "already stored"
    print(f"ingested {result.mpack_id} into {args.repo} ({stored})")
    print(
        f"  {result.commit_count:,} commit(s), {result.snapshot_count:,} snapshot(s), "
        f"{result.blob_count:,} blob(s), {megabytes(len(data))}"
    )


async def command_fetch(args: argparse.Namespace, progress: Progress) -> None:
    encodings = ("identity", "zstd") if args.accept_zstd else ("identity",)
    async with open_stack(args) as (index, store):
        with progress.step("serving the fetch"):
            result, took = await timed(
                serve_fetch(
                    index,
                    store,
                    repo_id=args.repo,
                    want=args.want,
                    have=args.have,
                    accept_encodings=encodings,
                )
            )
        if args.out:
            data = await store.get_mpack(result.mpack_id)
            await asyncio.to_thread(Path(args.out).write_bytes, data or b"")
    stats = result.stats
    print(f"fetch mpack  {result.mpack_id}")
    print(f"url          {result.mpack_url or '(this store cannot presign)'}")
    print(
        f"sent         {result.commit_count:,} commit(s), {result.snapshot_count:,} snapshot(s), "
        f"{result.blob_count:,} blob(s), {megabytes(result.size_bytes)}"
    )
    print(
        f"read         {stats.requests:,} request(s) ({stats.mpack_gets} whole, "
        f"{stats.range_gets} ranged, {stats.object_gets} per-object), "
        f"{megabytes(stats.bytes_read)}, {stats.cache_hits:,} cache hit(s), in {took:.2f} s"
    )
    if args.out:
        print(f"written to   {args.out}")


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


async def command_plan(args: argparse.Namespace, progress: Progress) -> None:
    async with open_stack(args) as (index, _):
        with progress.step("planning"):
            preview = await preview_fetch(index, repo_id=args.repo, want=args.want, have=args.have)
    print("\n".join(describe_plan(preview)))


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


async def command_demo(args: argparse.Namespace, progress: Progress) -> None:
    demo_stack(args)
    with progress.step(f"building a repository of {args.blobs:,} blobs in {args.pushes} pushes"):
        history = synthetic_history(
            blob_count=args.blobs, pushes=args.pushes, blob_size=args.blob_size
        )
    repo = "demo/synthetic"
    async with open_stack(args) as (index, store):
        with progress.step("ingesting the pushes"):
            for push in history:
                await ingest_push(index, store, repo_id=repo, mpack=push.data)
        with progress.step("serving a full fetch with fetchcore"):
            result, took = await timed(
                serve_fetch(index, store, repo_id=repo, want=[history[-1].commit_id])
            )
        with progress.step("writing one key per blob, as the old hub's background job did"):
            _, keys_took = await timed(
                write_object_keys(store, {o: c for push in history for o, c in push.blobs.items()})
            )
        with progress.step("serving the same fetch with one GET per blob"):
            (_, baseline_bytes), baseline_took = await timed(
                per_object_fetch(index, store, repo_id=repo, want=[history[-1].commit_id])
            )
    rows = [
        DemoRow("fetchcore", result.stats.requests, result.stats.bytes_read, took),
        DemoRow("one GET per blob (the old way)", result.blob_count, baseline_bytes, baseline_took),
    ]
    print(
        f"A full fetch of {result.blob_count:,} blobs from {len(history)} push mpacks "
        f"({args.index.split('///')[-1]}, {args.store}):"
    )
    print("\n".join(demo_table(rows)))
    print(
        f"fetchcore: {baseline_took / took:.1f}x faster, "
        f"{result.blob_count / max(1, result.stats.requests):,.0f}x fewer requests; "
        f"and no per-push job writing {result.blob_count:,} keys ({keys_took:.1f} s the old way)."
    )


# ── wiring ───────────────────────────────────────────────────────────────────

Command = Callable[[argparse.Namespace, Progress], Coroutine[Any, Any, None]]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="fetchcore", description="Ingest, fetch, plan and demo, over any index and store."
    )
    parser.add_argument(
        "--index",
        default=os.environ.get("FETCHCORE_INDEX", default_index_url()),
        help="index URL: sqlite+aiosqlite:///FILE or postgresql+asyncpg://…",
    )
    parser.add_argument(
        "--store",
        default=os.environ.get("FETCHCORE_STORE", default_store_url()),
        help="store URL: file://PATH or s3://BUCKET/PREFIX?endpoint=URL",
    )
    commands = parser.add_subparsers(dest="command", required=True)

    ingest = commands.add_parser("ingest", help="ingest a push mpack")
    ingest.add_argument("file")
    ingest.add_argument("--repo", required=True)
    ingest.add_argument(
        "--cache-max-bytes",
        type=int,
        default=0,
        help="also cache blobs up to this size in the index (default: none)",
    )
    ingest.set_defaults(run=command_ingest)

    for name, run, about in [
        ("fetch", command_fetch, "serve a fetch"),
        ("plan", command_plan, "explain how a fetch would read, without reading"),
    ]:
        sub = commands.add_parser(name, help=about)
        sub.add_argument("--repo", required=True)
        sub.add_argument("--want", action="append", required=True, help="a wanted commit (repeat)")
        sub.add_argument(
            "--have", action="append", default=[], help="a commit the client has (repeat)"
        )
        sub.set_defaults(run=run)
        if name == "fetch":
            sub.add_argument("--out", help="also write the fetch mpack to this file")
            sub.add_argument("--accept-zstd", action="store_true", help="pass zstd blobs through")

    demo = commands.add_parser("demo", help="a synthetic repository, ingested and fetched two ways")
    demo.add_argument("--blobs", type=int, default=25_000)
    demo.add_argument("--pushes", type=int, default=4)
    demo.add_argument("--blob-size", type=int, default=4096)
    demo.set_defaults(run=command_demo)
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


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit code."""
    args = build_parser().parse_args(argv)
    run: Command = args.run
    try:
        asyncio.run(run(args, Progress()))
    except ModuleNotFoundError as error:
        hint = missing_extra_hint(error)
        if hint is None:
            raise
        print(hint, file=sys.stderr)
        return EXIT_FAILED
    except (FetchError, OSError) as error:
        print(f"fetchcore: error: {error}", file=sys.stderr)
        return exit_code(error)
    except KeyboardInterrupt:
        print("fetchcore: interrupted", file=sys.stderr)
        return EXIT_FAILED
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
