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

A push handed over as ``bytes`` is parsed and verified whole, then stored with
``put_mpack``. A push that arrives in pieces (an async iterable of chunks: a
request body, a file read in pieces) is received by a
:class:`~fetchcore.receive.PushReceiver` (hashed, parsed, every blob verified
as it passes) while each chunk is staged in the store (``open_push``), so memory
does not grow with the push. The checks that need the whole document
(cycles, connectivity) run once it is complete, then the staged bytes become the
mpack (``commit``), then the index is recorded. Any failure on the way (a bad
document, a client that goes away, the store, cancellation, the size limit)
aborts the staging, shielded from a second cancellation: nothing is left and
nothing recorded. A store without staged pushes gets the chunks joined in
memory (within ``max_document_bytes``) and stored whole, as for ``bytes``.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable, Collection, Iterable
from typing import TypeVar

import attrs

from fetchcore import graph, ids, wire
from fetchcore.blob_check import verify_all
from fetchcore.errors import InvalidMPackError, PushTooLargeError
from fetchcore.events import IngestPhase, Observer
from fetchcore.model import IndexBatch, Location
from fetchcore.observation import IngestObservation
from fetchcore.observe import observer_or_default
from fetchcore.policy import Policy
from fetchcore.ports import IngestIndex, PushStore, PushUpload, StagedPushes
from fetchcore.receive import PushReceiver, ReceivedPush
from fetchcore.results import IngestResult
from fetchcore.validation import check_repo_id
from fetchcore.wire import PushDocument

T = TypeVar("T")
Ingest = Callable[[IngestObservation], Awaitable[IngestResult]]


Chunk = bytes | bytearray | memoryview
_THREADED_CHUNK_BYTES = 256 * 1024
"""Chunks at least this long are hashed and parsed in two worker threads, side by
side (the upload goes on meanwhile); shorter ones cost less inline than thread hops."""


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


async def _check_document(index: IngestIndex, repo_id: str, document: PushDocument) -> None:
    """The checks that need the whole document: no cycles, connected to *this* repository."""
    _refuse_cycles(document)
    await _check_connected(index, repo_id, document)


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
    mpack: Chunk | AsyncIterable[Chunk],
    policy: Policy = Policy(),
    observer: Observer | None = None,
) -> IngestResult:
    """Store a push mpack and index everything in it, atomically.

    Args:
        index: the index to record into.
        store: where the push mpack is stored.
        repo_id: the repository pushed to.
        mpack: the push document, as the client uploaded it: ``bytes``, or an async
            iterable of byte chunks (a request body, a file read in pieces), received
            in flat memory when the store stages pushes (:class:`StagedPushes`).
        policy: size limits and the content-cache threshold.
        observer: receives the ingest's events: its phases and its outcome
            (None: logging and OpenTelemetry).

    Returns:
        The mpack id, the counts of what the push held and how long each phase took.

    Raises:
        InvalidMPackError: malformed, over a limit, a blob that does not verify,
            or ids that are neither in the push nor in this repository
            (``missing_ids``). Nothing is recorded, nothing staged is left.
        PushTooLargeError: longer than ``Policy.max_push_bytes`` (an InvalidMPackError).
        StorageError: the store or the index failed (retry the ingest).
        Whatever the chunks' iterator raises (a client that went away), after
        the staging is removed.
    """
    check_repo_id(repo_id)
    if isinstance(mpack, AsyncIterable) and not isinstance(mpack, bytes | bytearray | memoryview):
        if isinstance(store, StagedPushes):
            return await _observed(
                observer,
                repo_id,
                None,
                _ingest_pieces(index, (store, store), repo_id, mpack, policy),
            )
        mpack = await _joined(mpack, policy)
    if not isinstance(mpack, bytes | bytearray | memoryview):
        raise InvalidMPackError(None, f"must be bytes, not {type(mpack).__name__}")
    data = bytes(mpack)
    if len(data) > policy.max_push_bytes:
        raise PushTooLargeError(policy.max_push_bytes)
    return await _observed(
        observer, repo_id, len(data), _ingest(index, store, repo_id, data, policy)
    )


