"""The span tree of one real fetch: 25,000 blobs on SQLite + a local directory.

    python -m benchmarks.trace_fetch [--blobs 25000] [--pushes 4]

Ingests a synthetic history into a fresh SQLite index and directory store (in a
temporary directory), serves a full fetch with the OpenTelemetry SDK recording
spans in memory, and prints the tree: each span's duration and, for the
children, when it started after the fetch span began.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
from pathlib import Path

from fetchcore.adapters.filesystem import FilesystemObjectStore
from fetchcore.adapters.sql import SqlIndexRepo
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from fetchcore import FetchResult, ingest_push, serve_fetch
from fetchcore.observe import SILENT, OpenTelemetryObserver
from fetchcore.testing import synthetic_history


async def traced_fetch(
    directory: Path, blobs: int, pushes: int
) -> tuple[FetchResult, list[ReadableSpan]]:
    """Ingest the history silently, then serve one traced full fetch."""
    history = synthetic_history(blob_count=blobs, pushes=pushes)
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    observer = OpenTelemetryObserver(tracer_provider=provider)
    url = f"sqlite+aiosqlite:///{directory / 'index.db'}"
    async with SqlIndexRepo.connect(url, create_schema=True) as index:
        store = FilesystemObjectStore(directory / "objects")
        for push in history:
            await ingest_push(index, store, repo_id="demo", mpack=push.data, observer=SILENT)
        want = [history[-1].commit_id]
        result = await serve_fetch(index, store, repo_id="demo", want=want, observer=observer)
    provider.shutdown()
    return result, list(exporter.get_finished_spans())


def _ms(nanoseconds: int) -> float:
    return nanoseconds / 1e6


def span_tree(spans: list[ReadableSpan]) -> list[str]:
    """The root span, then its children in the order they started."""
    (root,) = [span for span in spans if span.parent is None]
    assert root.start_time is not None
    assert root.end_time is not None
    lines = [f"{root.name:34} {_ms(root.end_time - root.start_time):9.1f} ms"]
    children = sorted((s for s in spans if s.parent is not None), key=lambda s: s.start_time or 0)
    for span in children:
        assert span.start_time is not None
        assert span.end_time is not None
        took, at = _ms(span.end_time - span.start_time), _ms(span.start_time - root.start_time)
        lines.append(f"  {span.name:32} {took:9.1f} ms  (+{at:8.1f} ms)")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--blobs", type=int, default=25_000)
    parser.add_argument("--pushes", type=int, default=4)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as directory:
        result, spans = asyncio.run(traced_fetch(Path(directory), args.blobs, args.pushes))
    print("\n".join(span_tree(spans)))
    timings = result.stats.timings
    phases = ", ".join(f"{name} {seconds * 1000:.1f}" for name, seconds in timings.phases)
    print(f"timings (ms): {phases}; total {timings.total_s * 1000:.1f}")
    print(f"{result.blob_count:,} blobs, {result.stats.requests} requests")


if __name__ == "__main__":
    main()
