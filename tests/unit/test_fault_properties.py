"""Random repositories under random fault schedules: nothing bad is served, nothing half-written.

For every schedule, ``serve_fetch`` either returns a fetch document whose every
blob verifies and whose blob set is exactly the expected one, or raises a
FetchError having written nothing; and it must succeed whenever one healthy
source of every blob remains (all mpack reads, or every legacy key) and the
writes are healthy; ``ingest_push`` either indexes the whole
push or leaves the index exactly as it was.
"""

from __future__ import annotations

import asyncio
import copy
import random
from collections.abc import Collection, Mapping, Sequence

import attrs
from fetchcore.adapters.faults import NO_FAULTS, Faults, FaultyObjectStore
from fetchcore.adapters.memory import MemoryIndexRepo, MemoryObjectStore
from fetchcore.adapters.wrapping import IndexRepoWrapper
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from fetchcore import (
    FetchError,
    IndexBatch,
    IndexRepoError,
    Policy,
    ingest_push,
    serve_fetch,
)
from fetchcore.ids import matches
from fetchcore.testing import blob_entry, blob_id, commit_entry, snapshot_entry
from fetchcore.wire import decode_fetch, encode_push

REPO = "fuzz/repo"
READS = ["get_mpack", "get_mpack_range", "get_object"]
WRITES = ["put_mpack", "has_mpack", "presign_mpack", "fetch_intact", "open_fetch", "presign_fetch"]
POLICY = Policy(retry_backoff_s=0.0, request_timeout_s=0.02, read_attempts=3, request_cost_bytes=64)

probabilities = st.sampled_from([0.0, 0.0, 0.0, 0.05, 0.2, 0.5, 1.0])


@st.composite
def faults(draw: st.DrawFn, *, stalls: bool) -> Faults:
    return Faults(
        error=draw(probabilities),
        stall=draw(st.sampled_from([0.0, 0.0, 0.2])) if stalls else 0.0,
        lose=draw(probabilities),
        truncate=draw(probabilities),
        corrupt=draw(probabilities),
    )


@st.composite
def fault_schedules(draw: st.DrawFn) -> dict[str, Faults]:
    """Faults on at least one read, sometimes on writes too. Stalls only on reads, which
    the executor's timeouts bound (a stalled write is the adapter's own timeouts' business)."""
    reads = draw(st.lists(st.sampled_from(READS), min_size=1, unique=True))
    writes = draw(st.lists(st.sampled_from(WRITES), unique=True)) if draw(st.booleans()) else []
    schedule = {operation: draw(faults(stalls=True)) for operation in reads}
    schedule.update({operation: draw(faults(stalls=False)) for operation in writes})
    return schedule


@attrs.frozen
class History:
    """Pushes of a linear history; each commit's snapshot lists every blob so far."""

    pushes: tuple[bytes, ...]
    commits: tuple[str, ...]
    manifests: tuple[frozenset[str], ...]
    contents: Mapping[str, bytes]


@st.composite
def histories(draw: st.DrawFn) -> History:
    rng = random.Random(draw(st.integers(0, 2**32)))  # cheap for hypothesis to draw
    pushes: list[bytes] = []
    commits: list[str] = []
    manifests: list[frozenset[str]] = []
    contents: dict[str, bytes] = {}
    manifest: dict[str, str] = {}
    for index in range(draw(st.integers(1, 4))):
        added = [
            rng.randbytes(rng.choice([0, 1, 40, 700, 3000])) for _ in range(rng.randint(1, 12))
        ]
        for number, content in enumerate(added):
            manifest[f"p{index}-{number}"] = blob_id(content, bare=rng.random() < 0.3)
            contents[blob_id(content)] = content
        commit_id, snapshot_id = f"c{index}", f"s{index}"
        pushes.append(
            encode_push(
                commits=[commit_entry(commit_id, snapshot_id, commits[-1:])],
                snapshots=[snapshot_entry(snapshot_id, manifest)],
                blobs=[blob_entry(c, encoding=rng.choice(["zstd", "identity"])) for c in added],
                branch_heads={"main": commit_id},
            )
        )
        commits.append(commit_id)
        manifests.append(frozenset(blob_id(c) for c in contents.values()))
    return History(tuple(pushes), tuple(commits), tuple(manifests), contents)


async def ingested(
    history: History, *, legacy: Collection[str] = ()
) -> tuple[MemoryIndexRepo, MemoryObjectStore]:
    index, store = MemoryIndexRepo(), MemoryObjectStore()
    for data in history.pushes:
        await ingest_push(index, store, repo_id=REPO, mpack=data)
    for object_id in legacy:
        await store.put_object(object_id, history.contents[object_id])
    return index, store


