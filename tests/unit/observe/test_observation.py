"""What an observation emits: per phase and per read, never per blob, and a finish on every path."""

from __future__ import annotations

import logging

import attrs
import pytest

from fetchcore import ObjectStoreError
from fetchcore.observe import (
    Event,
    FetchFinished,
    FetchObservation,
    FetchPhase,
    FetchStarted,
    IngestFinished,
    IngestObservation,
    IngestStarted,
    LegacyFallback,
    Operation,
    PhaseFinished,
    ReadFinished,
    ReadKind,
    ReadOutcome,
    RecordingObserver,
    RetryScheduled,
)
from tests.unit.observe.sequences import (
    MPACKS,
    RANGE_BYTES,
    FakeClock,
    emit_failed_fetch,
    emit_ingest,
    emit_served_fetch,
)


def _kinds(events: list[Event]) -> list[str]:
    return [type(event).__name__ for event in events]


class TestServedFetch:
    def test_the_events_come_in_the_order_of_the_work(self) -> None:
        recorder = RecordingObserver()
        emit_served_fetch(recorder, FakeClock())
        assert _kinds(recorder.events) == [
            "FetchStarted",
            "PhaseFinished",  # resolve
            "PhaseFinished",  # lookup
            "PhaseFinished",  # plan
            "ReadFinished",  # timed out
            "RetryScheduled",
            "ReadFinished",
            "ReadFinished",
            "ReadFinished",
            "ReadFinished",
            "PhaseFinished",  # read
            "PhaseFinished",  # upload
            "FetchFinished",
        ]

    def test_every_event_carries_the_operation_id(self) -> None:
        recorder = RecordingObserver()
        emit_served_fetch(recorder, FakeClock())
        started = recorder.events[0]
        assert isinstance(started, FetchStarted)
        assert {event.operation_id for event in recorder.events} == {started.operation_id}

    def test_two_observations_have_different_ids(self) -> None:
        first, second = (
            FetchObservation.start(RecordingObserver(), repo_id="r", want_count=1, have_count=0)
            for _ in range(2)
        )
        assert first.operation_id != second.operation_id

    def test_phases_carry_their_durations_and_the_attributes_the_block_added(self) -> None:
        recorder = RecordingObserver()
        emit_served_fetch(recorder, FakeClock())
        phases = {event.name: event for event in recorder.of_type(PhaseFinished)}
        assert list(phases) == [str(phase) for phase in FetchPhase]
        assert phases["resolve"].duration_s == pytest.approx(0.010)
        assert phases["read"].duration_s == pytest.approx(0.300 + 0.100 * 4)
        assert phases["plan"].attributes == {"reads": 4}
        assert all(e.ok and e.operation is Operation.FETCH for e in phases.values())

    def test_a_timed_out_read_is_reported_as_a_timeout_and_its_retry_as_the_next_attempt(
        self,
    ) -> None:
        recorder = RecordingObserver()
        emit_served_fetch(recorder, FakeClock())
        reads = [
            (read.source_id, read.attempt, read.outcome, read.bytes)
            for read in recorder.of_type(ReadFinished)
        ]
        assert reads == [
            (MPACKS[0], 1, ReadOutcome.TIMEOUT, 0),
            (MPACKS[0], 2, ReadOutcome.OK, RANGE_BYTES),
            *[(mpack_id, 1, ReadOutcome.OK, RANGE_BYTES) for mpack_id in MPACKS[1:]],
        ]
        assert recorder.of_type(ReadFinished)[0].duration_s == pytest.approx(0.3)
        (retry,) = recorder.of_type(RetryScheduled)
        assert (retry.attempt, retry.delay_s) == (2, 0.05)
        assert retry.reason == "TimeoutError no answer in 0.3 s"

    def test_the_finish_reports_the_result_and_the_whole_duration(self) -> None:
        recorder = RecordingObserver()
        result = emit_served_fetch(recorder, FakeClock())
        finished = recorder.events[-1]
        assert isinstance(finished, FetchFinished)
        assert finished.outcome == "ok"
        assert finished.fetch_id == result.mpack_id
        assert (finished.commit_count, finished.snapshot_count, finished.blob_count) == (
            3, 3, 25_000,
        )  # fmt: skip
        assert (finished.cache_hits, finished.range_gets, finished.requests) == (7, 5, 5)
        assert finished.bytes_read == 4 * RANGE_BYTES
        assert finished.bytes_written == result.size_bytes
        assert not finished.reused
        assert finished.duration_s == pytest.approx(0.010 + 0.020 + 0.005 + 0.7 + 0.05)

    def test_a_document_already_stored_is_reported_as_reused_and_nothing_written(self) -> None:
        recorder = RecordingObserver()
        emit_served_fetch(recorder, FakeClock(), uploaded=False)
        finished = recorder.events[-1]
        assert isinstance(finished, FetchFinished)
        assert finished.reused
        assert finished.bytes_written == 0

    def test_the_timings_are_those_of_the_phases(self) -> None:
        clock = FakeClock()
        seen = FetchObservation.start(
            RecordingObserver(), repo_id="r", want_count=1, have_count=0, clock=clock
        )
        with seen.phase(FetchPhase.LOOKUP):
            clock.advance(0.5)
        clock.advance(0.25)
        assert seen.timings().as_dict() == {"lookup": 0.5}
        assert seen.timings().total_s == 0.75


