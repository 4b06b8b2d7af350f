"""serve_fetch: answer a client's want/have with one verified fetch document.

The order of work is what makes the guarantees:
1. resolve the commits, their snapshots and the branch heads (UnknownCommitError
   for wants outside the repository), and compute the needed blobs: the
   manifests of the snapshots sent, minus the manifests of the have commits;
2. compute the fetch id from that content alone (:mod:`fetchcore.fetch_id`):
   if the store holds that document intact, presign it and stop, reading no
   push mpack; identical requests in flight in this process share one
   resolution and one build. With a :class:`~fetchcore.memo.FetchMemo`, a
   request seen before skips step 1: the remembered hash is finished with
   today's branch heads, once the want and have commits are found unchanged;
3. look up cache entries and locations and apply the not-indexed gate, all
   before any storage request;
4. stream the document into the store's upload, blob by blob in the order the
   blobs are verified; commit only when every blob is in. Any failure or
   cancellation aborts the upload: nothing half-written becomes visible.

The index is called one call at a time unless it declares ``concurrent_calls``
(a hub may hand over one request-scoped session), and ``Policy.deadline_s``
covers the index calls as well as the reads.
"""

from __future__ import annotations

import asyncio
from collections.abc import Collection, Iterable, Mapping, Sequence

import attrs

from fetchcore import ids, wire
from fetchcore.document import DocumentWriter
from fetchcore.errors import (
    FetchDeadlineError,
    IndexIntegrityError,
    InvalidRequestError,
    ObjectUnavailableError,
    StorageError,
)
from fetchcore.events import FetchPhase, Observer
from fetchcore.executor import DocumentPoisoned, NeededBlobs, check_indexed, gather_blobs
from fetchcore.fetch_id import ContentDigest, content_digest
from fetchcore.graph import parents_first
from fetchcore.limiter import FetchLimiter
from fetchcore.memo import FetchKey, FetchMemo, Resolution
from fetchcore.model import ENCODINGS, Commit, Location, Snapshot
from fetchcore.observation import FetchObservation
from fetchcore.observe import observer_or_default
from fetchcore.planner import plan_fetch
from fetchcore.policy import Policy
from fetchcore.ports import FetchIndex, FetchStore, allows_concurrent_calls
from fetchcore.progress import ProgressCallback, ProgressSink, ThrottledProgress
from fetchcore.results import FetchPreview, FetchResult, FetchStats
from fetchcore.single_flight import SingleFlight
from fetchcore.validation import check_ids, check_repo_id


@attrs.frozen
class _Content:
    """What a fetch sends: commits parents first, their snapshots, the needed blobs, the heads."""

    commits: list[Commit]
    snapshots: list[Snapshot]
    as_written: dict[str, str]
    """canonical id -> id as the manifest wrote it, for every blob sent."""
    branch_heads: Mapping[str, str]
    head: _PackedHead
    """The commits and snapshots as the document encodes them (the fetch id hashes them)."""
    digest: ContentDigest
    """The fetch id's hash of all of the above but the branch heads."""
    endpoints: bytes | None
    """The want and have commits packed (:func:`_packed_endpoints`) when every one was
    known, for a :class:`FetchMemo`; None when not asked for or some have was unknown."""

    @property
    def document_id(self) -> str:
        return self.digest.fetch_id(self.branch_heads)

    def resolution(self) -> Resolution | None:
        """What a memo keeps of this content, or None if it must not be remembered."""
        if self.endpoints is None:
            return None
        return Resolution(
            self.digest,
            len(self.commits),
            len(self.snapshots),
            len(self.as_written),
            self.endpoints,
        )


KEPT_HEAD_ENTRIES = 200_000
"""A document head (commits and snapshots packed) of up to this many commits and
manifest entries (about 18 MiB packed) is packed once and kept from the fetch id's
hash to the write; a larger one (a million-entry manifest packs to about 90 MiB) is
packed again as it is written: memory stays flat in the fetch's size for the price
of packing twice."""


