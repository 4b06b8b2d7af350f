"""Every backend the shared suites run against. A new backend is one factory here.

A factory opens an adapter for one test and cleans it up afterwards. The
contract suites (tests/contract) and the scenario suites (tests/scenarios)
take their adapters only from the fixtures built on these tables, so a new
object store or index joins every suite by adding one entry.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path

import pytest
from fetchcore.adapters.filesystem import FilesystemObjectStore
from fetchcore.adapters.memory import MemoryIndexRepo, MemoryObjectStore
from fetchcore.adapters.sql import SqlIndexRepo

from fetchcore.ports import IndexRepo, ObjectStore
from tests.pg_support import postgres_index
from tests.s3_support import s3_test_store, unreachable_s3_store

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


@asynccontextmanager
async def s3_store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[ObjectStore]:
    async with s3_test_store(request) as store:
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
