"""OpenTelemetry: the span tree and the metric points of realistic event sequences."""

from __future__ import annotations

from collections.abc import Iterator

import attrs
import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import (
    HistogramDataPoint,
    InMemoryMetricReader,
    NumberDataPoint,
)
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode

from fetchcore import ObjectStoreError
from fetchcore.observe import (
    FetchFinished,
    FetchObservation,
    FetchPhase,
    OpenTelemetryObserver,
    ReadFinished,
    ReadKind,
)
from tests.unit.observe.sequences import (
    MPACKS,
    RANGE_BYTES,
    FakeClock,
    emit_failed_fetch,
    emit_ingest,
    emit_served_fetch,
)

Point = tuple[str, frozenset[tuple[str, object]]]


@attrs.frozen
class Telemetry:
    """An SDK tracer and meter that keep what they receive in memory."""

    spans: InMemorySpanExporter
    metrics: InMemoryMetricReader
    tracer_provider: TracerProvider
    observer: OpenTelemetryObserver

    def finished_spans(self) -> dict[str, list[ReadableSpan]]:
        by_name: dict[str, list[ReadableSpan]] = {}
        for span in self.spans.get_finished_spans():
            by_name.setdefault(span.name, []).append(span)
        return by_name

    def points(self) -> dict[Point, object]:
        """Each metric point by (instrument, attributes): a sum, or a histogram's (count, sum)."""
        data = self.metrics.get_metrics_data()
        assert data is not None
        found: dict[Point, object] = {}
        for resource in data.resource_metrics:
            for scope in resource.scope_metrics:
                for metric in scope.metrics:
                    for point in metric.data.data_points:
                        key = (metric.name, frozenset((point.attributes or {}).items()))
                        found[key] = _value(point)
        return found


def _value(point: object) -> object:
    if isinstance(point, HistogramDataPoint):
        return (point.count, point.sum)
    assert isinstance(point, NumberDataPoint)
    return point.value


@pytest.fixture
def telemetry() -> Iterator[Telemetry]:
    exporter = InMemorySpanExporter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(exporter))
    reader = InMemoryMetricReader()
    meter_provider = MeterProvider(metric_readers=[reader])
    observer = OpenTelemetryObserver(tracer_provider, meter_provider)
    yield Telemetry(exporter, reader, tracer_provider, observer)
    tracer_provider.shutdown()
    meter_provider.shutdown()


def _duration_s(span: ReadableSpan) -> float:
    assert span.start_time is not None
    assert span.end_time is not None
    return (span.end_time - span.start_time) / 1e9


