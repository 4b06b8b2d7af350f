"""What fetchcore reports about its work: the observer port and its events.

Rules this module keeps:
1. Events are plain frozen values, emitted per fetch, per ingest, per phase and
   per storage read, never per blob: a 25,000-blob fetch emits a few dozen.
2. Every event names its operation (``operation_id``): one observer serves many
   concurrent fetches and tells them apart by that id alone.
3. Nothing secret is in an event: error messages are redacted before they are
   put in one (see :mod:`fetchcore.redact`), and no URL is carried.

The core only emits; what an event becomes (a log record, a span, a metric
point) is the observer's business: :class:`~fetchcore.logs.LoggingObserver`,
:class:`~fetchcore.telemetry.OpenTelemetryObserver`, or a hub's own.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from typing import Protocol, TypeAlias, TypeVar

import attrs

AttributeValue: TypeAlias = str | int | float | bool


class Operation(enum.StrEnum):
    """The two entry points an event can belong to."""

    FETCH = "fetch"
    INGEST = "ingest"


class FetchPhase(enum.StrEnum):
    """The phases of ``serve_fetch``, in order."""

    RESOLVE = "resolve"  # commits sent and their snapshots
    LOOKUP = "lookup"  # cache entries and locations
    PLAN = "plan"  # the pure planner
    READ = "read"  # reads, decoding and verifying (and, when streaming, encoding)
    UPLOAD = "upload"  # encoding what is left, the upload's commit, presigning


class IngestPhase(enum.StrEnum):
    """The phases of ``ingest_push``, in order."""

    RECEIVE = "receive"  # a push in pieces: parsing, verifying and staging as it arrives
    PARSE = "parse"
    VERIFY = "verify"  # decoding and hashing every blob
    CONNECT = "connect"  # connectivity against what the repository has
    STORE = "store"  # the push mpack into the store
    RECORD = "record"  # the index batch


class ReadKind(enum.StrEnum):
    """What one storage read asked for."""

    MPACK = "mpack"  # a whole push mpack
    RANGE = "range"  # a byte range of a push mpack
    OBJECT = "object"  # a legacy per-object key


class ReadOutcome(enum.StrEnum):
    """How one storage read ended."""

    OK = "ok"
    MISSING = "missing"  # the store does not hold it
    CORRUPT = "corrupt"  # bytes came back but failed decoding or verification
    FAILED = "failed"  # an error (transient or not)
    TIMEOUT = "timeout"


@attrs.frozen
class FetchStarted:
    operation_id: int
    repo_id: str
    want_count: int
    have_count: int


@attrs.frozen
class IngestStarted:
    """One ``ingest_push`` began; ``mpack_bytes`` is None for a push received in pieces."""

    operation_id: int
    repo_id: str
    mpack_bytes: int | None


@attrs.frozen
class PhaseFinished:
    """One phase of an operation ended (``ok`` False when it raised)."""

    operation_id: int
    operation: Operation
    name: str
    duration_s: float
    ok: bool = True
    attributes: Mapping[str, AttributeValue] = attrs.field(factory=dict)


@attrs.frozen
class ReadFinished:
    """One storage read attempt ended. ``source_id``: the mpack or legacy object read."""

    operation_id: int
    kind: ReadKind
    source_id: str
    bytes: int
    duration_s: float
    attempt: int = 1
    outcome: ReadOutcome = ReadOutcome.OK


@attrs.frozen
class RetryScheduled:
    """A read failed transiently and is tried again after ``delay_s``."""

    operation_id: int
    kind: ReadKind
    source_id: str
    attempt: int  # the attempt about to be made (2 for the first retry)
    delay_s: float
    reason: str


@attrs.frozen
class LegacyFallback:
    """Blobs that no mpack could serve go to their legacy per-object keys."""

    operation_id: int
    object_count: int
    failed_mpacks: tuple[str, ...] = ()


@attrs.frozen
class FetchFinished:
    """One ``serve_fetch`` ended. On failure, counts are what was done until then."""

    operation_id: int
    repo_id: str
    outcome: str  # "ok" or "error"
    duration_s: float
    fetch_id: str | None = None
    commit_count: int = 0
    snapshot_count: int = 0
    blob_count: int = 0
    cache_hits: int = 0
    mpack_gets: int = 0
    range_gets: int = 0
    object_gets: int = 0
    bytes_read: int = 0
    bytes_written: int = 0
    reused: bool = False
    error_type: str | None = None
    error_message: str | None = None

    @property
    def requests(self) -> int:
        """Storage read requests issued."""
        return self.mpack_gets + self.range_gets + self.object_gets


@attrs.frozen
class IngestFinished:
    """One ``ingest_push`` ended. ``uploaded`` False: the store already held the mpack."""

    operation_id: int
    repo_id: str
    outcome: str  # "ok" or "error"
    duration_s: float
    mpack_id: str | None = None
    commit_count: int = 0
    snapshot_count: int = 0
    blob_count: int = 0
    bytes_written: int = 0
    uploaded: bool = False
    error_type: str | None = None
    error_message: str | None = None


Event: TypeAlias = (
    FetchStarted
    | IngestStarted
    | PhaseFinished
    | ReadFinished
    | RetryScheduled
    | LegacyFallback
    | FetchFinished
    | IngestFinished
)


_E = TypeVar("_E")


class Observer(Protocol):
    """Receives fetchcore's events. Called on the fetch's own thread or task.

    An observer must be cheap and must not block: it runs inline. An exception
    it raises is logged and swallowed; it never fails a fetch.
    """

    def emit(self, event: Event) -> None:
        """Handle one event."""
        ...


@attrs.frozen
class FanOut:
    """An observer that hands every event to each of ``observers``, in order."""

    observers: tuple[Observer, ...]

    def emit(self, event: Event) -> None:
        """Hand ``event`` to every observer."""
        for observer in self.observers:
            observer.emit(event)


@attrs.define
class RecordingObserver:
    """An observer that keeps every event, for tests and for a hub's own checks."""

    events: list[Event] = attrs.field(factory=list)

    def emit(self, event: Event) -> None:
        """Keep ``event``."""
        self.events.append(event)

    def of_type(self, kind: type[_E]) -> list[_E]:
        """The kept events of one type, in order."""
        return [event for event in self.events if isinstance(event, kind)]
