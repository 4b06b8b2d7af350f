"""Seeding a repository through the ports, the way the hub's original tests did."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from fetchcore import Commit, IndexBatch, IndexRepo, Location, ObjectStore, Snapshot
from fetchcore.ids import content_id
from fetchcore.testing import blob_entry, blob_id, commit_entry, fake_id, snapshot_entry
from fetchcore.wire import encode_push


def mpack_of(objects: Mapping[str, bytes], *, encoding: str = "identity") -> bytes:
    """A push mpack holding just these blobs (ids as given)."""
    blobs = [blob_entry(data, encoding=encoding, object_id=oid) for oid, data in objects.items()]
    return encode_push(blobs=blobs)


async def put_mpack_of(
    store: ObjectStore, objects: Mapping[str, bytes], *, encoding: str = "identity"
) -> str:
    """Store an mpack holding these blobs; return its id."""
    data = mpack_of(objects, encoding=encoding)
    mpack_id = content_id(data)
    await store.put_mpack(mpack_id, data)
    return mpack_id


async def index_in_mpack(index: IndexRepo, repo_id: str, oid: str, mpack_id: str) -> None:
    """An index row saying that ``oid`` lives in ``mpack_id`` (offsets unknown)."""
    await index.record(repo_id, IndexBatch(locations=[(oid, Location(mpack_id))]))


async def make_commit(
    index: IndexRepo,
    repo_id: str,
    *,
    manifest: Mapping[str, str],
    seed: str,
    parents: Sequence[str] = (),
) -> Commit:
    """Record a commit and its snapshot in ``repo_id``."""
    snapshot = Snapshot(fake_id(f"snap-{seed}"), dict(manifest))
    commit = Commit(fake_id(f"commit-{seed}"), snapshot.snapshot_id, tuple(parents))
    batch = IndexBatch(
        commits=[commit], snapshots=[snapshot], branch_heads={"main": commit.commit_id}
    )
    await index.record(repo_id, batch)
    return commit


def push_of(
    label: str,
    files: Mapping[str, bytes],
    *,
    parents: Sequence[str] = (),
    carried: Mapping[str, bytes] | None = None,
    encoding: str = "zstd",
    branch: str = "main",
) -> tuple[bytes, str]:
    """A push of one commit whose snapshot is ``files``; returns (document, commit id).

    ``carried`` are the blobs the push carries (default: every file's content).
    """
    manifest = {path: blob_id(content) for path, content in files.items()}
    snapshot_id = fake_id(f"snap-{label}")
    commit_id = fake_id(f"commit-{label}")
    blobs = {blob_id(c): c for c in (files if carried is None else carried).values()}
    data = encode_push(
        commits=[commit_entry(commit_id, snapshot_id, parents, message=label)],
        snapshots=[snapshot_entry(snapshot_id, manifest)],
        blobs=[blob_entry(content, encoding=encoding) for content in blobs.values()],
        branch_heads={branch: commit_id},
    )
    return data, commit_id