async def _observed(
    observer: Observer | None, repo_id: str, size: int | None, ingest: Ingest
) -> IngestResult:
    """Run ``ingest`` under an observation (events, phases, outcome); its result timed."""
    with IngestObservation.start(
        observer_or_default(observer), repo_id=repo_id, mpack_bytes=size
    ) as seen:
        result = await ingest(seen)
        result = attrs.evolve(result, timings=seen.timings())
        seen.succeed(result)
        return result


async def _joined(chunks: AsyncIterable[Chunk], policy: Policy) -> bytes:
    """The chunks of a push joined in memory, for a store that cannot stage pushes."""
    limit = min(policy.max_push_bytes, policy.max_document_bytes)
    first, rest = await _first_pieces(chunks, limit)
    if rest is not None:
        raise PushTooLargeError(limit)
    return b"".join(first)


def _whole_push_limit(policy: Policy) -> int:
    """The longest push in pieces that is joined and ingested whole."""
    return min(policy.whole_push_bytes, policy.max_document_bytes, policy.max_push_bytes)


async def _first_pieces(
    chunks: AsyncIterable[Chunk], limit: int
) -> tuple[deque[bytes], AsyncIterator[Chunk] | None]:
    """The chunks while they add up to at most ``limit`` bytes, and the rest of the
    stream from the chunk that went past it (None: the push ended within the limit)."""
    iterator = aiter(chunks)
    first: deque[bytes] = deque()
    size = 0
    async for chunk in iterator:
        _check_chunk(chunk)
        if size + len(chunk) > limit:
            return first, _prepended(chunk, iterator)
        first.append(bytes(chunk))
        size += len(chunk)
    return first, None


async def _prepended(chunk: Chunk, rest: AsyncIterator[Chunk]) -> AsyncIterator[Chunk]:
    yield chunk
    async for later in rest:
        yield later


async def _replayed(first: deque[bytes], rest: AsyncIterator[Chunk]) -> AsyncIterator[Chunk]:
    """``first``, each chunk let go as it is handed on, then ``rest``."""
    while first:
        yield first.popleft()
    async for chunk in rest:
        yield chunk


def _check_chunk(chunk: object) -> None:
    if not isinstance(chunk, bytes | bytearray | memoryview):
        raise InvalidMPackError(None, f"a chunk must be bytes, not {type(chunk).__name__}")


def _ingest(
    index: IngestIndex, store: PushStore, repo_id: str, data: bytes, policy: Policy
) -> Ingest:
    async def run(seen: IngestObservation) -> IngestResult:
        with seen.phase(IngestPhase.PARSE):
            document = await asyncio.to_thread(wire.parse_push, data, policy)
            _refuse_cycles(document)
        # Independent work side by side: hashing (one long call, no GIL held), verifying
        # (one worker thread) and the connectivity queries (the index). The connect
        # phase is timed on its own, within the verify phase.
        with seen.phase(IngestPhase.VERIFY, blobs=len(document.blobs)):
            mpack_id, cached, _ = await asyncio.gather(
                asyncio.to_thread(ids.content_id, data),
                asyncio.to_thread(verify_all, data, document.blobs, policy),
                _timed(seen, IngestPhase.CONNECT, _check_connected(index, repo_id, document)),
            )
        # Always written, even when the key exists: the same id means the same bytes, so a
        # second write costs an upload and repairs a damaged copy; and an old copy that an
        # orphan sweep is about to delete is young again before the index points at it.
        with seen.phase(IngestPhase.STORE):
            building = asyncio.to_thread(_batch, document, mpack_id, len(data), cached)
            _, batch = await asyncio.gather(store.put_mpack(mpack_id, data), building)
        received = ReceivedPush(mpack_id, len(data), document, cached)
        return await _record(index, repo_id, received, batch, seen)

    return run


