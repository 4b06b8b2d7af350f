"""Events as OpenTelemetry spans and metrics, through ``opentelemetry-api`` only.

The API is a no-op until the hub installs and configures the SDK, so this
observer costs a few microseconds per event in a hub that does not trace.

Spans: ``fetchcore.serve_fetch`` (or ``fetchcore.ingest_push``) opens at the
start event, as a child of whatever span is current in the caller (the hub's
request span), and ends at the finish event. Each phase and each storage read
becomes a child span of it. Phases and reads are reported when they end, with
their duration, so their spans are made then, with explicit start and end
times: the core never holds a span open across an ``await`` and never depends
on the OpenTelemetry context being carried into its tasks.

Metrics (instrument names, units and attributes are the dashboard's contract):

=====================================  ==========  ===============================
``fetchcore.fetch.duration``           s           ``outcome``, ``reused``, ``error.type``
``fetchcore.ingest.duration``          s           ``outcome``, ``error.type``
``fetchcore.storage.requests``         {request}   ``kind``, ``outcome``
``fetchcore.storage.bytes_read``       By          ``kind``
``fetchcore.storage.bytes_written``    By          ``operation``
``fetchcore.fetch.cache_hits``         {blob}
``fetchcore.fetch.reused``             {document}
``fetchcore.fetch.legacy_fallbacks``   {blob}
``fetchcore.storage.retries``          {retry}     ``kind``
``fetchcore.failures``                 {failure}   ``operation``, ``error.type``
=====================================  ==========  ===============================

Repository ids go on spans only, never on metrics (unbounded cardinality).
"""

from __future__ import annotations

import time

import attrs
from opentelemetry import metrics, trace
from opentelemetry.trace import Span, Status, StatusCode

from fetchcore._version import __version__
from fetchcore.events import (
    Event,
    FetchFinished,
    FetchStarted,
    IngestFinished,
    IngestStarted,
    LegacyFallback,
    PhaseFinished,
    ReadFinished,
    RetryScheduled,
)

FETCH_SPAN = "fetchcore.serve_fetch"
INGEST_SPAN = "fetchcore.ingest_push"
READ_SPAN = "fetchcore.read"

_INSTRUMENTATION = "fetchcore"


def phase_span_name(operation: str, phase: str) -> str:
    """The span name of one phase: ``fetchcore.fetch.resolve``, ``fetchcore.ingest.parse`` ..."""
    return f"fetchcore.{operation}.{phase}"


def _nanoseconds(seconds: float) -> int:
    return int(seconds * 1e9)


@attrs.frozen
class _Instruments:
    fetch_duration: metrics.Histogram
    ingest_duration: metrics.Histogram
    requests: metrics.Counter
    bytes_read: metrics.Counter
    bytes_written: metrics.Counter
    cache_hits: metrics.Counter
    reused: metrics.Counter
    legacy_fallbacks: metrics.Counter
    retries: metrics.Counter
    failures: metrics.Counter

    @classmethod
    def on(cls, meter: metrics.Meter) -> _Instruments:
        counter = meter.create_counter
        return cls(
            fetch_duration=meter.create_histogram(
                "fetchcore.fetch.duration", unit="s", description="serve_fetch duration"
            ),
            ingest_duration=meter.create_histogram(
                "fetchcore.ingest.duration", unit="s", description="ingest_push duration"
            ),
            requests=counter("fetchcore.storage.requests", "{request}", "storage read requests"),
            bytes_read=counter("fetchcore.storage.bytes_read", "By", "bytes read from storage"),
            bytes_written=counter(
                "fetchcore.storage.bytes_written", "By", "bytes written to storage"
            ),
            cache_hits=counter("fetchcore.fetch.cache_hits", "{blob}", "blobs from the cache"),
            reused=counter("fetchcore.fetch.reused", "{document}", "fetch documents reused"),
            legacy_fallbacks=counter(
                "fetchcore.fetch.legacy_fallbacks", "{blob}", "blobs sent to legacy keys"
            ),
            retries=counter("fetchcore.storage.retries", "{retry}", "storage reads retried"),
            failures=counter("fetchcore.failures", "{failure}", "failed fetches and ingests"),
        )


