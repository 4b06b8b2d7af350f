"""The stacks benchmarks run on: an index and an object store, opened and cleaned up.

- ``memory``: the in-memory adapters (no I/O: the cost of fetchcore itself).
- ``embedded``: SQLite + a local directory, in a temporary directory.
- ``production``: PostgreSQL (a scratch database on ``FETCHCORE_PG_URL``, dropped
  afterwards) + S3 (a SeaweedFS started on loopback for the run, or
  ``FETCHCORE_S3_ENDPOINT``).
"""

from __future__ import annotations

import os
import secrets
import tempfile
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager, contextmanager
from pathlib import Path

import asyncpg
import sqlalchemy as sa
from fetchcore.adapters.filesystem import FilesystemObjectStore
from fetchcore.adapters.memory import MemoryIndexRepo, MemoryObjectStore
from fetchcore.adapters.s3 import S3ObjectStore
from fetchcore.adapters.sql import SqlIndexRepo
from tests.seaweed import S3Endpoint, running_seaweed

from fetchcore import IndexRepo, ObjectStore

Stack = tuple[IndexRepo, ObjectStore]
DEFAULT_PG_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/test"


@asynccontextmanager
async def memory_stack() -> AsyncIterator[Stack]:
    yield MemoryIndexRepo(), MemoryObjectStore()


@asynccontextmanager
async def embedded_stack() -> AsyncIterator[Stack]:
    with tempfile.TemporaryDirectory(prefix="fetchcore-bench-") as directory:
        url = f"sqlite+aiosqlite:///{Path(directory) / 'index.sqlite'}"
        async with SqlIndexRepo.connect(url, create_schema=True) as index:
            yield index, FilesystemObjectStore(Path(directory) / "store")


@asynccontextmanager
async def scratch_postgres() -> AsyncIterator[str]:
    """A new database on the benchmark server, dropped on exit; yields its URL."""
    server = sa.make_url(os.environ.get("FETCHCORE_PG_URL", DEFAULT_PG_URL))
    admin_dsn = server.set(drivername="postgresql").render_as_string(hide_password=False)
    name = f"fetchcore_bench_{secrets.token_hex(4)}"
    connection = await asyncpg.connect(admin_dsn)
    try:
        await connection.execute(f'CREATE DATABASE "{name}"')
        yield server.set(database=name).render_as_string(hide_password=False)
    finally:
        await connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await connection.close()


@contextmanager
def s3_endpoint() -> Iterator[S3Endpoint]:
    """``FETCHCORE_S3_ENDPOINT`` if set, else a SeaweedFS of our own for the run."""
    external = os.environ.get("FETCHCORE_S3_ENDPOINT")
    if external:
        yield S3Endpoint(
            external,
            os.environ.get("FETCHCORE_S3_ACCESS_KEY", ""),
            os.environ.get("FETCHCORE_S3_SECRET_KEY", ""),
        )
        return
    with (
        tempfile.TemporaryDirectory(prefix="fetchcore-bench-s3-") as directory,
        running_seaweed(Path(directory)) as server,
    ):
        yield server.endpoint


def s3_store(
    endpoint: S3Endpoint,
    bucket: str,
    *,
    prefix: str | None = None,
    create_bucket: bool = True,
) -> AbstractAsyncContextManager[S3ObjectStore]:
    """A store on ``bucket`` at ``endpoint``, under ``prefix`` (a fresh one by default:
    a process that must find another's objects passes the same prefix)."""
    return S3ObjectStore.connect(
        bucket=bucket,
        endpoint_url=endpoint.url,
        access_key_id=endpoint.access_key_id or None,
        secret_access_key=endpoint.secret_access_key or None,
        region=endpoint.region,
        prefix=prefix if prefix is not None else f"bench-{secrets.token_hex(4)}/",
        create_bucket=create_bucket,
    )


@asynccontextmanager
async def production_stack() -> AsyncIterator[Stack]:
    with s3_endpoint() as endpoint:
        async with (
            scratch_postgres() as url,
            SqlIndexRepo.connect(url, create_schema=True) as index,
            s3_store(endpoint, "fetchcore-bench") as store,
        ):
            yield index, store


STACKS: dict[str, Callable[[], AbstractAsyncContextManager[Stack]]] = {
    "memory": memory_stack,
    "embedded": embedded_stack,
    "production": production_stack,
}


def open_stack(name: str) -> AbstractAsyncContextManager[Stack]:
    """Open the named stack."""
    return STACKS[name]()
