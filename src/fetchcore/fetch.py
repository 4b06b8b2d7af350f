"""serve_fetch: answer a client's want/have with one verified fetch mpack.

The order of work is what makes the guarantees:
1. resolve the commits (UnknownCommitError for wants outside the repository);
2. compute the needed blobs: the manifests of the snapshots sent, minus the
   manifests of the have commits themselves;
3. look up cache entries and locations and apply the not-indexed gate, all
   before any storage request;
4. gather and verify every blob;
5. only then encode, upload (unless already stored) and presign. A failure
   before step 5 leaves the store untouched.
"""

from __future__ import annotations

import asyncio
from collections.abc import Collection, Iterable, Mapping, Sequence

import attrs

from fetchcore import ids, wire
from fetchcore.errors import IndexIntegrityError, InvalidRequestError
from fetchcore.executor import Want, gather_blobs
from fetchcore.graph import parents_first
from fetchcore.model import ENCODINGS, Commit, Location, Snapshot
from fetchcore.planner import plan_fetch
from fetchcore.policy import Policy
from fetchcore.ports import IndexRepo, ObjectStore
from fetchcore.results import FetchPreview, FetchResult
from fetchcore.validation import check_ids, check_repo_id
from fetchcore.wire import OutgoingBlob


@attrs.frozen
class _Content:
    """What a fetch sends: commits parents first, their snapshots, the needed blobs."""

    commits: list[Commit]
    snapshots: list[Snapshot]
    spelled: dict[str, str]


def _spellings(object_ids: Iterable[str]) -> dict[str, str]:
    """canonical id -> id as written; where spellings differ, the smallest wins."""
    spelled: dict[str, str] = {}
    for object_id in sorted(object_ids):
        spelled.setdefault(ids.canonical(object_id), object_id)
    return spelled


def _manifest_ids(snapshots: Iterable[Snapshot]) -> set[str]:
    return {object_id for snapshot in snapshots for object_id in snapshot.object_ids}


async def _snapshots_of(
    index: IndexRepo, repo_id: str, commits: Sequence[Commit]
) -> dict[str, Snapshot]:
    wanted = {commit.snapshot_id for commit in commits}
    found = {s.snapshot_id: s for s in await index.load_snapshots(repo_id, wanted)}
    missing = sorted(wanted - found.keys())
    if missing:
        raise IndexIntegrityError(f"the index holds commits without their snapshots: {missing[:5]}")
    return found


async def _content_to_send(
    index: IndexRepo, repo_id: str, want: Collection[str], have: Collection[str]
) -> _Content:
    commits = parents_first(await index.resolve_commits(repo_id, want, have))
    have_commits = await index.load_commits(repo_id, have) if have else []
    snapshots = await _snapshots_of(index, repo_id, [*commits, *have_commits])
    sent = [snapshots[s] for s in sorted({commit.snapshot_id for commit in commits})]
    present = _manifest_ids(snapshots[commit.snapshot_id] for commit in have_commits)
    present_canonical = {ids.canonical(object_id) for object_id in present}
    spelled = {
        canonical: written
        for canonical, written in _spellings(_manifest_ids(sent)).items()
        if canonical not in present_canonical
    }
    return _Content(commits, sent, spelled)


@attrs.frozen
class _Sources:
    """Where the needed blobs can come from: cache entries and mpack locations."""

    cache: Mapping[str, bytes]
    locations: Mapping[str, Sequence[Location]]


async def _find_sources(index: IndexRepo, spelled: Mapping[str, str]) -> _Sources:
    """Cache entries and locations of the needed blobs: two lookups, side by side."""
    needed = list(spelled)
    if not needed:
        return _Sources({}, {})
    cache, locations = await asyncio.gather(index.find_cached(needed), index.find_locations(needed))
    return _Sources(cache, locations)


def _accepts_zstd(accept_encodings: Collection[str]) -> bool:
    encodings = set(check_ids("accept_encodings", accept_encodings, allow_empty=False))
    if "identity" not in encodings or not encodings <= ENCODINGS:
        raise InvalidRequestError(
            f"accept_encodings must include 'identity' and only name {sorted(ENCODINGS)}"
        )
    return "zstd" in encodings


