"""Recording wrappers: pass every call through to a real adapter and remember it.

Written against the ports alone, so they wrap any backend. Tests (fetchcore's
and hub services') assert on what was asked of storage: which mpacks were read
whole, which ranges, which legacy keys, and in what order.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from typing import Any

import attrs

from fetchcore.model import Commit, IndexBatch, Location, Snapshot
from fetchcore.ports import FetchUpload, IndexRepo, ObjectStore, PushUpload, retries_its_reads


@attrs.frozen
class Call:
    """One call: the method's name and its arguments (bulk data left out)."""

    method: str
    args: tuple[Any, ...] = ()


@attrs.define
class RecordingObjectStore:
    """An ObjectStore that records every call before passing it to ``inner``."""

    inner: ObjectStore
    calls: list[Call] = attrs.field(factory=list)

    @property
    def retries_reads(self) -> bool:
        """What ``inner`` declares (recording changes no read)."""
        return retries_its_reads(self.inner)

    def args_of(self, method: str) -> list[tuple[Any, ...]]:
        """The arguments of every call to ``method``, in order."""
        return [call.args for call in self.calls if call.method == method]

    def ids_of(self, method: str) -> list[str]:
        """The first argument (the id) of every call to ``method``, in order."""
        return [str(args[0]) for args in self.args_of(method)]

    @property
    def reads(self) -> list[Call]:
        """Every read request (whole mpack, range, legacy object)."""
        read_methods = {"get_object", "get_mpack", "get_mpack_range"}
        return [call for call in self.calls if call.method in read_methods]

    async def get_object(self, object_id: str) -> bytes | None:
        self.calls.append(Call("get_object", (object_id,)))
        return await self.inner.get_object(object_id)

    async def put_object(self, object_id: str, data: bytes) -> None:
        self.calls.append(Call("put_object", (object_id,)))
        await self.inner.put_object(object_id, data)

    async def get_mpack(self, mpack_id: str) -> bytes | None:
        self.calls.append(Call("get_mpack", (mpack_id,)))
        return await self.inner.get_mpack(mpack_id)

    async def get_mpack_range(self, mpack_id: str, start: int, end: int) -> bytes | None:
        self.calls.append(Call("get_mpack_range", (mpack_id, start, end)))
        return await self.inner.get_mpack_range(mpack_id, start, end)

    async def put_mpack(self, mpack_id: str, data: bytes) -> None:
        self.calls.append(Call("put_mpack", (mpack_id,)))
        await self.inner.put_mpack(mpack_id, data)

    async def has_mpack(self, mpack_id: str) -> bool | None:
        self.calls.append(Call("has_mpack", (mpack_id,)))
        return await self.inner.has_mpack(mpack_id)

    async def presign_mpack(self, mpack_id: str, ttl_s: int) -> str | None:
        self.calls.append(Call("presign_mpack", (mpack_id, ttl_s)))
        return await self.inner.presign_mpack(mpack_id, ttl_s)

    async def open_fetch(self, fetch_id: str) -> FetchUpload:
        self.calls.append(Call("open_fetch", (fetch_id,)))
        return RecordingFetchUpload(await self.inner.open_fetch(fetch_id), fetch_id, self.calls)

    async def fetch_intact(self, fetch_id: str) -> bool | None:
        self.calls.append(Call("fetch_intact", (fetch_id,)))
        return await self.inner.fetch_intact(fetch_id)

    async def get_fetch(self, fetch_id: str) -> bytes | None:
        self.calls.append(Call("get_fetch", (fetch_id,)))
        return await self.inner.get_fetch(fetch_id)

    async def presign_fetch(self, fetch_id: str, ttl_s: int) -> str | None:
        self.calls.append(Call("presign_fetch", (fetch_id, ttl_s)))
        return await self.inner.presign_fetch(fetch_id, ttl_s)

    async def open_push(self) -> PushUpload:
        self.calls.append(Call("open_push"))
        return RecordingPushUpload(await self.inner.open_push(), self.calls)

    async def sweep_staging(self, min_age_s: float) -> int:
        self.calls.append(Call("sweep_staging", (min_age_s,)))
        return await self.inner.sweep_staging(min_age_s)