class TestServedFetchSpans:
    def test_the_fetch_span_has_a_child_per_phase_and_per_read(self, telemetry: Telemetry) -> None:
        emit_served_fetch(telemetry.observer, FakeClock())
        spans = telemetry.finished_spans()
        (root,) = spans.pop("fetchcore.serve_fetch")
        assert sorted(spans) == sorted(
            [f"fetchcore.fetch.{phase}" for phase in FetchPhase] + ["fetchcore.read"]
        )
        assert len(spans["fetchcore.read"]) == 5
        children = [span for named in spans.values() for span in named]
        assert all(span.parent is not None for span in children)
        assert {span.parent.span_id for span in children if span.parent} == {root.context.span_id}
        assert {span.context.trace_id for span in children} == {root.context.trace_id}

    def test_the_fetch_span_is_a_child_of_the_callers_span(self, telemetry: Telemetry) -> None:
        tracer = telemetry.tracer_provider.get_tracer("hub")
        with tracer.start_as_current_span("hub.handle_fetch") as request:
            emit_served_fetch(telemetry.observer, FakeClock())
        (root,) = telemetry.finished_spans()["fetchcore.serve_fetch"]
        assert root.parent is not None
        assert root.parent.span_id == request.get_span_context().span_id

    def test_the_fetch_span_carries_what_a_dashboard_needs(self, telemetry: Telemetry) -> None:
        result = emit_served_fetch(telemetry.observer, FakeClock())
        (root,) = telemetry.finished_spans()["fetchcore.serve_fetch"]
        assert root.attributes is not None
        assert dict(root.attributes) == {
            "fetchcore.repo_id": "repo-1",
            "fetchcore.want_count": 1,
            "fetchcore.have_count": 0,
            "fetchcore.fetch_id": result.mpack_id,
            "fetchcore.commit_count": 3,
            "fetchcore.snapshot_count": 3,
            "fetchcore.blob_count": 25_000,
            "fetchcore.cache_hits": 7,
            "fetchcore.requests": 5,
            "fetchcore.mpack_gets": 0,
            "fetchcore.range_gets": 5,
            "fetchcore.object_gets": 0,
            "fetchcore.bytes_read": 4 * RANGE_BYTES,
            "fetchcore.bytes_written": result.size_bytes,
            "fetchcore.reused": False,
            "fetchcore.outcome": "ok",
        }
        assert root.status.status_code is StatusCode.UNSET
        (retry,) = root.events
        assert retry.name == "retry"
        assert retry.attributes is not None
        assert retry.attributes["fetchcore.read.attempt"] == 2

    def test_phase_and_read_spans_last_as_long_as_the_work_they_stand_for(
        self, telemetry: Telemetry
    ) -> None:
        emit_served_fetch(telemetry.observer, FakeClock())
        spans = telemetry.finished_spans()
        (read_phase,) = spans["fetchcore.fetch.read"]
        assert _duration_s(read_phase) == pytest.approx(0.7, abs=1e-6)
        (plan,) = spans["fetchcore.fetch.plan"]
        assert plan.attributes == {"fetchcore.reads": 4}
        first_read = spans["fetchcore.read"][0]
        assert _duration_s(first_read) == pytest.approx(0.3, abs=1e-6)
        assert first_read.attributes == {
            "fetchcore.read.kind": "range",
            "fetchcore.read.source_id": MPACKS[0],
            "fetchcore.read.bytes": 0,
            "fetchcore.read.attempt": 1,
            "fetchcore.read.outcome": "timeout",
        }
        assert first_read.status.status_code is StatusCode.ERROR
        assert all(
            read.status.status_code is StatusCode.UNSET for read in spans["fetchcore.read"][1:]
        )

    def test_concurrent_fetches_keep_their_own_trees(self, telemetry: Telemetry) -> None:
        clock = FakeClock()
        first, second = (
            FetchObservation.start(
                telemetry.observer, repo_id=repo, want_count=1, have_count=0, clock=clock
            )
            for repo in ("repo-a", "repo-b")
        )
        for seen, mpack_id in [(first, MPACKS[0]), (second, MPACKS[1]), (first, MPACKS[2])]:
            with seen.reading(ReadKind.MPACK, mpack_id) as read:
                read.received(b"x")
        for seen in (second, first):
            seen.fail(ObjectStoreError("down"))
        roots = {
            span.attributes["fetchcore.repo_id"]: span.context.span_id
            for span in telemetry.finished_spans()["fetchcore.serve_fetch"]
            if span.attributes
        }
        parents = {
            span.attributes["fetchcore.read.source_id"]: span.parent.span_id
            for span in telemetry.finished_spans()["fetchcore.read"]
            if span.attributes and span.parent
        }
        assert parents == {
            MPACKS[0]: roots["repo-a"],
            MPACKS[1]: roots["repo-b"],
            MPACKS[2]: roots["repo-a"],
        }