@attrs.define
class OpenTelemetryObserver:
    """An observer that turns events into spans and metric points.

    Args:
        tracer_provider: where spans go; default: the global provider.
        meter_provider: where metrics go; default: the global provider.
    """

    tracer_provider: trace.TracerProvider | None = None
    meter_provider: metrics.MeterProvider | None = None
    _tracer: trace.Tracer = attrs.field(init=False)
    _instruments: _Instruments = attrs.field(init=False)
    # The open span of each operation in flight, by operation id.
    _open: dict[int, Span] = attrs.field(init=False, factory=dict)

    def __attrs_post_init__(self) -> None:
        self._tracer = trace.get_tracer(
            _INSTRUMENTATION, __version__, tracer_provider=self.tracer_provider
        )
        meter = metrics.get_meter(_INSTRUMENTATION, __version__, meter_provider=self.meter_provider)
        self._instruments = _Instruments.on(meter)

    def emit(self, event: Event) -> None:
        """Turn ``event`` into spans and metric points."""
        match event:
            case FetchStarted():
                self._open_span(
                    event.operation_id,
                    FETCH_SPAN,
                    {
                        "fetchcore.repo_id": event.repo_id,
                        "fetchcore.want_count": event.want_count,
                        "fetchcore.have_count": event.have_count,
                    },
                )
            case IngestStarted():
                self._open_span(
                    event.operation_id,
                    INGEST_SPAN,
                    {
                        "fetchcore.repo_id": event.repo_id,
                        # -1: a push received in pieces, its size not known yet
                        "fetchcore.mpack_bytes": -1
                        if event.mpack_bytes is None
                        else event.mpack_bytes,
                    },
                )
            case PhaseFinished():
                self._phase_finished(event)
            case ReadFinished():
                self._read_finished(event)
            case RetryScheduled():
                self._retry_scheduled(event)
            case LegacyFallback():
                self._legacy_fallback(event)
            case FetchFinished():
                self._fetch_finished(event)
            case IngestFinished():
                self._ingest_finished(event)

    def _open_span(self, operation_id: int, name: str, attributes: dict[str, str | int]) -> None:
        self._open[operation_id] = self._tracer.start_span(name, attributes=attributes)

    def _child_span(
        self,
        operation_id: int,
        name: str,
        duration_s: float,
        attributes: dict[str, str | int | float | bool],
        ok: bool,
    ) -> None:
        parent = self._open.get(operation_id)
        context = trace.set_span_in_context(parent) if parent is not None else None
        end = time.time_ns()
        span = self._tracer.start_span(
            name, context, attributes=attributes, start_time=end - _nanoseconds(duration_s)
        )
        if not ok:
            span.set_status(Status(StatusCode.ERROR))
        span.end(end_time=end)

    def _phase_finished(self, event: PhaseFinished) -> None:
        attributes = {f"fetchcore.{key}": value for key, value in event.attributes.items()}
        name = phase_span_name(event.operation, event.name)
        self._child_span(event.operation_id, name, event.duration_s, attributes, event.ok)

    def _read_finished(self, event: ReadFinished) -> None:
        attributes: dict[str, str | int | float | bool] = {
            "fetchcore.read.kind": str(event.kind),
            "fetchcore.read.source_id": event.source_id,
            "fetchcore.read.bytes": event.bytes,
            "fetchcore.read.attempt": event.attempt,
            "fetchcore.read.outcome": str(event.outcome),
        }
        ok = event.outcome == "ok"
        self._child_span(event.operation_id, READ_SPAN, event.duration_s, attributes, ok)
        kind = {"kind": str(event.kind)}
        self._instruments.requests.add(1, {**kind, "outcome": str(event.outcome)})
        self._instruments.bytes_read.add(event.bytes, kind)

    def _retry_scheduled(self, event: RetryScheduled) -> None:
        self._instruments.retries.add(1, {"kind": str(event.kind)})
        span = self._open.get(event.operation_id)
        if span is not None:
            span.add_event(
                "retry",
                {
                    "fetchcore.read.kind": str(event.kind),
                    "fetchcore.read.source_id": event.source_id,
                    "fetchcore.read.attempt": event.attempt,
                    "fetchcore.retry.delay_s": event.delay_s,
                    "fetchcore.retry.reason": event.reason,
                },
            )

    def _legacy_fallback(self, event: LegacyFallback) -> None:
        self._instruments.legacy_fallbacks.add(event.object_count)
        span = self._open.get(event.operation_id)
        if span is not None:
            span.add_event(
                "legacy_fallback",
                {
                    "fetchcore.legacy.object_count": event.object_count,
                    "fetchcore.legacy.failed_mpacks": list(event.failed_mpacks),
                },
            )

    def _close_span(
        self, event: FetchFinished | IngestFinished, attributes: dict[str, str | int | bool]
    ) -> None:
        span = self._open.pop(event.operation_id, None)
        if span is None:
            return
        span.set_attributes(attributes)
        span.set_attribute("fetchcore.outcome", event.outcome)
        if event.error_type is not None:
            span.set_attribute("error.type", event.error_type)
            span.set_status(Status(StatusCode.ERROR, event.error_message))
        span.end()

    def _count_failure(self, operation: str, event: FetchFinished | IngestFinished) -> None:
        if event.error_type is not None:
            attributes = {"operation": operation, "error.type": event.error_type}
            self._instruments.failures.add(1, attributes)

    def _fetch_finished(self, event: FetchFinished) -> None:
        self._close_span(
            event,
            {
                "fetchcore.fetch_id": event.fetch_id or "",
                "fetchcore.commit_count": event.commit_count,
                "fetchcore.snapshot_count": event.snapshot_count,
                "fetchcore.blob_count": event.blob_count,
                "fetchcore.cache_hits": event.cache_hits,
                "fetchcore.requests": event.requests,
                "fetchcore.mpack_gets": event.mpack_gets,
                "fetchcore.range_gets": event.range_gets,
                "fetchcore.object_gets": event.object_gets,
                "fetchcore.bytes_read": event.bytes_read,
                "fetchcore.bytes_written": event.bytes_written,
                "fetchcore.reused": event.reused,
            },
        )
        tags: dict[str, str | bool] = {"outcome": event.outcome, "reused": event.reused}
        if event.error_type is not None:
            tags["error.type"] = event.error_type
        self._instruments.fetch_duration.record(event.duration_s, tags)
        self._instruments.bytes_written.add(event.bytes_written, {"operation": "fetch"})
        self._instruments.cache_hits.add(event.cache_hits)
        if event.reused:
            self._instruments.reused.add(1)
        self._count_failure("fetch", event)

    def _ingest_finished(self, event: IngestFinished) -> None:
        self._close_span(
            event,
            {
                "fetchcore.mpack_id": event.mpack_id or "",
                "fetchcore.commit_count": event.commit_count,
                "fetchcore.snapshot_count": event.snapshot_count,
                "fetchcore.blob_count": event.blob_count,
                "fetchcore.bytes_written": event.bytes_written,
                "fetchcore.uploaded": event.uploaded,
            },
        )
        tags = {"outcome": event.outcome}
        if event.error_type is not None:
            tags["error.type"] = event.error_type
        self._instruments.ingest_duration.record(event.duration_s, tags)
        self._instruments.bytes_written.add(event.bytes_written, {"operation": "ingest"})
        self._count_failure("ingest", event)