@attrs.frozen
class _PackedHead:
    """The commits and snapshots of a document, as the document encodes them."""

    commits: Sequence[Commit]
    snapshots: Sequence[Snapshot]
    kept: tuple[wire.Packed, wire.Packed] | None
    """The packed commits and snapshots, when small enough to keep."""

    @classmethod
    def of(cls, commits: Sequence[Commit], snapshots: Sequence[Snapshot]) -> _PackedHead:
        entries = len(commits) + sum(len(snapshot.manifest) for snapshot in snapshots)
        if entries > KEPT_HEAD_ENTRIES:
            return cls(commits, snapshots, None)
        return cls(commits, snapshots, (wire.pack_commits(commits), wire.pack_snapshots(snapshots)))

    def pieces(self) -> tuple[Iterable[bytes], Iterable[bytes]]:
        """The packed commits and the packed snapshots, each in pieces of about a MiB."""
        if self.kept is not None:
            return self.kept
        return wire.iter_packed_commits(self.commits), wire.iter_packed_snapshots(self.snapshots)


def _as_written(object_ids: Iterable[str]) -> dict[str, str]:
    """canonical id -> id as written; where the manifests write one id two ways, the smallest."""
    as_written: dict[str, str] = {}
    for object_id in sorted(object_ids):
        as_written.setdefault(ids.canonical(object_id), object_id)
    return as_written


def _manifest_ids(snapshots: Iterable[Snapshot]) -> set[str]:
    return {object_id for snapshot in snapshots for object_id in snapshot.object_ids}


def _packed_endpoints(commits: Iterable[Commit]) -> bytes:
    """Commits as the index returned them, packed in id order: equal bytes, equal commits."""
    return b"".join(wire.pack_commits(sorted(commits, key=lambda c: c.commit_id)))


async def _snapshots_of(
    index: FetchIndex, repo_id: str, commits: Sequence[Commit]
) -> dict[str, Snapshot]:
    wanted = {commit.snapshot_id for commit in commits}
    found = {s.snapshot_id: s for s in await index.load_snapshots(repo_id, wanted)}
    missing = sorted(wanted - found.keys())
    if missing:
        raise IndexIntegrityError(f"the index holds commits without their snapshots: {missing[:5]}")
    return found


async def _endpoints(
    index: FetchIndex, key: FetchKey, remember: bool
) -> tuple[list[Commit], bytes | None]:
    """The have commits the repository knows, and (with ``remember``) the want and have
    commits packed for a memo when every one of them is known."""
    if not remember:
        return (list(await index.load_commits(key.repo_id, key.have)) if key.have else []), None
    known = await index.load_commits(key.repo_id, sorted(key.endpoint_ids))
    have_commits = [commit for commit in known if commit.commit_id in key.have]
    all_known = {commit.commit_id for commit in known} >= key.endpoint_ids
    return have_commits, _packed_endpoints(known) if all_known else None


async def _content_to_send(index: FetchIndex, key: FetchKey, *, remember: bool = False) -> _Content:
    commits = parents_first(await index.resolve_commits(key.repo_id, key.want, key.have))
    have_commits, endpoints = await _endpoints(index, key, remember)
    snapshots = await _snapshots_of(index, key.repo_id, [*commits, *have_commits])
    sent = [snapshots[s] for s in sorted({commit.snapshot_id for commit in commits})]
    present = _manifest_ids(snapshots[commit.snapshot_id] for commit in have_commits)
    present_canonical = {ids.canonical(object_id) for object_id in present}
    as_written = {
        canonical: written
        for canonical, written in _as_written(_manifest_ids(sent)).items()
        if canonical not in present_canonical
    }
    heads = await index.branch_heads(key.repo_id)
    head = _PackedHead.of(commits, sent)
    digest = content_digest(*head.pieces(), as_written.values(), key.encodings)
    return _Content(commits, sent, as_written, heads, head, digest, endpoints)


_RESOLVING: SingleFlight[_Content] = SingleFlight()
"""Resolutions in flight in this process, keyed by event loop, memo (or index) and request."""


async def _resolve(index: FetchIndex, key: FetchKey, memo: FetchMemo | None) -> _Content:
    """The content of ``key``; identical requests in flight share one resolution (on the
    same memo, or without one on the same index), and a memo remembers it."""
    scope = ("memo", id(memo)) if memo is not None else ("index", id(index))
    flight = (id(asyncio.get_running_loop()), scope, key)
    remember = memo is not None
    content, _ = await _RESOLVING.run(
        flight, lambda: _content_to_send(index, key, remember=remember)
    )
    resolution = content.resolution()
    if memo is not None and resolution is not None:
        memo.remember(key, resolution)
    return content