@attrs.define
class RecordingFetchUpload:
    """A FetchUpload that records its calls (``fetch_write`` with the chunk's size,
    ``fetch_commit``, ``fetch_abort``) in the store's list before passing them on."""

    inner: FetchUpload
    fetch_id: str
    calls: list[Call]

    async def write(self, chunk: bytes) -> None:
        self.calls.append(Call("fetch_write", (self.fetch_id, len(chunk))))
        await self.inner.write(chunk)

    async def commit(self) -> None:
        self.calls.append(Call("fetch_commit", (self.fetch_id,)))
        await self.inner.commit()

    async def abort(self) -> None:
        self.calls.append(Call("fetch_abort", (self.fetch_id,)))
        await self.inner.abort()


@attrs.define
class RecordingPushUpload:
    """A PushUpload that records its calls (``push_write`` with the chunk's size,
    ``push_commit`` with the mpack id, ``push_abort``) in the store's list before
    passing them on."""

    inner: PushUpload
    calls: list[Call]

    async def write(self, chunk: bytes) -> None:
        self.calls.append(Call("push_write", (len(chunk),)))
        await self.inner.write(chunk)

    async def commit(self, mpack_id: str) -> None:
        self.calls.append(Call("push_commit", (mpack_id,)))
        await self.inner.commit(mpack_id)

    async def abort(self) -> None:
        self.calls.append(Call("push_abort"))
        await self.inner.abort()


@attrs.define
class RecordingIndexRepo:
    """An IndexRepo that records every call (with the number of ids asked) before passing it on."""

    inner: IndexRepo
    calls: list[Call] = attrs.field(factory=list)

    def count(self, method: str) -> int:
        """How many times ``method`` was called."""
        return sum(1 for call in self.calls if call.method == method)

    async def record(self, repo_id: str, batch: IndexBatch) -> None:
        self.calls.append(Call("record", (repo_id,)))
        await self.inner.record(repo_id, batch)

    async def resolve_commits(
        self, repo_id: str, want: Collection[str], have: Collection[str]
    ) -> Sequence[Commit]:
        self.calls.append(Call("resolve_commits", (repo_id, tuple(want), tuple(have))))
        return await self.inner.resolve_commits(repo_id, want, have)

    async def load_commits(self, repo_id: str, commit_ids: Collection[str]) -> Sequence[Commit]:
        self.calls.append(Call("load_commits", (repo_id, len(commit_ids))))
        return await self.inner.load_commits(repo_id, commit_ids)

    async def load_snapshots(
        self, repo_id: str, snapshot_ids: Collection[str]
    ) -> Sequence[Snapshot]:
        self.calls.append(Call("load_snapshots", (repo_id, len(snapshot_ids))))
        return await self.inner.load_snapshots(repo_id, snapshot_ids)

    async def known_objects(self, repo_id: str, object_ids: Collection[str]) -> Collection[str]:
        self.calls.append(Call("known_objects", (repo_id, len(object_ids))))
        return await self.inner.known_objects(repo_id, object_ids)

    async def find_cached(self, object_ids: Collection[str]) -> Mapping[str, bytes]:
        self.calls.append(Call("find_cached", (len(object_ids),)))
        return await self.inner.find_cached(object_ids)

    async def find_locations(self, object_ids: Collection[str]) -> Mapping[str, Sequence[Location]]:
        self.calls.append(Call("find_locations", (len(object_ids),)))
        return await self.inner.find_locations(object_ids)

    async def branch_heads(self, repo_id: str) -> Mapping[str, str]:
        self.calls.append(Call("branch_heads", (repo_id,)))
        return await self.inner.branch_heads(repo_id)
