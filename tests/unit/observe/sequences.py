"""Event sequences as the fetch and the ingest emit them, on a clock the test drives."""

from __future__ import annotations

import attrs

from fetchcore import FetchResult, FetchStats, IngestResult, ObjectStoreError
from fetchcore.observe import (
    FetchObservation,
    FetchPhase,
    IngestObservation,
    IngestPhase,
    Observer,
    ReadKind,
)

MPACKS = tuple(f"sha256:{n:064x}" for n in range(1, 5))
PRESIGNED = (
    "https://hub-bucket.s3.eu-west-1.amazonaws.com/fetch/sha256-abc?"
    "X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIAEXAMPLE%2F20261124%2Feu-west-1"
    "%2Fs3%2Faws4_request&X-Amz-Date=20261124T151400Z&X-Amz-Expires=3600"
    "&X-Amz-SignedHeaders=host&X-Amz-Signature=deadbeefcafe0123456789"
)
RANGE_BYTES = 4_000_000


@attrs.define
class FakeClock:
    """A monotonic clock that moves only when told."""

    now: float = 100.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def served_fetch_result(uploaded: bool = True) -> FetchResult:
    stats = FetchStats(cache_hits=7, range_gets=5, bytes_read=4 * RANGE_BYTES, retries=1)
    return FetchResult(
        mpack_id="sha256:" + "f" * 64,
        mpack_url=PRESIGNED,
        commit_count=3,
        snapshot_count=3,
        blob_count=25_000,
        size_bytes=16_100_000,
        uploaded=uploaded,
        reused=not uploaded,
        stats=stats,
    )


def emit_served_fetch(observer: Observer, clock: FakeClock, uploaded: bool = True) -> FetchResult:
    """A 25,000-blob fetch: 4 range reads (the first times out once), then the upload."""
    with FetchObservation.start(
        observer, repo_id="repo-1", want_count=1, have_count=0, clock=clock
    ) as seen:
        with seen.phase(FetchPhase.RESOLVE):
            clock.advance(0.010)
        with seen.phase(FetchPhase.LOOKUP):
            clock.advance(0.020)
        with seen.phase(FetchPhase.PLAN) as found:
            clock.advance(0.005)
            found["reads"] = 4
        with seen.phase(FetchPhase.READ):
            _read_with_one_timeout(seen, clock)
            for mpack_id in MPACKS[1:]:
                with seen.reading(ReadKind.RANGE, mpack_id) as read:
                    clock.advance(0.100)
                    read.received(bytes(RANGE_BYTES))
        with seen.phase(FetchPhase.UPLOAD):
            clock.advance(0.050)
        result = served_fetch_result(uploaded)
        seen.succeed(result)
    return result


def _read_with_one_timeout(seen: FetchObservation, clock: FakeClock) -> None:
    try:
        with seen.reading(ReadKind.RANGE, MPACKS[0], attempt=1):
            clock.advance(0.300)
            raise TimeoutError("no answer in 0.3 s")
    except TimeoutError as error:
        seen.retry_scheduled(ReadKind.RANGE, MPACKS[0], attempt=2, delay_s=0.05, error=error)
    with seen.reading(ReadKind.RANGE, MPACKS[0], attempt=2) as read:
        clock.advance(0.100)
        read.received(bytes(RANGE_BYTES))


def emit_failed_fetch(observer: Observer, clock: FakeClock) -> None:
    """A fetch whose mpacks are all missing: legacy fallback, then no blob can be served."""
    with (
        FetchObservation.start(
            observer, repo_id="repo-1", want_count=1, have_count=0, clock=clock
        ) as seen,
        seen.phase(FetchPhase.READ),
    ):
        for mpack_id in MPACKS[:2]:
            with seen.reading(ReadKind.MPACK, mpack_id) as read:
                clock.advance(0.010)
                read.received(None)
        seen.legacy_fallback(2, failed_mpacks=MPACKS[:2])
        with seen.reading(ReadKind.OBJECT, "sha256:" + "a" * 64) as read:
            read.received(b"content")
        raise ObjectStoreError(f"GET failed for good: {PRESIGNED}")


BYTES_INGEST_PHASES = tuple(phase for phase in IngestPhase if phase is not IngestPhase.RECEIVE)
"""The phases of an ingest of a push handed over as bytes."""


def emit_ingest(observer: Observer, clock: FakeClock, mpack_bytes: int = 9_000) -> IngestResult:
    """An ingest that stores a new push mpack."""
    result = IngestResult(
        mpack_id=MPACKS[0], commit_count=2, snapshot_count=2, blob_count=10, uploaded=True
    )
    with IngestObservation.start(
        observer, repo_id="repo-1", mpack_bytes=mpack_bytes, clock=clock
    ) as seen:
        for phase in BYTES_INGEST_PHASES:
            with seen.phase(phase):
                clock.advance(0.010)
        seen.succeed(result)
    return result