class TestFailedFetch:
    def test_the_failure_is_reported_once_with_the_reads_made_until_then(self) -> None:
        recorder = RecordingObserver()
        with pytest.raises(ObjectStoreError, match="GET failed for good"):
            emit_failed_fetch(recorder, FakeClock())
        (finished,) = recorder.of_type(FetchFinished)
        assert finished.outcome == "error"
        assert finished.error_type == "ObjectStoreError"
        assert (finished.mpack_gets, finished.object_gets, finished.bytes_read) == (2, 1, 7)
        assert recorder.events[-1] is finished

    def test_the_failed_phase_is_reported_as_not_ok(self) -> None:
        recorder = RecordingObserver()
        with pytest.raises(ObjectStoreError, match="GET failed"):
            emit_failed_fetch(recorder, FakeClock())
        (phase,) = recorder.of_type(PhaseFinished)
        assert (phase.name, phase.ok) == ("read", False)

    def test_missing_mpacks_are_reported_as_missing_reads_and_a_legacy_fallback(self) -> None:
        recorder = RecordingObserver()
        with pytest.raises(ObjectStoreError, match="GET failed"):
            emit_failed_fetch(recorder, FakeClock())
        outcomes = [read.outcome for read in recorder.of_type(ReadFinished)]
        assert outcomes == [ReadOutcome.MISSING, ReadOutcome.MISSING, ReadOutcome.OK]
        (fallback,) = recorder.of_type(LegacyFallback)
        assert fallback == LegacyFallback(fallback.operation_id, 2, MPACKS[:2])

    def test_the_error_message_in_the_event_has_no_signature(self) -> None:
        recorder = RecordingObserver()
        with pytest.raises(ObjectStoreError, match="X-Amz-Signature"):
            emit_failed_fetch(recorder, FakeClock())
        finished = recorder.events[-1]
        assert isinstance(finished, FetchFinished)
        assert finished.error_message is not None
        assert "amazonaws.com/fetch/sha256-abc?REDACTED" in finished.error_message
        assert "X-Amz" not in finished.error_message

    def test_a_cancelled_fetch_is_reported_as_failed(self) -> None:
        recorder = RecordingObserver()
        with (
            pytest.raises(KeyboardInterrupt),
            FetchObservation.start(recorder, repo_id="r", want_count=1, have_count=0),
        ):
            raise KeyboardInterrupt
        finished = recorder.events[-1]
        assert isinstance(finished, FetchFinished)
        assert finished.error_type == "KeyboardInterrupt"

    def test_a_block_left_without_succeed_is_reported_as_not_finished(self) -> None:
        recorder = RecordingObserver()
        with FetchObservation.start(recorder, repo_id="r", want_count=1, have_count=0):
            pass
        (finished,) = recorder.of_type(FetchFinished)
        assert (finished.outcome, finished.error_type) == ("error", "NotFinishedError")

    def test_a_corrupt_read_is_reported_as_corrupt(self) -> None:
        recorder = RecordingObserver()
        seen = FetchObservation.start(recorder, repo_id="r", want_count=1, have_count=0)
        with seen.reading(ReadKind.MPACK, MPACKS[0]) as read:
            read.received(b"garbage")
            read.corrupt()
        (event,) = recorder.of_type(ReadFinished)
        assert (event.outcome, event.bytes) == (ReadOutcome.CORRUPT, 7)


class TestIngest:
    def test_an_ingest_reports_its_phases_and_what_it_wrote(self) -> None:
        recorder = RecordingObserver()
        emit_ingest(recorder, FakeClock(), mpack_bytes=9_000)
        assert isinstance(recorder.events[0], IngestStarted)
        phases = [phase.name for phase in recorder.of_type(PhaseFinished)]
        assert phases == ["parse", "verify", "connect", "store", "record"]
        finished = recorder.events[-1]
        assert isinstance(finished, IngestFinished)
        assert (finished.outcome, finished.bytes_written, finished.blob_count) == ("ok", 9_000, 10)
        assert finished.duration_s == pytest.approx(0.05)

    def test_an_ingest_of_a_stored_mpack_wrote_nothing(self) -> None:
        recorder = RecordingObserver()
        seen = IngestObservation.start(recorder, repo_id="r", mpack_bytes=100)
        stored = emit_ingest(RecordingObserver(), FakeClock())
        seen.succeed(attrs.evolve(stored, uploaded=False))
        finished = recorder.events[-1]
        assert isinstance(finished, IngestFinished)
        assert (finished.bytes_written, finished.uploaded) == (0, False)

    def test_a_failed_ingest_is_reported_with_its_error_class(self) -> None:
        recorder = RecordingObserver()
        with (
            pytest.raises(ValueError),
            IngestObservation.start(recorder, repo_id="r", mpack_bytes=100),
        ):
            raise ValueError("bad document")
        finished = recorder.events[-1]
        assert isinstance(finished, IngestFinished)
        assert (finished.outcome, finished.error_type) == ("error", "ValueError")


class _BrokenObserver:
    def emit(self, event: Event) -> None:
        raise RuntimeError("metrics backend down")


def test_an_observer_that_raises_never_fails_the_operation(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.WARNING, logger="fetchcore.observe"):
        result = emit_served_fetch(_BrokenObserver(), FakeClock())
    assert result.blob_count == 25_000
    assert "metrics backend down" in caplog.text