async def serve_fetch(
    index: IndexRepo,
    store: ObjectStore,
    *,
    repo_id: str,
    want: Collection[str],
    have: Collection[str] = (),
    policy: Policy = Policy(),
    accept_encodings: Collection[str] = ("identity",),
) -> FetchResult:
    """Build, store and presign the fetch mpack for ``want`` minus ``have``.

    Args:
        index: the index of commits, snapshots, locations and cache.
        store: where push mpacks are read and the fetch mpack is written.
        repo_id: the repository asked for.
        want: commit ids the client wants (non-empty, all of this repository).
        have: commit ids the client has; unknown ones are ignored.
        policy: reading, resilience and size limits.
        accept_encodings: ``("identity",)`` (default) serves decoded content;
            adding ``"zstd"`` passes zstd-stored blobs through (still verified).

    Returns:
        The fetch mpack's id and presigned URL, its counts, and what was read.

    Raises:
        InvalidRequestError: empty ``want`` or malformed arguments.
        UnknownCommitError: wanted commits that are not in this repository.
        FetchNotIndexedError: needed blobs not indexed yet (before any storage GET).
        ObjectUnavailableError: blobs that no source could serve verified.
        FetchDeadlineError: the fetch ran past ``policy.deadline_s``.
        IndexIntegrityError: the index holds a commit without its snapshot.
        StorageError: the index or the store failed for good.
    """
    check_repo_id(repo_id)
    want = check_ids("want", want, allow_empty=False)
    have = check_ids("have", have, allow_empty=True)
    accept_zstd = _accepts_zstd(accept_encodings)

    content = await _content_to_send(index, repo_id, want, have)
    sources = await _find_sources(index, content.spelled)
    blobs, stats = await gather_blobs(
        store,
        Want(content.spelled, accept_zstd),
        cache=sources.cache,
        locations=sources.locations,
        policy=policy,
    )
    heads = await index.branch_heads(repo_id)
    # Encoding and hashing a large document would hold the event loop: a worker does it.
    document, mpack_id = await asyncio.to_thread(_encode, content, blobs, heads)
    del blobs
    # Presigning first: if it fails, nothing has been written. Signing a URL for a
    # key about to exist is a local computation for the stores that can presign.
    url = await store.presign_mpack(mpack_id, policy.presign_ttl_s)
    uploaded = not await store.has_mpack(mpack_id)
    if uploaded:
        await store.put_mpack(mpack_id, document)
    return FetchResult(
        mpack_id=mpack_id,
        mpack_url=url,
        commit_count=len(content.commits),
        snapshot_count=len(content.snapshots),
        blob_count=len(content.spelled),
        size_bytes=len(document),
        uploaded=uploaded,
        stats=stats,
    )


def _encode(
    content: _Content, blobs: Mapping[str, OutgoingBlob], heads: Mapping[str, str]
) -> tuple[bytes, str]:
    document = wire.encode_fetch(content.commits, content.snapshots, blobs.values(), heads)
    return document, ids.content_id(document)


async def preview_fetch(
    index: IndexRepo,
    *,
    repo_id: str,
    want: Collection[str],
    have: Collection[str] = (),
    policy: Policy = Policy(),
) -> FetchPreview:
    """What :func:`serve_fetch` would read, without reading anything from the store.

    Cache entries count as hits here (serve_fetch verifies them first).

    Raises:
        InvalidRequestError, UnknownCommitError, IndexIntegrityError, StorageError:
            as for :func:`serve_fetch`.
    """
    check_repo_id(repo_id)
    want = check_ids("want", want, allow_empty=False)
    have = check_ids("have", have, allow_empty=True)
    content = await _content_to_send(index, repo_id, want, have)
    sources = await _find_sources(index, content.spelled)
    plan = plan_fetch(
        content.spelled, cached=sources.cache, locations=sources.locations, policy=policy
    )
    return FetchPreview(
        commit_count=len(content.commits),
        snapshot_count=len(content.snapshots),
        blob_count=len(content.spelled),
        cached_bytes=sum(len(sources.cache[object_id]) for object_id in plan.cached),
        plan=plan,
    )
