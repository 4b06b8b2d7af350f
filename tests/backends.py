"""Every backend the shared suites run against. A new backend is one factory here.

A factory opens an adapter for one test and cleans it up afterwards. The
contract suites (tests/contract) and the scenario suites (tests/scenarios)
take their adapters only from the fixtures built on these tables, so a new
object store or index joins every suite by adding one entry.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path

import pytest

from adapters.memory import MemoryIndexRepo, MemoryObjectStore
from fetchcore.ports import IndexRepo, ObjectStore

StoreFactory = Callable[[pytest.FixtureRequest, Path], AbstractAsyncContextManager[ObjectStore]]
IndexFactory = Callable[[pytest.FixtureRequest, Path], AbstractAsyncContextManager[IndexRepo]]


@asynccontextmanager
async def memory_store(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[ObjectStore]:
    yield MemoryObjectStore()


@asynccontextmanager
async def memory_index(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[IndexRepo]:
    yield MemoryIndexRepo()


STORES: dict[str, StoreFactory] = {
    "memory": memory_store,
}

INDEXES: dict[str, IndexFactory] = {
    "memory": memory_index,
}

# (index, store) pairs the end-to-end scenarios run on.
STACKS: list[tuple[str, str]] = [
    ("memory", "memory"),
]
