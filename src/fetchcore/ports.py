"""The ports: what fetchcore needs from an object store and from an index.

Every method the core calls is here, so an adapter written against these
Protocols alone works. A missing key is ``None`` (or absent from a returned
mapping), never an exception. Adapters retry transient faults themselves and
raise :class:`~fetchcore.errors.StorageError` subclasses for what still fails.

Each port comes in the halves its callers need, so an adapter implements only
what it is used for:

- the index: :class:`FetchIndex` (what :func:`~fetchcore.serve_fetch` and
  ``preview_fetch`` call; a hub can implement it alone over its own tables) and
  :class:`IngestIndex` (what :func:`~fetchcore.ingest_push` calls);
  :class:`IndexRepo` is their union;
- the store: :class:`FetchStore` (reading push mpacks and legacy keys, writing
  and signing fetch documents), :class:`RangedReads` (byte ranges of push
  mpacks: optional, a store without it is read whole) and :class:`PushStore`
  (storing push mpacks), :class:`StagedPushes` (receiving a push in pieces,
  staged until its id is known: optional); :class:`ObjectStore` is their union.

Object ids handed to an index are canonical (``sha256:<hex>``): the core
canonicalizes before it asks, and :class:`IndexBatch` canonicalizes on
construction. Object stores receive ids as the manifest wrote them.

Calls of one fetch on an index never overlap, unless the index declares that
they may by a true class attribute ``concurrent_calls`` (see
:func:`allows_concurrent_calls`): a hub may hand over one request-scoped session.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from typing import Protocol, runtime_checkable

from fetchcore.model import Commit, IndexBatch, Location, Snapshot


def allows_concurrent_calls(index: object) -> bool:
    """Whether ``index`` declares that calls of one fetch may overlap (``concurrent_calls``)."""
    return getattr(index, "concurrent_calls", False) is True


def retries_its_reads(store: object) -> bool:
    """Whether ``store`` declares that it retries its own transient read faults
    (``retries_reads``): the executor then makes one attempt per read and fails
    over, so that retry layers do not multiply."""
    return getattr(store, "retries_reads", False) is True


# ── the store ────────────────────────────────────────────────────────────────


@runtime_checkable
class FetchUpload(Protocol):
    """A fetch document being written. It becomes visible only at :meth:`commit`.

    The core calls :meth:`write` in order, then exactly one of :meth:`commit` or
    :meth:`abort`. After ``abort`` (or a failed ``commit``) nothing of the
    document is left in the store: no partial object, no temporary file, no
    incomplete multipart upload.
    """

    async def write(self, chunk: bytes) -> None:
        """Append ``chunk`` to the document (the store may upload it now or buffer it)."""
        ...

    async def commit(self) -> None:
        """Make the whole document visible under its id, sealed (see ``fetch_intact``)."""
        ...

    async def abort(self) -> None:
        """Drop everything written so far. Safe to call more than once."""
        ...


@runtime_checkable
class FetchStore(Protocol):
    """What a fetch needs of a store: read push mpacks and legacy keys, write fetch documents.

    Fetch documents live apart from push mpacks (on S3 under their own prefix):
    they are derived data that may expire, and an expired one is rebuilt.
    Ids are validated before any I/O: a malformed id raises
    :class:`~fetchcore.errors.InvalidRequestError`, so no key can leave its namespace.
    """

    async def get_object(self, object_id: str) -> bytes | None:
        """The decoded content under a legacy per-object key, or None."""
        ...

    async def get_mpack(self, mpack_id: str) -> bytes | None:
        """A whole push mpack, or None."""
        ...

    async def open_fetch(self, fetch_id: str) -> FetchUpload:
        """Start writing the fetch document ``fetch_id`` (replacing any stored one on commit)."""
        ...

    async def fetch_intact(self, fetch_id: str) -> bool | None:
        """Whether the fetch document is stored intact: its size and checksum are what
        was sealed when it was written.

        True: intact, safe to hand out again. False: missing, or damaged or replaced
        since it was written. None: this store cannot tell (the core then rebuilds
        and writes it). Answering must not download the document.
        """
        ...

    async def get_fetch(self, fetch_id: str) -> bytes | None:
        """A whole fetch document, or None."""
        ...

    async def presign_fetch(self, fetch_id: str, ttl_s: int) -> str | None:
        """A URL that downloads the fetch document for ``ttl_s`` seconds, or None if the
        store cannot make one."""
        ...


@runtime_checkable
class RangedReads(Protocol):
    """Byte ranges of push mpacks. Optional: a store without it has its mpacks read whole."""

    async def get_mpack_range(self, mpack_id: str, start: int, end: int) -> bytes | None:
        """Bytes ``[start, end)`` of an mpack with slicing semantics, or None if it is missing."""
        ...


@runtime_checkable
class PushStore(Protocol):
    """What an ingest needs of a store: put push mpacks."""

    async def put_mpack(self, mpack_id: str, data: bytes) -> None:
        """Store a push mpack. Idempotent; writing it again repairs a damaged copy."""
        ...

    async def has_mpack(self, mpack_id: str) -> bool | None:
        """Whether the mpack is stored; None when the store cannot tell without
        downloading it (then the caller acts as if it were not)."""
        ...


@runtime_checkable
class PushUpload(Protocol):
    """A push mpack being received in pieces, staged apart from the push mpacks.

    Its id (the sha256 of all its bytes) is known only once the last piece is in.
    The core calls :meth:`write` in order, then exactly one of :meth:`commit` or
    :meth:`abort`. Staged bytes are never readable as a push mpack: a fetch sees
    the mpack only after ``commit``. After ``abort`` (or a failed ``commit``)
    nothing staged is left: no staging object, no temporary file, no incomplete
    multipart upload.
    """

    async def write(self, chunk: bytes) -> None:
        """Append ``chunk`` to the staged bytes (the store may upload it now or buffer it)."""
        ...

    async def commit(self, mpack_id: str) -> None:
        """Make the staged bytes the push mpack ``mpack_id`` and remove the staging copy.

        The core has checked that ``mpack_id`` is the sha256 of exactly the bytes
        written. Where that mpack is stored already and the store can tell it is
        intact, the staged copy is simply dropped; otherwise it replaces the
        stored one (which repairs a damaged copy, as ``put_mpack`` does).
        """
        ...

    async def abort(self) -> None:
        """Drop everything staged so far. Safe to call more than once."""
        ...


@runtime_checkable
class StagedPushes(Protocol):
    """Receiving a push mpack in pieces. Optional: for a store without it, a push
    that arrives in pieces is joined in memory (within ``Policy.max_document_bytes``)
    and stored with ``put_mpack``."""

    async def open_push(self) -> PushUpload:
        """Start staging a push mpack whose id is not known yet."""
        ...

    async def sweep_staging(self, min_age_s: float) -> int:
        """Remove what crashed ingests left: staged pushes (and incomplete multipart
        uploads of them) begun at least ``min_age_s`` seconds ago (a store may
        measure from the last write instead, which only spares more). Returns how
        many were removed. Staging younger than that is left alone (an ingest may
        be running).

        Raises:
            InvalidRequestError: ``min_age_s`` is negative or not finite (nothing is touched).
            ObjectStoreError: the store failed.
        """
        ...


@runtime_checkable
class ObjectStore(FetchStore, RangedReads, PushStore, StagedPushes, Protocol):
    """Every method of a full object store: fetch, ranged reads, push, staged pushes,
    legacy keys, presign."""

    async def put_object(self, object_id: str, data: bytes) -> None:
        """Store content under a legacy per-object key."""
        ...

    async def presign_mpack(self, mpack_id: str, ttl_s: int) -> str | None:
        """A URL that downloads a push mpack for ``ttl_s`` seconds, or None if the store cannot."""
        ...


# ── the index ────────────────────────────────────────────────────────────────


@runtime_checkable
class FetchIndex(Protocol):
    """The read port: what a fetch asks of the index.

    Commits and snapshots are scoped to a repository; locations and cached
    content are stored once for all repositories.
    """

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

    async def find_cached(self, object_ids: Collection[str]) -> Mapping[str, bytes]:
        """Cached decoded content of the ids (canonical) that have some."""
        ...

    async def find_locations(self, object_ids: Collection[str]) -> Mapping[str, Sequence[Location]]:
        """Every known mpack location of the ids (canonical) that have one, in any order."""
        ...

    async def branch_heads(self, repo_id: str) -> Mapping[str, str]:
        """The repository's branch heads: branch name -> commit id."""
        ...


@runtime_checkable
class IngestIndex(Protocol):
    """The write port: what an ingest asks of the index."""

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


@runtime_checkable
class IndexRepo(FetchIndex, IngestIndex, Protocol):
    """The whole index: the read port and the write port."""
