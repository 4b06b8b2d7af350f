"""The stacks benchmarks run on: an index and an object store, opened and cleaned up.

- ``memory``: the in-memory adapters (no I/O: the cost of fetchcore itself).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager

from adapters.memory import MemoryIndexRepo, MemoryObjectStore
from fetchcore import IndexRepo, ObjectStore

Stack = tuple[IndexRepo, ObjectStore]


@asynccontextmanager
async def memory_stack() -> AsyncIterator[Stack]:
    yield MemoryIndexRepo(), MemoryObjectStore()


STACKS: dict[str, Callable[[], AbstractAsyncContextManager[Stack]]] = {
    "memory": memory_stack,
}


def open_stack(name: str) -> AbstractAsyncContextManager[Stack]:
    """Open the named stack."""
    return STACKS[name]()
