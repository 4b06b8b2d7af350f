"""In-memory adapters: honest implementations of the ports, for tests and embedding.

They keep real state (nothing is mocked): hub services can use them in their
own tests and assert on what the store holds. Both validate ids the way the
production adapters do, so a test that passes here does not depend on leniency.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import AsyncIterator, Collection, Mapping, Sequence

import attrs

from fetchcore import ids
from fetchcore.errors import InvalidRequestError, ObjectStoreError, UnknownCommitError
from fetchcore.graph import commits_to_send
from fetchcore.lifecycle import RepositoryDeletion, StoredMPack, age_cutoff
from fetchcore.model import Commit, IndexBatch, Location, Snapshot, check_record
from fetchcore.validation import check_range


@attrs.define
class MemoryFetchUpload:
    """A fetch document buffered in memory; it enters the store only on commit."""

    store: MemoryObjectStore
    fetch_id: str
    chunks: list[bytes] = attrs.field(factory=list)
    done: bool = False

    async def write(self, chunk: bytes) -> None:
        if self.done:
            raise InvalidRequestError("write to a fetch upload that is already finished")
        self.chunks.append(bytes(chunk))

    async def commit(self) -> None:
        if self.done:
            raise InvalidRequestError("commit of a fetch upload that is already finished")
        self.done = True
        document = b"".join(self.chunks)
        self.chunks.clear()
        self.store.fetches[self.fetch_id] = document
        self.store.fetch_seals[self.fetch_id] = ids.content_id(document)

    async def abort(self) -> None:
        self.done = True
        self.chunks.clear()


@attrs.define
class MemoryPushUpload:
    """A push mpack staged in memory under a staging key until its id is known.

    A failed commit (a malformed id, or staging swept meanwhile) drops the
    staged bytes, like abort: nothing staged is ever left behind.
    """

    store: MemoryObjectStore
    staging_key: str
    done: bool = False

    async def write(self, chunk: bytes) -> None:
        if self.done:
            raise InvalidRequestError("write to a push upload that is already finished")
        staged = self.store.staging.get(self.staging_key)
        if staged is None:
            raise ObjectStoreError(f"staged push {self.staging_key} was swept")
        staged += chunk

    async def commit(self, mpack_id: str) -> None:
        if self.done:
            raise InvalidRequestError("commit of a push upload that is already finished")
        self.done = True
        staged = self.store.staging.pop(self.staging_key, None)
        self.store.staging_started.pop(self.staging_key, None)
        ids.check_mpack_id(mpack_id)
        if staged is None:
            raise ObjectStoreError(f"staged push {self.staging_key} was swept")
        data = bytes(staged)
        if self.store.mpacks.get(mpack_id) != data:  # intact already: drop the staged copy
            await self.store.put_mpack(mpack_id, data)

    async def abort(self) -> None:
        self.done = True
        self.store.staging.pop(self.staging_key, None)
        self.store.staging_started.pop(self.staging_key, None)


@attrs.define
class MemoryObjectStore:
    """An object store in dicts: legacy objects (by canonical id), push mpacks and
    fetch documents (each sealed with the sha256 of its bytes when written)."""

    objects: dict[str, bytes] = attrs.field(factory=dict)
    mpacks: dict[str, bytes] = attrs.field(factory=dict)
    fetches: dict[str, bytes] = attrs.field(factory=dict)
    fetch_seals: dict[str, str] = attrs.field(factory=dict)
    mpack_stored_at: dict[str, dt.datetime] = attrs.field(factory=dict)
    """When each push mpack was first stored (UTC): what lifecycle sweeps measure age by."""
    staging: dict[str, bytearray] = attrs.field(factory=dict)
    """Push mpacks being received, by staging key (see :meth:`open_push`)."""
    staging_started: dict[str, dt.datetime] = attrs.field(factory=dict)

    async def get_object(self, object_id: str) -> bytes | None:
        return self.objects.get(ids.canonical(object_id))

    async def put_object(self, object_id: str, data: bytes) -> None:
        self.objects[ids.canonical(object_id)] = bytes(data)

    async def get_mpack(self, mpack_id: str) -> bytes | None:
        return self.mpacks.get(ids.check_mpack_id(mpack_id))

    async def get_mpack_range(self, mpack_id: str, start: int, end: int) -> bytes | None:
        ids.check_mpack_id(mpack_id)
        check_range(start, end)
        data = self.mpacks.get(mpack_id)
        return None if data is None else data[start:end]

    async def put_mpack(self, mpack_id: str, data: bytes) -> None:
        self.mpacks[ids.check_mpack_id(mpack_id)] = bytes(data)
        self.mpack_stored_at.setdefault(mpack_id, dt.datetime.now(dt.UTC))

    async def has_mpack(self, mpack_id: str) -> bool | None:
        return ids.check_mpack_id(mpack_id) in self.mpacks

    async def presign_mpack(self, mpack_id: str, ttl_s: int) -> str | None:
        ids.check_mpack_id(mpack_id)
        return f"memory://mpacks/{mpack_id}?ttl={ttl_s}"

    async def open_push(self) -> MemoryPushUpload:
        staging_key = uuid.uuid4().hex
        self.staging[staging_key] = bytearray()
        self.staging_started[staging_key] = dt.datetime.now(dt.UTC)
        return MemoryPushUpload(self, staging_key)

    async def sweep_staging(self, min_age_s: float) -> int:
        cutoff = age_cutoff(min_age_s)
        stale = [key for key, started in self.staging_started.items() if started <= cutoff]
        for key in stale:
            self.staging.pop(key, None)
            self.staging_started.pop(key, None)
        return len(stale)

    async def open_fetch(self, fetch_id: str) -> MemoryFetchUpload:
        return MemoryFetchUpload(self, ids.check_mpack_id(fetch_id))

    async def fetch_intact(self, fetch_id: str) -> bool | None:
        document = self.fetches.get(ids.check_mpack_id(fetch_id))
        seal = self.fetch_seals.get(fetch_id)
        return document is not None and seal == ids.content_id(document)

    async def get_fetch(self, fetch_id: str) -> bytes | None:
        return self.fetches.get(ids.check_mpack_id(fetch_id))

    async def presign_fetch(self, fetch_id: str, ttl_s: int) -> str | None:
        ids.check_mpack_id(fetch_id)
        return f"memory://fetch/{fetch_id}?ttl={ttl_s}"

    # ── lifecycle (fetchcore.lifecycle.StoreLifecycle) ──

    async def list_mpacks(self) -> AsyncIterator[StoredMPack]:
        now = dt.datetime.now(dt.UTC)
        for mpack_id, data in list(self.mpacks.items()):
            # An mpack put into the dict directly (as tests do) counts as stored when first seen.
            stored_at = self.mpack_stored_at.setdefault(mpack_id, now)
            yield StoredMPack(mpack_id, len(data), stored_at)

    async def delete_mpack(self, mpack_id: str) -> None:
        self.mpacks.pop(ids.check_mpack_id(mpack_id), None)
        self.mpack_stored_at.pop(mpack_id, None)


@attrs.define
class MemoryIndexRepo:
    """An index in dicts, scoped per repository exactly like the SQL index."""

    commits: dict[str, dict[str, Commit]] = attrs.field(factory=dict)
    snapshots: dict[str, dict[str, Snapshot]] = attrs.field(factory=dict)
    members: dict[str, set[str]] = attrs.field(factory=dict)
    locations: dict[str, dict[Location, None]] = attrs.field(factory=dict)
    cached: dict[str, bytes] = attrs.field(factory=dict)
    heads: dict[str, dict[str, str]] = attrs.field(factory=dict)

    async def record(self, repo_id: str, batch: IndexBatch) -> None:
        # Everything that can fail is checked first; the updates below cannot fail,
        # and nothing awaits in between, so the write is atomic.
        check_record(repo_id, batch)
        members = batch.object_ids()
        commits = self.commits.setdefault(repo_id, {})
        for commit in batch.commits:
            commits.setdefault(commit.commit_id, commit)
        snapshots = self.snapshots.setdefault(repo_id, {})
        for snapshot in batch.snapshots:
            snapshots.setdefault(snapshot.snapshot_id, snapshot)
        self.members.setdefault(repo_id, set()).update(members)
        for object_id, location in batch.locations:
            self.locations.setdefault(object_id, {})[location] = None
        for object_id, content in batch.cached:
            self.cached.setdefault(object_id, content)
        self.heads.setdefault(repo_id, {}).update(batch.branch_heads)

    async def resolve_commits(
        self, repo_id: str, want: Collection[str], have: Collection[str]
    ) -> Sequence[Commit]:
        commits = self.commits.get(repo_id, {})
        unknown = [commit_id for commit_id in want if commit_id not in commits]
        if unknown:
            raise UnknownCommitError(unknown)
        return commits_to_send(commits, want, have)

    async def load_commits(self, repo_id: str, commit_ids: Collection[str]) -> Sequence[Commit]:
        commits = self.commits.get(repo_id, {})
        return [commits[c] for c in dict.fromkeys(commit_ids) if c in commits]

    async def load_snapshots(
        self, repo_id: str, snapshot_ids: Collection[str]
    ) -> Sequence[Snapshot]:
        snapshots = self.snapshots.get(repo_id, {})
        return [snapshots[s] for s in dict.fromkeys(snapshot_ids) if s in snapshots]

    async def known_objects(self, repo_id: str, object_ids: Collection[str]) -> Collection[str]:
        return self.members.get(repo_id, set()).intersection(object_ids)

    async def find_cached(self, object_ids: Collection[str]) -> Mapping[str, bytes]:
        return {o: self.cached[o] for o in object_ids if o in self.cached}

    async def find_locations(self, object_ids: Collection[str]) -> Mapping[str, Sequence[Location]]:
        return {o: list(self.locations[o]) for o in object_ids if o in self.locations}

    async def branch_heads(self, repo_id: str) -> Mapping[str, str]:
        return dict(self.heads.get(repo_id, {}))

    # ── lifecycle (fetchcore.lifecycle.IndexLifecycle) ──

    async def delete_repository(self, repo_id: str) -> RepositoryDeletion:
        # Nothing awaits in here, so the deletion is atomic like record().
        members = self.members.pop(repo_id, set())
        still_used = set().union(*self.members.values())
        released = members - still_used
        for object_id in released:
            self.locations.pop(object_id, None)
            self.cached.pop(object_id, None)
        return RepositoryDeletion(
            repo_id=repo_id,
            commits=len(self.commits.pop(repo_id, {})),
            snapshots=len(self.snapshots.pop(repo_id, {})),
            branch_heads=len(self.heads.pop(repo_id, {})),
            objects=len(members),
            released_objects=len(released),
        )

    async def referenced_mpacks(self, mpack_ids: Collection[str]) -> Collection[str]:
        wanted = set(mpack_ids)
        return {
            location.mpack_id
            for locations in self.locations.values()
            for location in locations
            if location.mpack_id in wanted
        }