def healthy_source_remains(
    schedule: Mapping[str, Faults], every_blob_has_a_legacy_key: bool
) -> bool:
    """Whether every blob keeps a source without faults, and writing cannot fail."""

    def healthy(*operations: str) -> bool:
        return all(schedule.get(operation, NO_FAULTS) == NO_FAULTS for operation in operations)

    mpacks = healthy("get_mpack", "get_mpack_range")
    legacy = every_blob_has_a_legacy_key and healthy("get_object")
    return healthy(*WRITES) and (mpacks or legacy)


class TestServeFetchUnderFaults:
    @settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(histories(), fault_schedules(), st.integers(0, 2**32), st.data())
    def test_a_fetch_is_complete_and_verified_or_a_fetch_error_that_wrote_nothing(
        self, history: History, schedule: dict[str, Faults], seed: int, data: st.DataObject
    ) -> None:
        everything = sorted(history.contents)
        legacy = (
            everything
            if data.draw(st.booleans())
            else sorted(data.draw(st.sets(st.sampled_from(everything))))
        )
        have = data.draw(st.lists(st.sampled_from(history.commits), max_size=1))
        asyncio.run(self.check(history, schedule, seed, legacy, have))

    async def check(
        self,
        history: History,
        schedule: dict[str, Faults],
        seed: int,
        legacy: Sequence[str],
        have: Sequence[str],
    ) -> None:
        index, store = await ingested(history, legacy=legacy)
        before = dict(store.mpacks)
        must_succeed = healthy_source_remains(schedule, set(legacy) == set(history.contents))
        faulty = FaultyObjectStore(store, faults=schedule, seed=seed)
        head = history.commits[-1]
        try:
            result = await serve_fetch(
                index, faulty, repo_id=REPO, want=[head], have=have, policy=POLICY
            )
        except FetchError as error:
            event(f"fetch failed: {type(error).__name__}")
            failure: FetchError | None = error
        else:
            failure = None
        if failure is not None:
            assert not must_succeed, f"failed although a healthy source remained: {failure!r}"
            assert store.mpacks == before, "a failed fetch wrote something"
            assert store.fetches == {}, "a failed fetch left a document"
            return
        event("fetch served" + (" after faults" if faulty.injected else ""))
        document = decode_fetch(store.fetches[result.mpack_id])
        have_manifest = history.manifests[history.commits.index(have[0])] if have else frozenset()
        expected = history.manifests[-1] - have_manifest
        served = {"sha256:" + b["object_id"].removeprefix("sha256:"): b for b in document["blobs"]}
        assert set(served) == expected
        for object_id, entry in served.items():
            assert matches(object_id, entry["content"]), "a corrupt blob was served"
        assert store.mpacks == before, "a fetch never writes push mpacks"
        assert set(store.fetches) == {result.mpack_id}


@attrs.define
class FlakyIndex(IndexRepoWrapper):
    """An index whose ``record`` fails with some probability, before writing."""

    rng: random.Random = attrs.field(kw_only=True)
    failure: float = attrs.field(kw_only=True)

    async def record(self, repo_id: str, batch: IndexBatch) -> None:
        if self.rng.random() < self.failure:
            raise IndexRepoError("injected: the database went away")
        await self.inner.record(repo_id, batch)


class TestIngestUnderFaults:
    @settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(histories(), fault_schedules(), st.integers(0, 2**32), st.floats(0.0, 1.0))
    def test_a_push_is_wholly_indexed_or_not_at_all(
        self, history: History, schedule: dict[str, Faults], seed: int, failure: float
    ) -> None:
        asyncio.run(self.check(history, schedule, seed, failure))

    async def check(
        self, history: History, schedule: dict[str, Faults], seed: int, failure: float
    ) -> None:
        index, store = MemoryIndexRepo(), MemoryObjectStore()
        flaky = FlakyIndex(index, rng=random.Random(seed), failure=failure)
        faulty = FaultyObjectStore(store, faults=schedule, seed=seed)
        for data, commit_id in zip(history.pushes, history.commits, strict=True):
            before = copy.deepcopy(attrs.asdict(index, recurse=False))
            try:
                result = await ingest_push(flaky, faulty, repo_id=REPO, mpack=data, policy=POLICY)
            except FetchError:
                assert attrs.asdict(index, recurse=False) == before, (
                    "a failed ingest wrote to the index"
                )
                # A retry on healthy storage completes the job (the mpack may already be there).
                result = await ingest_push(index, store, repo_id=REPO, mpack=data, policy=POLICY)
            assert await store.has_mpack(result.mpack_id)
            (commit,) = await index.load_commits(REPO, [commit_id])
            assert commit.commit_id == commit_id
        served = await serve_fetch(index, store, repo_id=REPO, want=[history.commits[-1]])
        assert served.blob_count == len(history.manifests[-1])
