"""fetchcore's observability, in one import: events, observers, timings, progress.

The core reports what it does as :mod:`~fetchcore.events` to an
:class:`Observer`. The entry points take ``observer: Observer | None = None``;
``None`` means :func:`default_observer`: stdlib logging (``fetchcore.*``
loggers) and OpenTelemetry (``opentelemetry-api``: a no-op until the hub
installs the SDK). A hub that wants neither passes :data:`SILENT`; one with its
own metrics system passes its own observer, or a :class:`FanOut` of several.
"""

from __future__ import annotations

import functools

from fetchcore.events import (
    Event,
    FanOut,
    FetchFinished,
    FetchPhase,
    FetchStarted,
    IngestFinished,
    IngestPhase,
    IngestStarted,
    LegacyFallback,
    Observer,
    Operation,
    PhaseFinished,
    ReadFinished,
    ReadKind,
    ReadOutcome,
    RecordingObserver,
    RetryScheduled,
)
from fetchcore.logs import FETCH_LOGGER, INGEST_LOGGER, READ_LOGGER, LoggingObserver
from fetchcore.observation import FetchObservation, IngestObservation, ReadRecord
from fetchcore.progress import Progress, ProgressCallback, ThrottledProgress
from fetchcore.redact import redact_url, redact_urls
from fetchcore.telemetry import OpenTelemetryObserver
from fetchcore.timings import PhaseTimer, Timings

SILENT: Observer = FanOut(())
"""An observer that drops every event."""


@functools.cache
def default_observer() -> Observer:
    """Logging and OpenTelemetry through the global providers (one instance per process)."""
    return FanOut((LoggingObserver(), OpenTelemetryObserver()))


def observer_or_default(observer: Observer | None) -> Observer:
    """``observer``, or :func:`default_observer` when it is ``None``."""
    return default_observer() if observer is None else observer


def throttled(callback: ProgressCallback | None) -> ProgressCallback | None:
    """``callback`` behind a :class:`ThrottledProgress` with its defaults (``None`` stays)."""
    return None if callback is None else ThrottledProgress(callback)


__all__ = [
    "FETCH_LOGGER",
    "INGEST_LOGGER",
    "READ_LOGGER",
    "SILENT",
    "Event",
    "FanOut",
    "FetchFinished",
    "FetchObservation",
    "FetchPhase",
    "FetchStarted",
    "IngestFinished",
    "IngestObservation",
    "IngestPhase",
    "IngestStarted",
    "LegacyFallback",
    "LoggingObserver",
    "Observer",
    "OpenTelemetryObserver",
    "Operation",
    "PhaseFinished",
    "PhaseTimer",
    "Progress",
    "ProgressCallback",
    "ReadFinished",
    "ReadKind",
    "ReadOutcome",
    "ReadRecord",
    "RecordingObserver",
    "RetryScheduled",
    "ThrottledProgress",
    "Timings",
    "default_observer",
    "observer_or_default",
    "redact_url",
    "redact_urls",
    "throttled",
]
