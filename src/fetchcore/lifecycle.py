"""Lifecycle: forgetting a repository, and sweeping push mpacks nothing references.

Theory of operation. Deleting a repository removes its commits, snapshots,
object membership and branch heads from the index in one transaction. Objects
and their locations are shared by all repositories (content-addressed), so an
object's locations and cached content go only when no other repository is a
member of it any more. Push mpacks stay in the store: they may hold objects of
other repositories.

A push mpack is an orphan when no index location points into it: every
repository that referenced it was deleted, or an ingest uploaded it and then
failed before recording (SPEC §5.4 leaves such mpacks on purpose). Sweeping is
two steps, so an operator can look before anything goes: :func:`find_orphan_mpacks`
lists them (a dry run), :func:`delete_orphan_mpacks` deletes them.

Concurrency. An ingest uploads its mpack first and records the index batch
after; in between, the mpack is unreferenced but must not be deleted. So only
mpacks stored at least ``min_age_s`` ago are orphans (default
:data:`DEFAULT_MIN_AGE_S`, one day: far longer than any ingest takes between
upload and record). Deletion asks the index again, right before deleting, which
candidates are still unreferenced. One window remains, and it is the ingest's
to close: an ingest that finds its mpack already stored (an old orphan) skips the
upload; if a sweep deletes that mpack before the ingest records, the new
locations point at nothing. Re-ingesting the push repairs it (the upload runs
again because the mpack is missing).

Staging. A push received in pieces is staged apart from the push mpacks until
its id is known (:class:`~fetchcore.ports.StagedPushes`). An ingest that
crashes leaves its staging behind (a staging object or file, an incomplete
multipart upload): :func:`sweep_staging` removes what was begun at least
``min_age_s`` ago (default :data:`DEFAULT_STAGING_AGE_S`, one day: far longer
than any ingest), and leaves younger staging alone, since its ingest may still run.

These functions call only the ports below; they do no I/O of their own.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import AsyncIterator, Collection, Sequence
from typing import Protocol, runtime_checkable

import attrs

from fetchcore.errors import InvalidRequestError
from fetchcore.memo import FetchMemo
from fetchcore.ports import StagedPushes
from fetchcore.validation import check_repo_id

DEFAULT_MIN_AGE_S = 24 * 3600.0
"""An mpack younger than this is never an orphan: its ingest may not have recorded yet."""

DEFAULT_STAGING_AGE_S = 24 * 3600.0
"""Staging younger than this is never swept: its ingest may still be running."""

_REFERENCE_BATCH = 1_000
"""Mpack ids asked about in one index call while sweeping."""


@attrs.frozen
class StoredMPack:
    """A push mpack as the store lists it: its id, size, and when it was stored (UTC)."""

    mpack_id: str
    size: int
    stored_at: dt.datetime

    def age_s(self, now: dt.datetime) -> float:
        return (now - self.stored_at).total_seconds()


@attrs.frozen
class RepositoryDeletion:
    """What deleting a repository removed from the index (counts of rows)."""

    repo_id: str
    commits: int
    snapshots: int
    branch_heads: int
    objects: int
    """Objects the repository was a member of."""
    released_objects: int
    """Of those, objects no other repository has: their locations and cache went too."""


@runtime_checkable
class IndexLifecycle(Protocol):
    """What lifecycle operations ask of an index (apart from the fetch and ingest ports)."""

    async def delete_repository(self, repo_id: str) -> RepositoryDeletion:
        """Delete the repository's commits, snapshots, membership and heads, atomically.

        Locations and cached content of objects that no other repository is a
        member of are deleted with them. An unknown repository deletes nothing.
        """
        ...

    async def referenced_mpacks(self, mpack_ids: Collection[str]) -> Collection[str]:
        """The ids among ``mpack_ids`` that some location points into."""
        ...


@runtime_checkable
class StoreLifecycle(Protocol):
    """What sweeping asks of an object store (apart from the fetch and push ports)."""

    def list_mpacks(self) -> AsyncIterator[StoredMPack]:
        """Every push mpack stored, in any order (fetch documents are not listed)."""
        ...

    async def delete_mpack(self, mpack_id: str) -> None:
        """Delete a push mpack; deleting a missing one is not an error."""
        ...


async def delete_repository(
    index: IndexLifecycle, repo_id: str, *, memo: FetchMemo | None = None
) -> RepositoryDeletion:
    """Forget ``repo_id``: its commits, snapshots, object membership and branch heads.

    Shared locations and cached content stay while another repository is a
    member of the object. Push mpacks stay in the store; :func:`delete_orphan_mpacks`
    removes the ones no repository references any more.

    Args:
        index: the index.
        repo_id: the repository; an unknown one deletes nothing.
        memo: the hub's :class:`~fetchcore.memo.FetchMemo`, whose entries of
            ``repo_id`` are dropped (after the index deleted, so no fetch in
            between can remember the old commits again for long: a hit checks them).

    Returns:
        What was deleted.

    Raises:
        InvalidRequestError: ``repo_id`` is not a repository id.
        IndexRepoError: the index failed (nothing was deleted).
    """
    deletion = await index.delete_repository(check_repo_id(repo_id))
    if memo is not None:
        memo.forget(repo_id)
    return deletion


async def find_orphan_mpacks(
    index: IndexLifecycle,
    store: StoreLifecycle,
    *,
    min_age_s: float = DEFAULT_MIN_AGE_S,
    now: dt.datetime | None = None,
) -> Sequence[StoredMPack]:
    """The push mpacks no index location points into, stored at least ``min_age_s`` ago.

    A dry run: nothing is deleted.

    Args:
        index: the index whose locations count as references.
        store: the store whose push mpacks are listed.
        min_age_s: an mpack stored less than this many seconds before ``now``
            is never an orphan (its ingest may not have recorded yet).
        now: the time to measure ages against (default: the current UTC time).

    Returns:
        The orphans, ordered by id.

    Raises:
        InvalidRequestError: ``min_age_s`` is negative or not finite.
        IndexRepoError, ObjectStoreError: the index or the store failed.
    """
    cutoff = age_cutoff(min_age_s, now)
    orphans: list[StoredMPack] = []
    batch: list[StoredMPack] = []
    async for stored in store.list_mpacks():
        if stored.stored_at <= cutoff:
            batch.append(stored)
        if len(batch) == _REFERENCE_BATCH:
            orphans += await _unreferenced(index, batch)
            batch = []
    orphans += await _unreferenced(index, batch)
    return sorted(orphans, key=lambda stored: stored.mpack_id)


async def delete_orphan_mpacks(
    index: IndexLifecycle,
    store: StoreLifecycle,
    *,
    min_age_s: float = DEFAULT_MIN_AGE_S,
    now: dt.datetime | None = None,
) -> Sequence[StoredMPack]:
    """Delete what :func:`find_orphan_mpacks` finds, asking the index again just before.

    Args and Raises: as :func:`find_orphan_mpacks`.

    Returns:
        The mpacks deleted, ordered by id.
    """
    candidates = await find_orphan_mpacks(index, store, min_age_s=min_age_s, now=now)
    deleted: list[StoredMPack] = []
    for start in range(0, len(candidates), _REFERENCE_BATCH):
        # An ingest may have recorded a reference since the listing: ask again.
        still_orphans = await _unreferenced(index, candidates[start : start + _REFERENCE_BATCH])
        for stored in still_orphans:
            await store.delete_mpack(stored.mpack_id)
        deleted += still_orphans
    return deleted


async def sweep_staging(store: StagedPushes, *, min_age_s: float = DEFAULT_STAGING_AGE_S) -> int:
    """Remove the staged pushes crashed ingests left, begun at least ``min_age_s`` ago.

    Args:
        store: the store whose staging is swept.
        min_age_s: staging younger than this many seconds is left alone (an
            ingest may still be writing it).

    Returns:
        How many staged pushes (and incomplete multipart uploads) were removed.

    Raises:
        InvalidRequestError: ``min_age_s`` is negative or not finite (nothing is touched).
        ObjectStoreError: the store failed.
    """
    age_cutoff(min_age_s)  # refuse a bad age before the store is asked
    return await store.sweep_staging(min_age_s)


def age_cutoff(min_age_s: float, now: dt.datetime | None = None) -> dt.datetime:
    """The latest time something may have been stored to be at least ``min_age_s`` old.

    Args:
        min_age_s: the age, in seconds.
        now: the time to measure against (default: the current UTC time).

    Returns:
        ``now - min_age_s``, an aware UTC datetime.

    Raises:
        InvalidRequestError: ``min_age_s`` is negative or not finite, or ``now`` is naive.
    """
    valid = isinstance(min_age_s, int | float) and not isinstance(min_age_s, bool)
    if not valid or not math.isfinite(min_age_s) or min_age_s < 0:
        raise InvalidRequestError(f"min_age_s must be a finite number >= 0, not {min_age_s!r}")
    if now is not None and now.tzinfo is None:
        raise InvalidRequestError("now must be an aware datetime (UTC)")
    return (now or dt.datetime.now(dt.UTC)) - dt.timedelta(seconds=min_age_s)


async def _unreferenced(index: IndexLifecycle, stored: Sequence[StoredMPack]) -> list[StoredMPack]:
    if not stored:
        return []
    referenced = set(await index.referenced_mpacks([s.mpack_id for s in stored]))
    return [s for s in stored if s.mpack_id not in referenced]