class TestServedFetchMetrics:
    def test_a_served_fetch_records_its_duration_requests_bytes_and_cache_hits(
        self, telemetry: Telemetry
    ) -> None:
        result = emit_served_fetch(telemetry.observer, FakeClock())
        points = telemetry.points()
        duration = points.pop(
            (
                "fetchcore.fetch.duration",
                frozenset({("outcome", "ok"), ("reused", False)}),
            )
        )
        assert duration == (1, pytest.approx(0.785))
        assert points == {
            ("fetchcore.storage.requests", frozenset({("kind", "range"), ("outcome", "ok")})): 4,
            (
                "fetchcore.storage.requests",
                frozenset({("kind", "range"), ("outcome", "timeout")}),
            ): 1,
            ("fetchcore.storage.bytes_read", frozenset({("kind", "range")})): 4 * RANGE_BYTES,
            ("fetchcore.storage.retries", frozenset({("kind", "range")})): 1,
            (
                "fetchcore.storage.bytes_written",
                frozenset({("operation", "fetch")}),
            ): result.size_bytes,
            ("fetchcore.fetch.cache_hits", frozenset()): 7,
        }

    def test_a_reused_document_is_counted_and_nothing_is_written(
        self, telemetry: Telemetry
    ) -> None:
        emit_served_fetch(telemetry.observer, FakeClock(), uploaded=False)
        points = telemetry.points()
        assert points[("fetchcore.fetch.reused", frozenset())] == 1
        assert points[("fetchcore.storage.bytes_written", frozenset({("operation", "fetch")}))] == 0
        duration_key = (
            "fetchcore.fetch.duration",
            frozenset({("outcome", "ok"), ("reused", True)}),
        )
        assert duration_key in points


class TestFailedFetch:
    def test_the_failure_is_an_error_span_and_counted_by_error_class(
        self, telemetry: Telemetry
    ) -> None:
        with pytest.raises(ObjectStoreError):
            emit_failed_fetch(telemetry.observer, FakeClock())
        spans = telemetry.finished_spans()
        (root,) = spans["fetchcore.serve_fetch"]
        assert root.status.status_code is StatusCode.ERROR
        assert root.status.description is not None
        assert "X-Amz-Signature" not in root.status.description
        assert root.attributes is not None
        assert root.attributes["error.type"] == "ObjectStoreError"
        assert [event.name for event in root.events] == ["legacy_fallback"]
        (phase,) = spans["fetchcore.fetch.read"]
        assert phase.status.status_code is StatusCode.ERROR
        points = telemetry.points()
        failure = frozenset({("operation", "fetch"), ("error.type", "ObjectStoreError")})
        assert points[("fetchcore.failures", failure)] == 1
        assert points[("fetchcore.fetch.legacy_fallbacks", frozenset())] == 2
        missing = frozenset({("kind", "mpack"), ("outcome", "missing")})
        assert points[("fetchcore.storage.requests", missing)] == 2
        error_tags = frozenset(
            {("outcome", "error"), ("reused", False), ("error.type", "ObjectStoreError")}
        )
        assert ("fetchcore.fetch.duration", error_tags) in points


class TestIngest:
    def test_an_ingest_span_has_a_child_per_phase_and_its_metrics(
        self, telemetry: Telemetry
    ) -> None:
        emit_ingest(telemetry.observer, FakeClock(), mpack_bytes=9_000)
        spans = telemetry.finished_spans()
        (root,) = spans.pop("fetchcore.ingest_push")
        assert sorted(spans) == sorted(
            f"fetchcore.ingest.{phase}"
            for phase in ("parse", "verify", "connect", "store", "record")
        )
        assert all(
            span.parent is not None and span.parent.span_id == root.context.span_id
            for (span,) in spans.values()
        )
        assert root.attributes is not None
        assert root.attributes["fetchcore.bytes_written"] == 9_000
        assert root.attributes["fetchcore.mpack_bytes"] == 9_000
        points = telemetry.points()
        assert points[("fetchcore.ingest.duration", frozenset({("outcome", "ok")}))] == (
            1,
            pytest.approx(0.05),
        )
        assert points[
            ("fetchcore.storage.bytes_written", frozenset({("operation", "ingest")}))
        ] == (9_000)


def test_events_of_an_operation_it_did_not_see_start_still_make_spans_and_points(
    telemetry: Telemetry,
) -> None:
    unknown = 10**9
    telemetry.observer.emit(ReadFinished(unknown, ReadKind.MPACK, MPACKS[0], 5, 0.01))
    telemetry.observer.emit(FetchFinished(unknown, "repo-1", "ok", 0.02))
    (read,) = telemetry.finished_spans()["fetchcore.read"]
    assert read.parent is None
    assert "fetchcore.serve_fetch" not in telemetry.finished_spans()
    ok = frozenset({("outcome", "ok"), ("reused", False)})
    assert telemetry.points()[("fetchcore.fetch.duration", ok)] == (1, pytest.approx(0.02))