async def _recall(
    index: FetchIndex, memo: FetchMemo, key: FetchKey
) -> tuple[Resolution, Mapping[str, str]] | None:
    """The memo's resolution of ``key`` and today's branch heads, if the index still
    holds the want and have commits it was made from, unchanged."""
    resolution = memo.get(key)
    if resolution is None:
        return None
    endpoints = await index.load_commits(key.repo_id, sorted(key.endpoint_ids))
    if _packed_endpoints(endpoints) != resolution.endpoints:
        memo.discard(key)
        return None
    return resolution, await index.branch_heads(key.repo_id)


@attrs.frozen
class _Sources:
    """Where the needed blobs can come from: cache entries and mpack locations."""

    cache: Mapping[str, bytes]
    locations: Mapping[str, Sequence[Location]]


async def _find_sources(index: FetchIndex, as_written: Mapping[str, str]) -> _Sources:
    """Cache entries and locations of the needed blobs: side by side only if the index allows."""
    needed = list(as_written)
    if not needed:
        return _Sources({}, {})
    if allows_concurrent_calls(index):
        cache, locations = await asyncio.gather(
            index.find_cached(needed), index.find_locations(needed)
        )
    else:
        cache = await index.find_cached(needed)
        locations = await index.find_locations(needed)
    return _Sources(cache, locations)


def _accept_encodings(accept_encodings: Collection[str]) -> frozenset[str]:
    encodings = frozenset(check_ids("accept_encodings", accept_encodings, allow_empty=False))
    if "identity" not in encodings or not encodings <= ENCODINGS:
        raise InvalidRequestError(
            f"accept_encodings must include 'identity' and only name {sorted(ENCODINGS)}"
        )
    return encodings


_BUILDS: SingleFlight[FetchResult] = SingleFlight()
"""The builds in flight in this process, keyed by event loop, store and fetch id."""


async def serve_fetch(
    index: FetchIndex,
    store: FetchStore,
    *,
    repo_id: str,
    want: Collection[str],
    have: Collection[str] = (),
    policy: Policy = Policy(),
    accept_encodings: Collection[str] = ("identity",),
    limiter: FetchLimiter | None = None,
    memo: FetchMemo | None = None,
    observer: Observer | None = None,
    progress: ProgressCallback | None = None,
) -> FetchResult:
    """Serve the fetch document for ``want`` minus ``have``: reuse it if stored, else build it.

    Args:
        index: the read port of the index (commits, snapshots, locations, cache).
        store: where push mpacks are read and the fetch document is written.
        repo_id: the repository asked for.
        want: commit ids the client wants (non-empty, all of this repository).
        have: commit ids the client has; unknown ones are ignored.
        policy: reading, resilience and size limits; ``deadline_s`` covers it all.
        accept_encodings: ``("identity",)`` (default) serves decoded content;
            adding ``"zstd"`` passes zstd-stored blobs through (still verified).
        limiter: caps on builds and bytes in flight that the hub shares across
            requests (None: this fetch alone is bounded by ``policy``).
        memo: resolved fetches that the hub shares across requests on this
            index (:class:`~fetchcore.memo.FetchMemo`): a repeated fetch then
            skips resolving its content (None: every call resolves it).
        observer: receives the fetch's events: phases, each storage read and
            retry, legacy fallbacks, the outcome (None: logging and OpenTelemetry,
            see :func:`fetchcore.observe.default_observer`).
        progress: called with blobs and bytes done of the total as reads land in
            the document, throttled (about 10 calls a second or one per 1 %); not
            called when the stored document is reused.

    Returns:
        The document's id and presigned URL, its counts, whether it was reused,
        what was read and how long each phase took (``stats.timings``).

    Raises:
        InvalidRequestError: empty ``want`` or malformed arguments.
        UnknownCommitError: wanted commits that are not in this repository.
        FetchNotIndexedError: needed blobs not indexed yet (before any storage request).
        ObjectUnavailableError: blobs that no source could serve verified.
        FetchDeadlineError: the fetch ran past ``policy.deadline_s``.
        IndexIntegrityError: the index holds a commit without its snapshot.
        StorageError: the index or the store failed for good.
    """
    check_repo_id(repo_id)
    want = check_ids("want", want, allow_empty=False)
    have = check_ids("have", have, allow_empty=True)
    encodings = _accept_encodings(accept_encodings)
    throttled = None if progress is None else ThrottledProgress(progress)
    with FetchObservation.start(
        observer_or_default(observer), repo_id=repo_id, want_count=len(want), have_count=len(have)
    ) as seen:
        try:
            async with asyncio.timeout(policy.deadline_s):
                key = FetchKey.of(repo_id, want, have, encodings)
                result = await _serve(index, store, key, policy, limiter, memo, seen, throttled)
        except TimeoutError:
            raise FetchDeadlineError(
                f"fetch ran past its deadline of {policy.deadline_s} s"
            ) from None
        result = attrs.evolve(result, stats=attrs.evolve(result.stats, timings=seen.timings()))
        seen.succeed(result)
        return result


