"""The cost of observing a 25,000-blob fetch: its events, its timings, its progress calls.

    python -m benchmarks.observe_overhead

A fetch emits per phase and per read, never per blob: for a 25,000-blob fetch
served by 4 ranged reads that is 12 events. This times that sequence (through
``FetchObservation``, as ``serve_fetch`` drives it) with four observers:

- silent: the observation's own bookkeeping, events dropped;
- default, unconfigured: logging below WARNING is off, OpenTelemetry is the API's no-op;
- default, a hub that logs INFO (a handler that formats every record);
- logging INFO plus the OpenTelemetry SDK recording spans and metrics in memory.

It also times 25,000 progress calls (one per blob) through the throttle, as
values and through ``ThrottledProgress.report``. For scale: the same fetch
takes about 1.2 s on PostgreSQL + S3 (benchmarks.fetch).
"""

from __future__ import annotations

import argparse
import io
import logging
import time
from collections.abc import Callable

from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from benchmarks.common import write_results
from fetchcore import FetchResult, FetchStats
from fetchcore.observe import (
    SILENT,
    FanOut,
    FetchObservation,
    FetchPhase,
    LoggingObserver,
    Observer,
    OpenTelemetryObserver,
    Progress,
    ThrottledProgress,
    default_observer,
)
from fetchcore.observe import ReadKind as Kind

BLOBS = 25_000
READS = 4
RANGE_BYTES = 4_000_000
MPACKS = [f"sha256:{n:064x}" for n in range(READS)]
RESULT = FetchResult(
    mpack_id="sha256:" + "f" * 64,
    mpack_url=None,
    commit_count=1,
    snapshot_count=1,
    blob_count=BLOBS,
    size_bytes=READS * RANGE_BYTES,
    uploaded=True,
    reused=False,
    stats=FetchStats(range_gets=READS, bytes_read=READS * RANGE_BYTES),
)
DATA = bytes(RANGE_BYTES)


def observed_fetch(observer: Observer) -> None:
    """The events of one 25,000-blob fetch, in the order serve_fetch emits them."""
    with FetchObservation.start(observer, repo_id="bench", want_count=1, have_count=0) as seen:
        for phase in (FetchPhase.RESOLVE, FetchPhase.LOOKUP, FetchPhase.PLAN):
            with seen.phase(phase):
                pass
        with seen.phase(FetchPhase.READ):
            for mpack_id in MPACKS:
                with seen.reading(Kind.RANGE, mpack_id) as read:
                    read.received(DATA)
        with seen.phase(FetchPhase.UPLOAD):
            pass
        seen.timings()
        seen.succeed(RESULT)


def progress_values() -> None:
    """One Progress value per blob through the default throttle."""
    throttle = ThrottledProgress(lambda progress: None)
    for done in range(1, BLOBS + 1):
        throttle(Progress(done, BLOBS, done * 640, BLOBS * 640))


def progress_reports() -> None:
    """One ``report`` call per blob through the default throttle (no value made per blob)."""
    throttle = ThrottledProgress(lambda progress: None)
    for done in range(1, BLOBS + 1):
        throttle.report(done, BLOBS, done * 640, BLOBS * 640)


def best_of(run: Callable[[], object], repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        started = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - started)
    return best


def _logging_at_info() -> None:
    handler = logging.StreamHandler(io.StringIO())
    handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(levelname)s %(message)s"))
    fetchcore_logger = logging.getLogger("fetchcore")
    fetchcore_logger.addHandler(handler)
    fetchcore_logger.setLevel(logging.INFO)


def _sdk_observer() -> Observer:
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(InMemorySpanExporter()))
    meter_provider = MeterProvider(metric_readers=[InMemoryMetricReader()])
    telemetry = OpenTelemetryObserver(tracer_provider, meter_provider)
    return FanOut((LoggingObserver(), telemetry))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=200)
    args = parser.parse_args()
    microseconds: dict[str, float] = {}

    def measure(name: str, run: Callable[[], object]) -> None:
        microseconds[name] = best_of(run, args.repeat) * 1e6
        print(f"{name:<40} {microseconds[name]:10.1f} µs")

    measure("fetch events, silent observer", lambda: observed_fetch(SILENT))
    measure("fetch events, default unconfigured", lambda: observed_fetch(default_observer()))
    _logging_at_info()
    measure("fetch events, default + logging INFO", lambda: observed_fetch(default_observer()))
    sdk = _sdk_observer()
    measure("fetch events, logging INFO + OTel SDK", lambda: observed_fetch(sdk))
    measure("25,000 Progress values, throttled", progress_values)
    measure("25,000 progress reports, throttled", progress_reports)
    path = write_results(
        "observe_overhead",
        {"blobs": BLOBS, "reads": READS, "events_per_fetch": 12, "microseconds": microseconds},
    )
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