def _ingest_pieces(
    index: IngestIndex,
    stores: tuple[PushStore, StagedPushes],
    repo_id: str,
    chunks: AsyncIterable[Chunk],
    policy: Policy,
) -> Ingest:
    """A push in pieces: joined and ingested whole if it ends within the policy's
    ``whole_push_bytes``, else streamed from its first piece on. ``stores``: the
    one store, as each path sees it."""
    store, staged = stores

    async def run(seen: IngestObservation) -> IngestResult:
        with seen.phase(IngestPhase.RECEIVE):
            first, rest = await _first_pieces(chunks, _whole_push_limit(policy))
        if rest is None:
            data = b"".join(first)
            first.clear()
            seen.mpack_bytes = len(data)
            return await _ingest(index, store, repo_id, data, policy)(seen)
        streamed = _replayed(first, rest)
        return await _ingest_stream(index, staged, repo_id, streamed, policy)(seen)

    return run


def _ingest_stream(
    index: IngestIndex,
    store: StagedPushes,
    repo_id: str,
    chunks: AsyncIterable[Chunk],
    policy: Policy,
) -> Ingest:
    async def run(seen: IngestObservation) -> IngestResult:
        upload = await store.open_push()
        try:
            with seen.phase(IngestPhase.RECEIVE):
                received = await _receive(chunks, upload, PushReceiver(policy))
            seen.mpack_bytes = received.size
            # The batch is built (a worker thread) while the checks and the commit run.
            building = asyncio.ensure_future(asyncio.to_thread(_batch, *received.batch_parts()))
            try:
                await _check_and_commit(index, repo_id, received, upload, seen)
                batch = await building
            finally:
                building.cancel()
        except BaseException:
            await asyncio.shield(upload.abort())
            raise
        return await _record(index, repo_id, received, batch, seen)

    return run


async def _check_and_commit(
    index: IngestIndex,
    repo_id: str,
    received: ReceivedPush,
    upload: PushUpload,
    seen: IngestObservation,
) -> None:
    with seen.phase(IngestPhase.CONNECT, blobs=len(received.document.blobs)):
        await _check_document(index, repo_id, received.document)
    with seen.phase(IngestPhase.STORE):
        await upload.commit(received.mpack_id)


async def _receive(
    chunks: AsyncIterable[Chunk], upload: PushUpload, receiver: PushReceiver
) -> ReceivedPush:
    """Every chunk taken by the receiver and written to the staging upload, side by side."""
    async for chunk in chunks:
        _check_chunk(chunk)
        if not chunk:
            continue
        data = bytes(chunk)
        receiver.admit(len(data))
        if len(data) < _THREADED_CHUNK_BYTES:
            receiver.take(data)
            await upload.write(data)
        else:
            # Hashing releases the GIL: it runs beside the parser, not before it.
            await _all(
                asyncio.to_thread(receiver.hash, data),
                asyncio.to_thread(receiver.parse, data),
                upload.write(data),
            )
    return receiver.finish()


async def _all(*works: Awaitable[None]) -> None:
    """Await every one; raise the first failure only once none runs any more."""
    outcomes = await asyncio.gather(*works, return_exceptions=True)
    for outcome in outcomes:
        if isinstance(outcome, BaseException):
            raise outcome


async def _record(
    index: IngestIndex,
    repo_id: str,
    received: ReceivedPush,
    batch: IndexBatch,
    seen: IngestObservation,
) -> IngestResult:
    with seen.phase(IngestPhase.RECORD):
        await index.record(repo_id, batch)
    document = received.document
    return IngestResult(
        mpack_id=received.mpack_id,
        commit_count=len({c.commit_id for c in document.commits}),
        snapshot_count=len({s.snapshot_id for s in document.snapshots}),
        blob_count=len(batch.locations),
        uploaded=True,
        commit_ids=tuple(dict.fromkeys(c.commit_id for c in document.commits)),
        branch_heads=dict(document.branch_heads),
        size_bytes=received.size,
    )


async def _timed(seen: IngestObservation, phase: IngestPhase, work: Awaitable[T]) -> T:
    with seen.phase(phase):
        return await work
