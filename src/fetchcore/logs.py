"""Events as stdlib ``logging`` records, under the ``fetchcore`` logger tree.

- ``fetchcore.fetch``: one INFO record per served fetch (WARNING when it
  failed), DEBUG per phase, WARNING when blobs fall back to legacy keys;
- ``fetchcore.ingest``: the same per ingest;
- ``fetchcore.read``: DEBUG per storage read attempt and per retry.

Every field of the event is also on the record (``extra``), so a JSON log
formatter gets ``repo_id``, ``blob_count``, ``bytes_read``, ``requests``,
``duration_s``, ``outcome`` ... without parsing the message; ``event`` names
the kind of record (``fetch_finished``). Events carry no URL and their error
messages are redacted where they are made, so nothing secret reaches a record.
A record is only built when its logger is enabled for its level.
"""

from __future__ import annotations

import logging
from typing import Any

import attrs

from fetchcore.events import (
    Event,
    FetchFinished,
    FetchStarted,
    IngestFinished,
    IngestStarted,
    LegacyFallback,
    Operation,
    PhaseFinished,
    ReadFinished,
    RetryScheduled,
)

FETCH_LOGGER = "fetchcore.fetch"
INGEST_LOGGER = "fetchcore.ingest"
READ_LOGGER = "fetchcore.read"

_Described = tuple[str, dict[str, Any]]


def _fields(event: Event, name: str, **more: Any) -> dict[str, Any]:
    fields = attrs.asdict(event, recurse=False)
    fields.update(more, event=name)
    return fields


def _failure(event: FetchFinished | IngestFinished) -> str:
    return "" if event.error_type is None else f": {event.error_type}: {event.error_message}"


def _fetch_finished(event: FetchFinished) -> _Described:
    reused = " (document reused)" if event.reused else ""
    message = (
        f"fetch {event.outcome}: repo {event.repo_id}, {event.commit_count} commits, "
        f"{event.snapshot_count} snapshots, {event.blob_count} blobs, {event.bytes_read} bytes "
        f"read in {event.requests} requests ({event.cache_hits} cache hits), "
        f"{event.bytes_written} bytes written{reused}, {event.duration_s:.3f} s{_failure(event)}"
    )
    return message, _fields(event, "fetch_finished", requests=event.requests)


def _ingest_finished(event: IngestFinished) -> _Described:
    kept = " (mpack already stored)" if event.outcome == "ok" and not event.uploaded else ""
    message = (
        f"ingest {event.outcome}: repo {event.repo_id}, {event.commit_count} commits, "
        f"{event.snapshot_count} snapshots, {event.blob_count} blobs, "
        f"{event.bytes_written} bytes written{kept}, {event.duration_s:.3f} s{_failure(event)}"
    )
    return message, _fields(event, "ingest_finished")


def _phase_finished(event: PhaseFinished) -> _Described:
    done = "done" if event.ok else "failed"
    message = f"{event.operation} phase {event.name} {done} in {event.duration_s:.3f} s"
    # A LogRecord has a ``name`` of its own: the phase's goes in as ``phase``.
    fields = {
        "event": "phase_finished",
        "operation_id": event.operation_id,
        "operation": str(event.operation),
        "phase": event.name,
        "duration_s": event.duration_s,
        "ok": event.ok,
        "phase_attributes": dict(event.attributes),
    }
    return message, fields


def _describe(event: Event) -> _Described:
    """The record's message and ``extra`` fields for ``event``."""
    match event:
        case FetchStarted():
            message = (
                f"fetch started: repo {event.repo_id}, "
                f"{event.want_count} wanted, {event.have_count} had"
            )
            return message, _fields(event, "fetch_started")
        case IngestStarted():
            size = "in pieces" if event.mpack_bytes is None else f"{event.mpack_bytes} bytes"
            message = f"ingest started: repo {event.repo_id}, {size}"
            return message, _fields(event, "ingest_started")
        case PhaseFinished():
            return _phase_finished(event)
        case ReadFinished():
            message = (
                f"read {event.kind} {event.source_id}: {event.outcome}, {event.bytes} bytes "
                f"in {event.duration_s:.3f} s (attempt {event.attempt})"
            )
            return message, _fields(event, "read_finished")
        case RetryScheduled():
            message = (
                f"retry {event.kind} {event.source_id}: attempt {event.attempt} "
                f"in {event.delay_s:.3f} s after {event.reason}"
            )
            return message, _fields(event, "retry_scheduled")
        case LegacyFallback():
            failed = ", ".join(event.failed_mpacks) or "none"
            message = (
                f"{event.object_count} blobs fall back to legacy per-object keys; "
                f"mpacks that failed: {failed}"
            )
            return message, _fields(event, "legacy_fallback")
        case FetchFinished():
            return _fetch_finished(event)
        case IngestFinished():
            return _ingest_finished(event)


@attrs.frozen
class LoggingObserver:
    """An observer that writes events as log records (see the module doc for which)."""

    fetch: logging.Logger = attrs.field(factory=lambda: logging.getLogger(FETCH_LOGGER))
    ingest: logging.Logger = attrs.field(factory=lambda: logging.getLogger(INGEST_LOGGER))
    read: logging.Logger = attrs.field(factory=lambda: logging.getLogger(READ_LOGGER))

    def emit(self, event: Event) -> None:
        """Write ``event`` as a record, if its logger is enabled for its level."""
        logger, level = self._destination(event)
        if logger.isEnabledFor(level):
            message, fields = _describe(event)
            logger.log(level, message, extra=fields)

    def _destination(self, event: Event) -> tuple[logging.Logger, int]:
        match event:
            case ReadFinished() | RetryScheduled():
                return self.read, logging.DEBUG
            case FetchStarted():
                return self.fetch, logging.DEBUG
            case IngestStarted():
                return self.ingest, logging.DEBUG
            case PhaseFinished():
                logger = self.fetch if event.operation is Operation.FETCH else self.ingest
                return logger, logging.DEBUG
            case LegacyFallback():
                return self.fetch, logging.WARNING
            case FetchFinished():
                return self.fetch, logging.INFO if event.outcome == "ok" else logging.WARNING
            case IngestFinished():
                return self.ingest, logging.INFO if event.outcome == "ok" else logging.WARNING