async def _serve(
    index: FetchIndex,
    store: FetchStore,
    key: FetchKey,
    policy: Policy,
    limiter: FetchLimiter | None,
    memo: FetchMemo | None,
    seen: FetchObservation,
    progress: ThrottledProgress | None,
) -> FetchResult:
    if memo is not None and (
        reused := await _reuse_remembered(index, store, key, policy, memo, seen)
    ):
        return reused
    with seen.phase(FetchPhase.RESOLVE) as found:
        content = await _resolve(index, key, memo)
        found.update(commits=len(content.commits), blobs=len(content.as_written))
    document_id = content.document_id
    build = _Build(
        index, store, content, document_id, policy, "zstd" in key.encodings, limiter, seen, progress
    )
    flight = (id(asyncio.get_running_loop()), id(store), document_id)
    result, shared = await _BUILDS.run(flight, build.run)
    if shared:
        # The builder's document, none of its reads: this call read nothing.
        return attrs.evolve(result, uploaded=False, reused=True, size_bytes=0, stats=FetchStats())
    return result


async def _reuse_remembered(
    index: FetchIndex,
    store: FetchStore,
    key: FetchKey,
    policy: Policy,
    memo: FetchMemo,
    seen: FetchObservation,
) -> FetchResult | None:
    """The stored document, found through the memo without resolving the content;
    None when the memo does not know the request or the document is not intact."""
    with seen.phase(FetchPhase.RESOLVE) as found:
        recalled = await _recall(index, memo, key)
        found["remembered"] = recalled is not None
    if recalled is None:
        return None
    resolution, heads = recalled
    document_id = resolution.digest.fetch_id(heads)
    with seen.phase(FetchPhase.LOOKUP) as found:
        intact = await _intact(store, document_id)
        found["reused"] = intact
    if not intact:
        return None
    with seen.phase(FetchPhase.UPLOAD):
        url = await store.presign_fetch(document_id, policy.presign_ttl_s)
    return FetchResult(
        mpack_id=document_id,
        mpack_url=url,
        commit_count=resolution.commit_count,
        snapshot_count=resolution.snapshot_count,
        blob_count=resolution.blob_count,
        size_bytes=0,
        uploaded=False,
        reused=True,
        stats=FetchStats(),
    )


async def _intact(store: FetchStore, document_id: str) -> bool:
    """Whether the stored document may be handed out; a store that fails to say
    is treated as one that cannot tell: the document is built again."""
    try:
        return await store.fetch_intact(document_id) is True
    except StorageError:
        return False


def _sizes(as_written: Collection[str], sources: _Sources) -> dict[str, int]:
    """Each needed blob's length as the index knows it, for progress: its cache
    entry's, else its first location's stored length (0 when not recorded)."""
    sizes: dict[str, int] = {}
    for object_id in as_written:
        if object_id in sources.cache:
            sizes[object_id] = len(sources.cache[object_id])
        else:
            first = next(iter(sources.locations.get(object_id, ())), None)
            sizes[object_id] = (first.length or 0) if first is not None else 0
    return sizes


