"""The ports: what fetchcore needs from an object store and from an index.

Every method the core calls is here, so an adapter written against these
Protocols alone works. A missing key is ``None`` (or absent from a returned
mapping), never an exception. Adapters retry transient faults themselves and
raise :class:`~fetchcore.errors.StorageError` subclasses for what still fails.

Object ids handed to an :class:`IndexRepo` are canonical (``sha256:<hex>``):
the core canonicalizes before it asks, and :class:`IndexBatch` canonicalizes on
construction. Object stores receive ids as the manifest wrote them.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from typing import Protocol, runtime_checkable

from fetchcore.model import Commit, IndexBatch, Location, Snapshot


@runtime_checkable
class ObjectStore(Protocol):
    """Where push mpacks, fetch mpacks and legacy per-object keys live.

    Ids are validated before any I/O: a malformed id raises
    :class:`~fetchcore.errors.InvalidRequestError`, so no key can leave its namespace.
    """

    async def get_object(self, object_id: str) -> bytes | None:
        """The decoded content under a legacy per-object key, or None."""
        ...

    async def put_object(self, object_id: str, data: bytes) -> None:
        """Store content under a legacy per-object key."""
        ...

    async def get_mpack(self, mpack_id: str) -> bytes | None:
        """A whole mpack, or None."""
        ...

    async def get_mpack_range(self, mpack_id: str, start: int, end: int) -> bytes | None:
        """Bytes ``[start, end)`` of an mpack with slicing semantics, or None if it is missing."""
        ...

    async def put_mpack(self, mpack_id: str, data: bytes) -> None:
        """Store an mpack; idempotent."""
        ...

    async def has_mpack(self, mpack_id: str) -> bool:
        """Whether the mpack is stored."""
        ...

    async def presign_mpack(self, mpack_id: str, ttl_s: int) -> str | None:
        """A URL that downloads the mpack for ``ttl_s`` seconds, or None if the store cannot."""
        ...


@runtime_checkable
class IndexRepo(Protocol):
    """Which commits, snapshots and objects a repository has, and where objects are stored.

    Commits, snapshots and object membership are scoped to a repository;
    locations and cached content are stored once for all repositories.
    """

    async def record(self, repo_id: str, batch: IndexBatch) -> None:
        """Write ``batch`` atomically: all of it or nothing. Idempotent.

        The repository becomes a member of every object in ``batch.object_ids()``.
        Commits, snapshots, locations and cached content already recorded are
        never replaced (the first write of an id wins); ``batch.branch_heads``
        overwrite those branches and leave the others as they are.

        Raises:
            InvalidRequestError: the batch fails ``batch.check()`` or holds
                something this index cannot store (nothing is written).
            IndexRepoError: the index failed (nothing is written).
        """
        ...

    async def resolve_commits(
        self, repo_id: str, want: Collection[str], have: Collection[str]
    ) -> Sequence[Commit]:
        """Ancestors-or-self of ``want`` minus ancestors-or-self of ``have``, parents first.

        Raises:
            UnknownCommitError: some wanted ids are not commits of this repository.
        """
        ...

    async def load_commits(self, repo_id: str, commit_ids: Collection[str]) -> Sequence[Commit]:
        """The commits of this repository among ``commit_ids``; unknown ids are skipped."""
        ...

    async def load_snapshots(
        self, repo_id: str, snapshot_ids: Collection[str]
    ) -> Sequence[Snapshot]:
        """The snapshots of this repository among ``snapshot_ids``; unknown ids are skipped."""
        ...

    async def known_objects(self, repo_id: str, object_ids: Collection[str]) -> Collection[str]:
        """The ids among ``object_ids`` (canonical) that this repository has."""
        ...

    async def find_cached(self, object_ids: Collection[str]) -> Mapping[str, bytes]:
        """Cached decoded content of the ids (canonical) that have some."""
        ...

    async def find_locations(self, object_ids: Collection[str]) -> Mapping[str, Sequence[Location]]:
        """Every known mpack location of the ids (canonical) that have one, in any order."""
        ...

    async def branch_heads(self, repo_id: str) -> Mapping[str, str]:
        """The repository's branch heads: branch name -> commit id."""
        ...
