"""Observability wired in: what serve_fetch, ingest_push and preview_fetch report.

Real fetches on the memory stack (and one on SQLite + a directory) through the
public API: the log records, the span tree and metric points, the progress
callback and the timings in the results.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import attrs
import pytest
from fetchcore.adapters.filesystem import FilesystemObjectStore
from fetchcore.adapters.memory import MemoryIndexRepo, MemoryObjectStore
from fetchcore.adapters.sql import SqlIndexRepo
from fetchcore.adapters.wrapping import ObjectStoreWrapper

from fetchcore import (
    FetchResult,
    IngestResult,
    ObjectStoreError,
    Policy,
    UnknownCommitError,
    ingest_push,
    preview_fetch,
    serve_fetch,
)
from fetchcore.observe import (
    FanOut,
    FetchPhase,
    FetchStarted,
    LegacyFallback,
    LoggingObserver,
    Observer,
    PhaseFinished,
    Progress,
    ProgressCallback,
    ReadFinished,
    ReadKind,
    ReadOutcome,
    RecordingObserver,
    RetryScheduled,
    Timings,
)
from fetchcore.ports import IndexRepo, ObjectStore
from fetchcore.testing import SyntheticPush, blob_id, fake_id, synthetic_history
from tests.unit.observe.sequences import BYTES_INGEST_PHASES
from tests.unit.observe.test_telemetry import Telemetry

REPO = "alice/songs"
SIGNATURE = "X-Amz-Signature"
PRESIGNED = (
    "https://bucket.s3.amazonaws.com/fetch/{key}?X-Amz-Algorithm=AWS4-HMAC-SHA256"
    "&X-Amz-Credential=AKIAEXAMPLE%2F20261124&X-Amz-Signature=0badc0ffee{key}"
)
# Small ranges: a fetch of the history below makes several ranged reads.
POLICY = Policy(max_range_bytes=64 * 1024, retry_backoff_s=0.001)


def _history() -> list[SyntheticPush]:
    return synthetic_history(blob_count=200, pushes=2, blob_size=1024)


@attrs.define
class Repository:
    """A repository with a two-push history, ingested; ``want`` is its last commit."""

    index: IndexRepo
    store: ObjectStore
    history: list[SyntheticPush]

    @property
    def want(self) -> list[str]:
        return [self.history[-1].commit_id]

    async def fetch(
        self, observer: Observer | None = None, progress: ProgressCallback | None = None
    ) -> FetchResult:
        return await serve_fetch(
            self.index,
            self.store,
            repo_id=REPO,
            want=self.want,
            policy=POLICY,
            observer=observer,
            progress=progress,
        )


async def _ingested(index: IndexRepo, store: ObjectStore) -> Repository:
    history = _history()
    for push in history:
        await ingest_push(index, store, repo_id=REPO, mpack=push.data)
    return Repository(index, store, history)


@pytest.fixture
async def repository() -> Repository:
    return await _ingested(MemoryIndexRepo(), MemoryObjectStore())


@pytest.fixture
async def sqlite_repository(tmp_path: Path) -> AsyncIterator[Repository]:
    url = f"sqlite+aiosqlite:///{tmp_path / 'index.db'}"
    async with SqlIndexRepo.connect(url, create_schema=True) as index:
        yield await _ingested(index, FilesystemObjectStore(tmp_path / "objects"))


class PresigningStore(ObjectStoreWrapper):
    """Presigns like S3 (a signature in the query) and fails each range read once,
    with the presigned URL in the error, as a careless client library would."""

    def __init__(self, inner: ObjectStore) -> None:
        super().__init__(inner)
        self.failed: set[tuple[str, int]] = set()

    async def presign_fetch(self, fetch_id: str, ttl_s: int) -> str | None:
        return PRESIGNED.format(key=fetch_id)

    async def get_mpack_range(self, mpack_id: str, start: int, end: int) -> bytes | None:
        if (mpack_id, start) not in self.failed:
            self.failed.add((mpack_id, start))
            raise ObjectStoreError(f"GET {PRESIGNED.format(key=mpack_id)} reset by peer")
        return await super().get_mpack_range(mpack_id, start, end)


class NoMPacks(ObjectStoreWrapper):
    """A store whose push mpacks are gone (a wrong prefix): only legacy keys answer."""

    async def get_mpack(self, mpack_id: str) -> bytes | None:
        return None

    async def get_mpack_range(self, mpack_id: str, start: int, end: int) -> bytes | None:
        return None


def _records(caplog: pytest.LogCaptureFixture, logger: str, level: int) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == logger and r.levelno == level]


class TestLogRecords:
    async def test_a_fetch_writes_exactly_one_info_record_with_its_figures(
        self, repository: Repository, caplog: pytest.LogCaptureFixture
    ) -> None:
        caplog.set_level(logging.DEBUG, logger="fetchcore")
        result = await repository.fetch()
        infos = [r for r in caplog.records if r.levelno >= logging.INFO]
        assert [r.name for r in infos] == ["fetchcore.fetch"]
        (record,) = infos
        assert record.levelno == logging.INFO
        fields = record.__dict__
        assert fields["event"] == "fetch_finished"
        assert fields["repo_id"] == REPO
        assert fields["outcome"] == "ok"
        assert fields["blob_count"] == result.blob_count == 200
        assert fields["bytes_read"] == result.stats.bytes_read > 0
        assert fields["requests"] == result.stats.requests > 1
        assert fields["fetch_id"] == result.mpack_id
        assert fields["duration_s"] >= result.stats.timings.total_s > 0

    async def test_each_read_attempt_is_one_debug_record(
        self, repository: Repository, caplog: pytest.LogCaptureFixture
    ) -> None:
        caplog.set_level(logging.DEBUG, logger="fetchcore")
        result = await repository.fetch()
        reads = _records(caplog, "fetchcore.read", logging.DEBUG)
        assert len(reads) == result.stats.requests
        assert {r.__dict__["kind"] for r in reads} == {ReadKind.RANGE}
        assert sum(r.__dict__["bytes"] for r in reads) == result.stats.bytes_read

    async def test_an_ingest_writes_exactly_one_info_record(
        self, caplog: pytest.LogCaptureFixture
    ) -> None:
        caplog.set_level(logging.DEBUG, logger="fetchcore")
        push = _history()[0]
        result = await ingest_push(
            MemoryIndexRepo(), MemoryObjectStore(), repo_id=REPO, mpack=push.data
        )
        infos = [r for r in caplog.records if r.levelno >= logging.INFO]
        assert [r.name for r in infos] == ["fetchcore.ingest"]
        fields = infos[0].__dict__
        assert fields["event"] == "ingest_finished"
        assert fields["mpack_id"] == result.mpack_id
        assert fields["blob_count"] == result.blob_count == 100
        assert fields["bytes_written"] == len(push.data)

    async def test_no_record_holds_a_presigned_urls_signature(
        self, repository: Repository, caplog: pytest.LogCaptureFixture
    ) -> None:
        caplog.set_level(logging.DEBUG, logger="fetchcore")
        store = PresigningStore(repository.store)
        result = await serve_fetch(
            repository.index, store, repo_id=REPO, want=repository.want, policy=POLICY
        )
        assert result.mpack_url is not None
        assert SIGNATURE in result.mpack_url
        retries = _records(caplog, "fetchcore.read", logging.DEBUG)
        assert any(r.__dict__.get("event") == "retry_scheduled" for r in retries)
        for record in caplog.records:
            assert SIGNATURE not in record.getMessage()
            assert not any(SIGNATURE in str(value) for value in record.__dict__.values())

    async def test_a_failed_fetch_is_one_warning_with_its_error_class(
        self, repository: Repository, caplog: pytest.LogCaptureFixture
    ) -> None:
        caplog.set_level(logging.INFO, logger="fetchcore")
        with pytest.raises(UnknownCommitError):
            await serve_fetch(
                repository.index, repository.store, repo_id=REPO, want=[fake_id("nowhere")]
            )
        (record,) = [r for r in caplog.records if r.levelno >= logging.INFO]
        assert record.levelno == logging.WARNING
        assert record.__dict__["outcome"] == "error"
        assert record.__dict__["error_type"] == "UnknownCommitError"


class TestTraces:
    async def test_a_fetch_is_one_span_with_its_phases_and_reads_as_children(
        self,
        repository: Repository,
        telemetry: Telemetry,
    ) -> None:
        result = await repository.fetch(observer=telemetry.observer)
        spans = telemetry.finished_spans()
        (root,) = spans.pop("fetchcore.serve_fetch")
        phases = {f"fetchcore.fetch.{phase}" for phase in FetchPhase}
        assert set(spans) == phases | {"fetchcore.read"}
        assert len(spans["fetchcore.read"]) == result.stats.requests
        children = [span for found in spans.values() for span in found]
        assert {span.parent.span_id for span in children if span.parent} == {root.context.span_id}
        assert all(span.parent is not None for span in children)
        assert root.attributes is not None
        assert root.attributes["fetchcore.blob_count"] == 200
        assert root.attributes["fetchcore.outcome"] == "ok"

    async def test_ingest_is_one_span_with_a_child_per_phase(
        self,
        telemetry: Telemetry,
    ) -> None:
        push = _history()[0]
        await ingest_push(
            MemoryIndexRepo(),
            MemoryObjectStore(),
            repo_id=REPO,
            mpack=push.data,
            observer=telemetry.observer,
        )
        spans = telemetry.finished_spans()
        (root,) = spans.pop("fetchcore.ingest_push")
        assert set(spans) == {f"fetchcore.ingest.{phase}" for phase in BYTES_INGEST_PHASES}
        assert all(
            span.parent is not None and span.parent.span_id == root.context.span_id
            for found in spans.values()
            for span in found
        )


class TestMetrics:
    async def test_requests_are_counted_by_kind_and_bytes_read_summed(
        self,
        repository: Repository,
        telemetry: Telemetry,
    ) -> None:
        result = await repository.fetch(observer=telemetry.observer)
        points = telemetry.points()
        ranges = frozenset({("kind", "range"), ("outcome", "ok")})
        assert points[("fetchcore.storage.requests", ranges)] == result.stats.range_gets > 1
        range_kind = frozenset({("kind", "range")})
        assert points[("fetchcore.storage.bytes_read", range_kind)] == result.stats.bytes_read

    async def test_a_second_identical_fetch_counts_one_reused_document(
        self,
        repository: Repository,
        telemetry: Telemetry,
    ) -> None:
        first = await repository.fetch(observer=telemetry.observer)
        assert ("fetchcore.fetch.reused", frozenset()) not in telemetry.points()
        second = await repository.fetch(observer=telemetry.observer)
        assert (first.reused, second.reused) == (False, True)
        assert telemetry.points()[("fetchcore.fetch.reused", frozenset())] == 1

    async def test_an_unknown_commit_counts_one_failure_by_its_class(
        self,
        repository: Repository,
        telemetry: Telemetry,
    ) -> None:
        with pytest.raises(UnknownCommitError):
            await serve_fetch(
                repository.index,
                repository.store,
                repo_id=REPO,
                want=[fake_id("nowhere")],
                observer=telemetry.observer,
            )
        failure = frozenset({("operation", "fetch"), ("error.type", "UnknownCommitError")})
        assert telemetry.points()[("fetchcore.failures", failure)] == 1


class TestEvents:
    async def test_a_failed_read_is_reported_then_retried_then_reported_again(
        self, repository: Repository
    ) -> None:
        seen = RecordingObserver()
        store = PresigningStore(repository.store)
        result = await serve_fetch(
            repository.index,
            store,
            repo_id=REPO,
            want=repository.want,
            policy=POLICY,
            observer=seen,
        )
        reads = seen.of_type(ReadFinished)
        retries = seen.of_type(RetryScheduled)
        assert len(retries) == result.stats.retries == len(store.failed)
        assert [(r.attempt, r.outcome) for r in reads if r.attempt == 1] == [
            (1, ReadOutcome.FAILED)
        ] * len(store.failed)
        assert [(r.attempt, r.outcome) for r in reads if r.attempt == 2] == [
            (2, ReadOutcome.OK)
        ] * len(store.failed)
        assert all(retry.attempt == 2 and SIGNATURE not in retry.reason for retry in retries)

    async def test_blobs_going_to_legacy_keys_are_one_event_naming_the_mpacks(
        self, repository: Repository
    ) -> None:
        for push in repository.history:
            for content in push.blobs.values():
                await repository.store.put_object(blob_id(content), content)
        seen = RecordingObserver()
        result = await serve_fetch(
            repository.index,
            NoMPacks(repository.store),
            repo_id=REPO,
            want=repository.want,
            policy=POLICY,
            observer=seen,
        )
        (fallback,) = seen.of_type(LegacyFallback)
        assert fallback.object_count == result.stats.object_gets == 200
        assert len(fallback.failed_mpacks) == 2

    async def test_a_preview_reports_its_phases_and_is_not_a_fetch(
        self, repository: Repository
    ) -> None:
        seen = RecordingObserver()
        await preview_fetch(repository.index, repo_id=REPO, want=repository.want, observer=seen)
        assert [e.name for e in seen.of_type(PhaseFinished)] == ["resolve", "lookup", "plan"]
        assert seen.of_type(FetchStarted) == []


def _assert_timings_add_up(timings: Timings, phases: Sequence[str]) -> None:
    assert set(timings.as_dict()) == set(phases)
    assert all(seconds >= 0 for seconds in timings.as_dict().values())
    assert sum(timings.as_dict().values()) <= timings.total_s


class TestTimings:
    async def test_a_built_fetch_times_every_phase_within_its_total(
        self, repository: Repository
    ) -> None:
        result = await repository.fetch(observer=LoggingObserver())
        _assert_timings_add_up(result.stats.timings, [str(p) for p in FetchPhase])

    async def test_a_reused_fetch_times_resolve_lookup_and_upload(
        self, repository: Repository
    ) -> None:
        await repository.fetch()
        result = await repository.fetch()
        assert result.reused
        _assert_timings_add_up(result.stats.timings, ["resolve", "lookup", "upload"])

    async def test_an_ingest_times_its_phases_with_connect_inside_verify(self) -> None:
        push = _history()[0]
        result: IngestResult = await ingest_push(
            MemoryIndexRepo(), MemoryObjectStore(), repo_id=REPO, mpack=push.data
        )
        timings = result.timings
        assert set(timings.as_dict()) == {str(p) for p in BYTES_INGEST_PHASES}
        assert 0 <= timings.seconds("connect") <= timings.seconds("verify")
        sequential = ["parse", "verify", "store", "record"]
        assert sum(timings.seconds(p) for p in sequential) <= timings.total_s

    async def test_a_waiter_on_an_identical_build_reports_its_own_time_and_no_reads(
        self, repository: Repository
    ) -> None:
        first, second = await asyncio.gather(repository.fetch(), repository.fetch())
        built, waited = (first, second) if first.uploaded else (second, first)
        assert built.stats.requests > 0
        assert waited.reused
        assert waited.stats.requests == 0
        assert waited.stats.timings.total_s > 0
        assert "read" not in waited.stats.timings.as_dict()


class TestProgress:
    async def test_progress_reaches_every_blob_and_byte_of_the_total(
        self, repository: Repository
    ) -> None:
        calls: list[Progress] = []
        result = await repository.fetch(progress=calls.append)
        assert calls[0].blobs_done == 0
        last = calls[-1]
        assert last.blobs_done == last.blobs_total == result.blob_count
        assert last.bytes_done == last.bytes_total > 0
        done = [call.blobs_done for call in calls]
        assert done == sorted(done)

    async def test_progress_is_throttled_to_far_fewer_calls_than_blobs(
        self, repository: Repository
    ) -> None:
        calls: list[Progress] = []
        await repository.fetch(progress=calls.append)
        assert 2 <= len(calls) <= 102  # first, at most one per 1 %, and the last

    async def test_a_reused_document_reports_no_progress(self, repository: Repository) -> None:
        await repository.fetch()
        calls: list[Progress] = []
        await repository.fetch(progress=calls.append)
        assert calls == []


class TestOnSqliteAndADirectory:
    async def test_a_fetch_logs_once_traces_its_phases_and_times_them(
        self,
        sqlite_repository: Repository,
        telemetry: Telemetry,
        caplog: pytest.LogCaptureFixture,
    ) -> None:
        caplog.set_level(logging.DEBUG, logger="fetchcore")
        calls: list[Progress] = []
        observer = FanOut((LoggingObserver(), telemetry.observer))
        result = await sqlite_repository.fetch(observer=observer, progress=calls.append)
        assert len([r for r in caplog.records if r.levelno >= logging.INFO]) == 1
        spans = telemetry.finished_spans()
        assert len(spans["fetchcore.serve_fetch"]) == 1
        assert len(spans["fetchcore.read"]) == result.stats.requests > 1
        _assert_timings_add_up(result.stats.timings, [str(p) for p in FetchPhase])
        assert calls[-1].blobs_done == calls[-1].blobs_total == 200
