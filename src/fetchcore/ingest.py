"""ingest_push: accept a client's push mpack into the store and the index.

The order of work is what makes the guarantees:
1. parse under the policy's limits, decode and verify every blob, and check
   that the push is connected to *this* repository; any failure raises
   InvalidMPackError and nothing is written;
2. store the push mpack (written again when the store has it already: same
   id, same bytes, and a damaged copy is repaired);
3. record one atomic IndexBatch: commits, snapshots, a located span for every
   blob, small blobs into the content cache, branch heads.
A crash between 2 and 3 leaves an unreferenced mpack, never an index row that
points at nothing; ingesting the same mpack again then completes the job.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Collection, Iterable, Sequence
from typing import TypeVar

import attrs

from fetchcore import content, graph, ids, wire
from fetchcore.errors import InvalidMPackError
from fetchcore.events import IngestPhase, Observer
from fetchcore.model import IndexBatch, Location
from fetchcore.observation import IngestObservation
from fetchcore.observe import observer_or_default
from fetchcore.policy import Policy
from fetchcore.ports import IngestIndex, PushStore
from fetchcore.results import IngestResult
from fetchcore.validation import check_repo_id
from fetchcore.wire import BlobEntry, PushDocument

T = TypeVar("T")


def _verify_blobs(
    data: bytes, blobs: Sequence[BlobEntry], policy: Policy
) -> list[tuple[str, bytes]]:
    """Decode and verify every blob; return the ones small enough for the cache.

    One thread does it all: threads contending for the GIL over thousands of
    small blobs ran twice as slow.
    """
    view = memoryview(data)
    budget = content.DecodeBudget(policy.max_push_decoded_bytes)
    cacheable: list[tuple[str, bytes]] = []
    for index, blob in enumerate(blobs):
        if (cached := _verify_blob(view, index, blob, budget, policy)) is not None:
            cacheable.append((ids.canonical(blob.object_id), cached))
    return cacheable


def _verify_blob(
    view: memoryview, index: int, blob: BlobEntry, budget: content.DecodeBudget, policy: Policy
) -> bytes | None:
    """The blob's content if the cache takes it. Its own function so that one decoded
    blob is let go before the next is decoded (peak memory: one blob, not two)."""
    stored = view[blob.offset : blob.end]
    try:
        decoded = budget.decode_verified(
            blob.object_id, stored, blob.encoding, policy.max_blob_bytes
        )
    except content.ContentError as error:
        raise InvalidMPackError(f"blobs[{index}]", str(error)) from None
    cacheable = policy.cache_max_bytes > 0 and len(decoded) <= policy.cache_max_bytes
    return decoded if cacheable else None


def _refuse_cycles(document: PushDocument) -> None:
    """Commits of a push that are their own ancestors (cycles can only close inside a
    push: a commit already in the repository cannot name a new one as its parent)."""
    parents_of = {commit.commit_id: commit.parent_ids for commit in document.commits}
    if cycle := graph.find_cycle(parents_of):
        raise InvalidMPackError("commits", "commits are their own ancestors", ids=cycle)


def _refuse_missing(
    referenced: Collection[str], found: Iterable[str], entry: str, what: str
) -> None:
    missing = set(referenced) - set(found)
    if missing:
        raise InvalidMPackError(
            entry, f"{what} neither in the push nor in the repository", missing_ids=missing
        )


def _outside_objects(document: PushDocument) -> set[str]:
    manifests = {ids.canonical(o) for s in document.snapshots for o in s.object_ids}
    return manifests - {ids.canonical(blob.object_id) for blob in document.blobs}


def _outside_snapshots(document: PushDocument) -> set[str]:
    referenced = {commit.snapshot_id for commit in document.commits}
    return referenced - {snapshot.snapshot_id for snapshot in document.snapshots}


def _outside_commits(document: PushDocument) -> set[str]:
    referenced = {parent for commit in document.commits for parent in commit.parent_ids}
    referenced.update(document.branch_heads.values())
    return referenced - {commit.commit_id for commit in document.commits}


async def _check_connected(index: IngestIndex, repo_id: str, document: PushDocument) -> None:
    """Every id the push refers to is in the push or already in *this* repository."""
    if objects := _outside_objects(document):
        found_objects = await index.known_objects(repo_id, objects)
        _refuse_missing(objects, found_objects, "snapshots", "manifest objects")
    if snapshot_ids := _outside_snapshots(document):
        snapshots = await index.load_snapshots(repo_id, snapshot_ids)
        found_snapshots = (snapshot.snapshot_id for snapshot in snapshots)
        _refuse_missing(snapshot_ids, found_snapshots, "commits", "snapshots")
    if commit_ids := _outside_commits(document):
        commits = await index.load_commits(repo_id, commit_ids)
        found_commits = (commit.commit_id for commit in commits)
        _refuse_missing(commit_ids, found_commits, "commits", "parent or branch-head commits")


def _batch(
    document: PushDocument, mpack_id: str, mpack_size: int, cached: list[tuple[str, bytes]]
) -> IndexBatch:
    locations: dict[str, Location] = {}
    for blob in document.blobs:
        location = Location(mpack_id, blob.offset, blob.length, blob.encoding, mpack_size)
        locations.setdefault(ids.canonical(blob.object_id), location)
    return IndexBatch(
        commits=document.commits,
        snapshots=document.snapshots,
        locations=list(locations.items()),
        cached=cached,
        branch_heads=document.branch_heads,
    )


async def ingest_push(
    index: IngestIndex,
    store: PushStore,
    *,
    repo_id: str,
    mpack: bytes,
    policy: Policy = Policy(),
    observer: Observer | None = None,
) -> IngestResult:
    """Store a push mpack and index everything in it, atomically.

    Args:
        index: the index to record into.
        store: where the push mpack is stored.
        repo_id: the repository pushed to.
        mpack: the push document, as the client uploaded it.
        policy: size limits and the content-cache threshold.
        observer: receives the ingest's events: its phases and its outcome
            (None: logging and OpenTelemetry).

    Returns:
        The mpack id, the counts of what the push held and how long each phase took.

    Raises:
        InvalidMPackError: malformed, over a limit, a blob that does not verify,
            or ids that are neither in the push nor in this repository
            (``missing_ids``). Nothing is written.
        StorageError: the store or the index failed (retry the ingest).
    """
    check_repo_id(repo_id)
    if not isinstance(mpack, bytes | bytearray | memoryview):
        raise InvalidMPackError(None, f"must be bytes, not {type(mpack).__name__}")
    data = bytes(mpack)
    with IngestObservation.start(
        observer_or_default(observer), repo_id=repo_id, mpack_bytes=len(data)
    ) as seen:
        result = await _ingest(index, store, repo_id, data, policy, seen)
        result = attrs.evolve(result, timings=seen.timings())
        seen.succeed(result)
        return result


async def _ingest(
    index: IngestIndex,
    store: PushStore,
    repo_id: str,
    data: bytes,
    policy: Policy,
    seen: IngestObservation,
) -> IngestResult:
    with seen.phase(IngestPhase.PARSE):
        document = await asyncio.to_thread(wire.parse_push, data, policy)
        _refuse_cycles(document)
    # Independent work side by side: hashing (one long call, no GIL held), verifying
    # (one worker thread) and the connectivity queries (the index). The connect
    # phase is timed on its own, within the verify phase.
    with seen.phase(IngestPhase.VERIFY, blobs=len(document.blobs)):
        mpack_id, cached, _ = await asyncio.gather(
            asyncio.to_thread(ids.content_id, data),
            asyncio.to_thread(_verify_blobs, data, document.blobs, policy),
            _timed(seen, IngestPhase.CONNECT, _check_connected(index, repo_id, document)),
        )
    # Always written, even when the key exists: the same id means the same bytes, so a
    # second write costs an upload and repairs a damaged copy; and an old copy that an
    # orphan sweep is about to delete is young again before the index points at it.
    with seen.phase(IngestPhase.STORE):
        building = asyncio.to_thread(_batch, document, mpack_id, len(data), cached)
        _, batch = await asyncio.gather(store.put_mpack(mpack_id, data), building)
    with seen.phase(IngestPhase.RECORD):
        await index.record(repo_id, batch)
    return IngestResult(
        mpack_id=mpack_id,
        commit_count=len({c.commit_id for c in document.commits}),
        snapshot_count=len({s.snapshot_id for s in document.snapshots}),
        blob_count=len(batch.locations),
        uploaded=True,
    )


async def _timed(seen: IngestObservation, phase: IngestPhase, work: Awaitable[T]) -> T:
    with seen.phase(phase):
        return await work