@attrs.frozen
class _Build:
    """Reuse the stored document if it is intact, else build it."""

    index: FetchIndex
    store: FetchStore
    content: _Content
    document_id: str
    policy: Policy
    accept_zstd: bool
    limiter: FetchLimiter | None
    seen: FetchObservation
    progress: ThrottledProgress | None

    async def run(self) -> FetchResult:
        with self.seen.phase(FetchPhase.LOOKUP) as found:
            intact = await _intact(self.store, self.document_id)
            found["reused"] = intact
        if intact:
            with self.seen.phase(FetchPhase.UPLOAD):
                url = await self.store.presign_fetch(self.document_id, self.policy.presign_ttl_s)
            return self._result(url, size_bytes=0, reused=True, stats=FetchStats())
        limiter = self.limiter or FetchLimiter()
        async with limiter.builds:
            return await self._build(limiter)

    async def _build(self, limiter: FetchLimiter) -> FetchResult:
        needed = NeededBlobs(self.content.as_written, self.accept_zstd)
        with self.seen.phase(FetchPhase.LOOKUP):
            sources = await _find_sources(self.index, self.content.as_written)
            check_indexed(needed, sources.cache, sources.locations)
        # Presigning first: if it fails, nothing has been written. Signing a URL for a
        # key about to exist is a local computation for the stores that can presign.
        with self.seen.phase(FetchPhase.UPLOAD):
            url = await self.store.presign_fetch(self.document_id, self.policy.presign_ttl_s)
        excluded: set[str] = set()
        while True:
            try:
                size, stats = await self._write_document(needed, sources, limiter, excluded)
            except DocumentPoisoned as poisoned:
                # Rare (a large blob corrupt in its mpack): build again without that mpack.
                excluded.add(poisoned.mpack_id)
                continue
            return self._result(url, size_bytes=size, reused=False, stats=stats)

    async def _write_document(
        self,
        needed: NeededBlobs,
        sources: _Sources,
        limiter: FetchLimiter,
        excluded: Collection[str],
    ) -> tuple[int, FetchStats]:
        """One attempt: stream the document into a new upload; abort it on any failure."""
        upload = await self.store.open_fetch(self.document_id)
        try:
            writer = DocumentWriter(upload, len(needed.as_written))
            with self.seen.phase(FetchPhase.UPLOAD):
                await writer.start(wire.fetch_head(*self.content.head.pieces(), writer.blob_count))
            sink = self._progress_sink(writer, sources)
            unavailable, stats = await gather_blobs(
                self.store,
                needed,
                cache=sources.cache,
                locations=sources.locations,
                policy=self.policy,
                sink=writer if sink is None else sink,
                budget=limiter.bytes_in_flight,
                excluded=excluded,
                observation=self.seen,
            )
            if unavailable:
                raise ObjectUnavailableError(needed.as_written[o] for o in unavailable)
            with self.seen.phase(FetchPhase.UPLOAD):
                size = await writer.finish(wire.fetch_tail(self.content.branch_heads))
        except BaseException:
            # Shielded: a second cancellation must not leave the upload half-aborted.
            await asyncio.shield(upload.abort())
            raise
        return size, stats

    def _progress_sink(self, writer: DocumentWriter, sources: _Sources) -> ProgressSink | None:
        if self.progress is None:
            return None
        sink = ProgressSink(writer, self.progress, _sizes(self.content.as_written, sources))
        sink.start()
        return sink

    def _result(
        self, url: str | None, *, size_bytes: int, reused: bool, stats: FetchStats
    ) -> FetchResult:
        return FetchResult(
            mpack_id=self.document_id,
            mpack_url=url,
            commit_count=len(self.content.commits),
            snapshot_count=len(self.content.snapshots),
            blob_count=len(self.content.as_written),
            size_bytes=size_bytes,
            uploaded=not reused,
            reused=reused,
            stats=stats,
        )


async def preview_fetch(
    index: FetchIndex,
    *,
    repo_id: str,
    want: Collection[str],
    have: Collection[str] = (),
    policy: Policy = Policy(),
    observer: Observer | None = None,
) -> FetchPreview:
    """What :func:`serve_fetch` would read, without reading anything from the store.

    Cache entries count as hits here (serve_fetch verifies them first). The
    ``observer`` receives the preview's phases (resolve, lookup, plan) only.

    Raises:
        InvalidRequestError, UnknownCommitError, IndexIntegrityError, StorageError:
            as for :func:`serve_fetch`.
    """
    check_repo_id(repo_id)
    want = check_ids("want", want, allow_empty=False)
    have = check_ids("have", have, allow_empty=True)
    seen = FetchObservation.of_preview(observer_or_default(observer), repo_id=repo_id)
    try:
        async with asyncio.timeout(policy.deadline_s):
            with seen.phase(FetchPhase.RESOLVE):
                key = FetchKey.of(repo_id, want, have, ("identity",))
                content = await _content_to_send(index, key)
            with seen.phase(FetchPhase.LOOKUP):
                sources = await _find_sources(index, content.as_written)
    except TimeoutError:
        raise FetchDeadlineError(
            f"preview ran past its deadline of {policy.deadline_s} s"
        ) from None
    with seen.phase(FetchPhase.PLAN):
        plan = plan_fetch(
            content.as_written, cached=sources.cache, locations=sources.locations, policy=policy
        )
    return FetchPreview(
        commit_count=len(content.commits),
        snapshot_count=len(content.snapshots),
        blob_count=len(content.as_written),
        cached_bytes=sum(len(sources.cache[object_id]) for object_id in plan.cached),
        plan=plan,
    )
