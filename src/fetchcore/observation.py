"""One fetch's or one ingest's reporting: the object the entry points hold.

An entry point opens an observation when it starts and keeps it to the end.
The observation gives the operation its id, times its phases (the
:class:`~fetchcore.timings.Timings` that go into the result), tallies its reads
and turns all of it into :mod:`~fetchcore.events` for the observer. It emits
per phase and per read, never per blob, and a failing observer never fails the
operation: its exception is logged and dropped.

Wiring, in ``serve_fetch``::

    with FetchObservation.start(observer, repo_id=..., want_count=..., have_count=...) as seen:
        with seen.phase(FetchPhase.RESOLVE):
            ...
        with seen.reading(ReadKind.RANGE, mpack_id, attempt) as read:   # in the executor
            read.received(await store.get_mpack_range(mpack_id, start, end))
        ...
        seen.succeed(result)            # or leave the block by an exception
"""

from __future__ import annotations

import itertools
import logging
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from types import TracebackType
from typing import Self

import attrs

from fetchcore.events import (
    AttributeValue,
    Event,
    FetchFinished,
    FetchStarted,
    IngestFinished,
    IngestStarted,
    LegacyFallback,
    Observer,
    Operation,
    PhaseFinished,
    ReadFinished,
    ReadKind,
    ReadOutcome,
    RetryScheduled,
)
from fetchcore.redact import redact_urls
from fetchcore.results import FetchResult, IngestResult
from fetchcore.timings import Clock, PhaseTimer, Timings

_log = logging.getLogger("fetchcore.observe")

# Operation ids only need to be unique within one process: observers key their
# per-operation state (an open span) by them.
_operation_ids = itertools.count(1)

_MAX_ERROR_MESSAGE = 500


class NotFinishedError(RuntimeError):
    """An observation's block ended without ``succeed()``: reported, never raised."""


_NOT_FINISHED = NotFinishedError("the observation ended without succeed()")


def _outcome_of(error: BaseException) -> ReadOutcome:
    return ReadOutcome.TIMEOUT if isinstance(error, TimeoutError) else ReadOutcome.FAILED


def describe_error(error: BaseException) -> tuple[str, str]:
    """An error's class name and its message, redacted (no URL query, no password) and cut short."""
    return type(error).__name__, redact_urls(str(error))[:_MAX_ERROR_MESSAGE]


@attrs.define
class ReadRecord:
    """What one read brought back; set inside :meth:`FetchObservation.reading`."""

    nbytes: int = 0
    outcome: ReadOutcome = ReadOutcome.OK

    def received(self, data: bytes | None) -> bytes | None:
        """Note what the store answered (``None``: missing) and hand it back."""
        if data is None:
            self.outcome = ReadOutcome.MISSING
        else:
            self.nbytes = len(data)
        return data

    def corrupt(self) -> None:
        """The bytes came back but failed decoding or verification."""
        self.outcome = ReadOutcome.CORRUPT


@attrs.define
class _Reporter:
    """What fetch and ingest observations share: the id, the timer, safe emission."""

    observer: Observer
    operation: Operation
    operation_id: int
    timer: PhaseTimer
    finished: bool = False

    def emit(self, event: Event) -> None:
        try:
            self.observer.emit(event)
        except Exception:
            _log.warning(
                "observer %r failed on %s", self.observer, type(event).__name__, exc_info=True
            )

    @contextmanager
    def phase(self, name: str, **attributes: AttributeValue) -> Iterator[dict[str, AttributeValue]]:
        """Time the block as phase ``name`` and report it; the block may add attributes."""
        found: dict[str, AttributeValue] = dict(attributes)
        start = self.timer.clock()
        ok = False
        try:
            yield found
            ok = True
        finally:
            duration = self.timer.clock() - start
            self.timer.add(name, duration)
            self.emit(PhaseFinished(self.operation_id, self.operation, name, duration, ok, found))


@attrs.define
class _Observation:
    """What the observations of fetch and ingest share: their id, phases, timings,
    one final event, and the ``with`` block that reports a failure on the way out."""

    _reporter: _Reporter
    repo_id: str

    @property
    def operation_id(self) -> int:
        """The id every event of this operation carries."""
        return self._reporter.operation_id

    def phase(
        self, name: str, **attributes: AttributeValue
    ) -> AbstractContextManager[dict[str, AttributeValue]]:
        """Time the block as phase ``name`` (a :class:`FetchPhase` or an
        :class:`IngestPhase`) and report it."""
        return self._reporter.phase(name, **attributes)

    def timings(self) -> Timings:
        """The phases measured until now, for ``FetchStats`` or ``IngestResult``."""
        return self._reporter.timer.timings()

    def fail(self, error: BaseException) -> None:
        """Report the failed operation."""
        raise NotImplementedError

    def _finish(self, event: Event) -> None:
        if not self._reporter.finished:
            self._reporter.finished = True
            self._reporter.emit(event)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        # Leaving without succeed() is a wiring bug; reporting it still closes the span.
        self.fail(error if error is not None else _NOT_FINISHED)


