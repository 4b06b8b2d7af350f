"""Every backend the shared suites run against. A new backend is one factory here.

A factory opens an adapter for one test and cleans it up afterwards. The
contract suites (tests/contract) and the scenario suites (tests/scenarios)
take their adapters only from the fixtures built on these tables, so a new
object store or index joins every suite by adding one entry.
"""

from __future__ import annotations

import asyncio
import os
import urllib.parse
import urllib.request
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path

import pytest
from fetchcore.adapters.filesystem import FilesystemObjectStore
from fetchcore.adapters.memory import MemoryIndexRepo, MemoryObjectStore
from fetchcore.adapters.s3 import S3ObjectStore
from fetchcore.adapters.sql import SqlIndexRepo

from fetchcore import ids
from fetchcore.policy import MiB
from fetchcore.ports import FetchUpload, IndexRepo, ObjectStore, PushUpload
from tests.pg_support import postgres_index
from tests.s3_support import list_keys, list_uploads, s3_test_store, unreachable_s3_store

StoreFactory = Callable[[pytest.FixtureRequest, Path], AbstractAsyncContextManager[ObjectStore]]
IndexFactory = Callable[[pytest.FixtureRequest, Path], AbstractAsyncContextManager[IndexRepo]]


@asynccontextmanager
async def memory_store(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[ObjectStore]:
    yield MemoryObjectStore()


@asynccontextmanager
async def filesystem_store(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[ObjectStore]:
    yield FilesystemObjectStore(tmp_path / "objects")


S3_PUSH_BUFFER_BYTES = 8 * MiB


@asynccontextmanager
async def s3_store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[ObjectStore]:
    # Pushes above 8 MiB are staged, smaller ones held and written straight to the key
    # (the default holds nothing): the suites exercise both ways of S3PushUpload.
    async with s3_test_store(request, push_buffer_bytes=S3_PUSH_BUFFER_BYTES) as store:
        yield store


@asynccontextmanager
async def unreachable_filesystem_store(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[ObjectStore]:
    blocker = tmp_path / "not-a-directory"
    blocker.write_bytes(b"")
    yield FilesystemObjectStore(blocker / "objects")


@asynccontextmanager
async def unreachable_s3(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[ObjectStore]:
    async with unreachable_s3_store() as store:
        yield store


@asynccontextmanager
async def memory_index(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[IndexRepo]:
    yield MemoryIndexRepo()


@asynccontextmanager
async def sqlite_index(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[IndexRepo]:
    await asyncio.to_thread(tmp_path.mkdir, parents=True, exist_ok=True)
    url = f"sqlite+aiosqlite:///{tmp_path / 'index.db'}"
    async with SqlIndexRepo.connect(url, create_schema=True) as index:
        yield index


STORES: dict[str, StoreFactory] = {
    "memory": memory_store,
    "filesystem": filesystem_store,
    "s3": s3_store,
}

# The same stores with their storage out of reach (every I/O fails), to show that
# bad arguments are refused before any I/O. The memory store does no I/O at all.
UNREACHABLE_STORES: dict[str, StoreFactory] = {
    "filesystem": unreachable_filesystem_store,
    "s3": unreachable_s3,
}

INDEXES: dict[str, IndexFactory] = {
    "memory": memory_index,
    "sqlite": sqlite_index,
    "postgres": postgres_index,
}

# (index, store) pairs the end-to-end scenarios run on.
STACKS: list[tuple[str, str]] = [
    ("memory", "memory"),
    ("sqlite", "filesystem"),
    ("postgres", "s3"),
]


# ── reaching behind a store's back: what the contract suite damages and inspects ──
# Each store keeps its bytes its own way; these helpers touch them directly (never
# through the port), so the suite can damage a stored document and then ask the
# store what it sees, and list what a failed upload left behind.


async def cancel_while_writing(upload: FetchUpload | PushUpload, chunk: bytes) -> None:
    """Write ``chunk`` after ``chunk`` into ``upload`` and cancel the writer after ten,
    which aborts the upload as the core does on cancellation; the cancellation is
    checked to reach the writer."""
    written_ten = asyncio.Event()

    async def writer() -> None:
        try:
            for written in range(2_000):
                await upload.write(chunk)
                if written == 10:
                    written_ten.set()
                await asyncio.sleep(0)
        except BaseException:
            await upload.abort()
            raise

    task = asyncio.create_task(writer())
    await written_ten.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def stored_fetch_leftovers(store: ObjectStore) -> list[str]:
    """Everything the store holds about fetch documents: files (temporary ones
    included), keys and unfinished multipart uploads."""
    if isinstance(store, MemoryObjectStore):
        return sorted([*store.fetches, *store.fetch_seals])
    if isinstance(store, FilesystemObjectStore):
        fetch_root = store.root / "fetch"
        return await asyncio.to_thread(
            lambda: sorted(str(p) for p in fetch_root.rglob("*") if p.is_file())
        )
    if isinstance(store, S3ObjectStore):
        keys = [key for key in await list_keys(store) if "/fetch/" in f"/{key}"]
        uploads = [f"upload {key}" for key, _ in await list_uploads(store)]
        return sorted(keys + uploads)
    raise TypeError(f"no backdoor for {type(store).__name__}")


async def staged_push_leftovers(store: ObjectStore) -> list[str]:
    """Everything the store holds of staged pushes: staging keys (memory), files under
    the staging directory (filesystem), keys under the staging prefix and unfinished
    multipart uploads of them (S3). A wrapper is looked through to its ``inner`` store."""
    inner = getattr(store, "inner", None)
    if inner is not None:
        return await staged_push_leftovers(inner)
    if isinstance(store, MemoryObjectStore):
        return sorted({*store.staging, *store.staging_started})
    if isinstance(store, FilesystemObjectStore):
        staging_root = store.root / "staging"
        return await asyncio.to_thread(
            lambda: sorted(str(p) for p in staging_root.rglob("*") if p.is_file())
        )
    if isinstance(store, S3ObjectStore):
        namespace = f"{store.prefix}staging/"
        keys = [key for key in await list_keys(store) if key.startswith(namespace)]
        uploads = [
            f"upload {key}" for key, _ in await list_uploads(store) if key.startswith(namespace)
        ]
        return sorted(keys + uploads)
    raise TypeError(f"no backdoor for {type(store).__name__}")


async def replace_behind_the_back(store: ObjectStore, kind: str, some_id: str, data: bytes) -> None:
    """Put ``data`` where the store keeps ``kind`` ("fetch" or "mpack") ``some_id``, as a
    new file or object (a filesystem store sees a new inode)."""
    digest = ids.check_mpack_id(some_id).removeprefix(ids.PREFIX)
    if isinstance(store, MemoryObjectStore):
        (store.fetches if kind == "fetch" else store.mpacks)[some_id] = data
    elif isinstance(store, FilesystemObjectStore):
        path = _stored_path(store, kind, digest)
        replacement = path.with_name("replacement")
        await asyncio.to_thread(replacement.write_bytes, data)
        await asyncio.to_thread(replacement.replace, path)
    elif isinstance(store, S3ObjectStore):
        key = f"{store.prefix}{'fetch' if kind == 'fetch' else 'mpacks'}/{digest}"
        await store.client.put_object(Bucket=store.bucket, Key=key, Body=data)
    else:
        raise TypeError(f"no backdoor for {type(store).__name__}")


async def truncate_behind_the_back(store: ObjectStore, kind: str, some_id: str, size: int) -> None:
    """Cut what the store keeps for ``kind`` ``some_id`` to ``size`` bytes (in place
    where the store has files)."""
    if isinstance(store, FilesystemObjectStore):
        digest = ids.check_mpack_id(some_id).removeprefix(ids.PREFIX)
        await asyncio.to_thread(os.truncate, _stored_path(store, kind, digest), size)
        return
    reader = store.get_fetch if kind == "fetch" else store.get_mpack
    data = await reader(some_id)
    assert data is not None
    await replace_behind_the_back(store, kind, some_id, data[:size])


def _stored_path(store: FilesystemObjectStore, kind: str, digest: str) -> Path:
    namespace = "fetch" if kind == "fetch" else "mpacks"
    return store.root / namespace / digest[:2] / digest


async def download(store: ObjectStore, url: str) -> bytes:
    """The bytes a presigned URL hands out: an HTTP GET, a file:// read, or, for the
    memory store's ``memory://`` URLs, what its dicts hold under that name."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme in ("http", "https"):
        return await asyncio.to_thread(_http_get, url)
    if parts.scheme == "file":
        return await asyncio.to_thread(Path(urllib.request.url2pathname(parts.path)).read_bytes)
    if parts.scheme == "memory" and isinstance(store, MemoryObjectStore):
        held = store.fetches if parts.netloc == "fetch" else store.mpacks
        return held[parts.path.lstrip("/")]
    raise AssertionError(f"{url!r} is not a URL this suite can download")


def _http_get(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=30) as response:
        data: bytes = response.read()
        return data