@attrs.define
class FetchObservation(_Observation):
    """The reporting of one ``serve_fetch``. Use it as a context manager."""

    _requests: dict[ReadKind, int] = attrs.field(factory=dict)
    _bytes_read: int = 0

    @classmethod
    def start(
        cls,
        observer: Observer,
        *,
        repo_id: str,
        want_count: int,
        have_count: int,
        clock: Clock = time.perf_counter,
    ) -> Self:
        """Open the observation of a fetch and report that it started."""
        reporter = _Reporter(observer, Operation.FETCH, next(_operation_ids), PhaseTimer(clock))
        reporter.emit(FetchStarted(reporter.operation_id, repo_id, want_count, have_count))
        return cls(reporter, repo_id)

    @classmethod
    def of_preview(
        cls, observer: Observer, *, repo_id: str, clock: Clock = time.perf_counter
    ) -> Self:
        """An observation of ``preview_fetch``: its phases only. A preview is not a
        fetch: no FetchStarted or FetchFinished, so no fetch span, record or metric."""
        reporter = _Reporter(observer, Operation.FETCH, next(_operation_ids), PhaseTimer(clock))
        reporter.finished = True
        return cls(reporter, repo_id)

    @contextmanager
    def reading(self, kind: ReadKind, source_id: str, attempt: int = 1) -> Iterator[ReadRecord]:
        """Time one storage read attempt and report it (an exception is its outcome)."""
        record = ReadRecord()
        start = self._reporter.timer.clock()
        try:
            yield record
        except BaseException as error:
            record.outcome = _outcome_of(error)
            raise
        finally:
            duration = self._reporter.timer.clock() - start
            self.read_finished(kind, source_id, record.nbytes, duration, attempt, record.outcome)

    def read_finished(
        self,
        kind: ReadKind,
        source_id: str,
        nbytes: int,
        duration_s: float,
        attempt: int = 1,
        outcome: ReadOutcome = ReadOutcome.OK,
    ) -> None:
        """Report one storage read attempt that the caller timed itself."""
        self._requests[kind] = self._requests.get(kind, 0) + 1
        self._bytes_read += nbytes
        self._reporter.emit(
            ReadFinished(self.operation_id, kind, source_id, nbytes, duration_s, attempt, outcome)
        )

    def retry_scheduled(
        self, kind: ReadKind, source_id: str, attempt: int, delay_s: float, error: BaseException
    ) -> None:
        """Report that a read is tried again (``attempt``: the one about to be made)."""
        reason = " ".join(describe_error(error))
        event = RetryScheduled(self.operation_id, kind, source_id, attempt, delay_s, reason)
        self._reporter.emit(event)

    def legacy_fallback(self, object_count: int, failed_mpacks: tuple[str, ...] = ()) -> None:
        """Report that ``object_count`` blobs go to their legacy per-object keys."""
        self._reporter.emit(LegacyFallback(self.operation_id, object_count, failed_mpacks))

    def succeed(self, result: FetchResult) -> None:
        """Report the served fetch. Call it once, last, inside the ``with`` block."""
        stats = result.stats
        self._finish(
            FetchFinished(
                self.operation_id,
                self.repo_id,
                "ok",
                self._reporter.timer.elapsed(),
                fetch_id=result.mpack_id,
                commit_count=result.commit_count,
                snapshot_count=result.snapshot_count,
                blob_count=result.blob_count,
                cache_hits=stats.cache_hits,
                mpack_gets=stats.mpack_gets,
                range_gets=stats.range_gets,
                object_gets=stats.object_gets,
                bytes_read=stats.bytes_read,
                bytes_written=result.size_bytes if result.uploaded else 0,
                reused=result.reused,
            )
        )

    def fail(self, error: BaseException) -> None:
        """Report the failed fetch, with the reads made until then."""
        error_type, message = describe_error(error)
        self._finish(
            FetchFinished(
                self.operation_id,
                self.repo_id,
                "error",
                self._reporter.timer.elapsed(),
                mpack_gets=self._requests.get(ReadKind.MPACK, 0),
                range_gets=self._requests.get(ReadKind.RANGE, 0),
                object_gets=self._requests.get(ReadKind.OBJECT, 0),
                bytes_read=self._bytes_read,
                error_type=error_type,
                error_message=message,
            )
        )


@attrs.define
class IngestObservation(_Observation):
    """The reporting of one ``ingest_push``. Use it as a context manager."""

    mpack_bytes: int | None
    """The push's size: None for a push in pieces until it is received."""

    @classmethod
    def start(
        cls,
        observer: Observer,
        *,
        repo_id: str,
        mpack_bytes: int | None,
        clock: Clock = time.perf_counter,
    ) -> Self:
        """Open the observation of an ingest and report that it started."""
        reporter = _Reporter(observer, Operation.INGEST, next(_operation_ids), PhaseTimer(clock))
        reporter.emit(IngestStarted(reporter.operation_id, repo_id, mpack_bytes))
        return cls(reporter, repo_id, mpack_bytes)

    def succeed(self, result: IngestResult) -> None:
        """Report the ingested push. Call it once, last, inside the ``with`` block."""
        self._finish(
            IngestFinished(
                self.operation_id,
                self.repo_id,
                "ok",
                self._reporter.timer.elapsed(),
                mpack_id=result.mpack_id,
                commit_count=result.commit_count,
                snapshot_count=result.snapshot_count,
                blob_count=result.blob_count,
                bytes_written=(self.mpack_bytes or 0) if result.uploaded else 0,
                uploaded=result.uploaded,
            )
        )

    def fail(self, error: BaseException) -> None:
        """Report the failed ingest."""
        error_type, message = describe_error(error)
        elapsed = self._reporter.timer.elapsed()
        self._finish(
            IngestFinished(
                self.operation_id,
                self.repo_id,
                "error",
                elapsed,
                error_type=error_type,
                error_message=message,
            )
        )
