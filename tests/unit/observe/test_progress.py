"""The progress throttle: the first and last calls pass, others at most every interval or step."""

from __future__ import annotations

import pytest

from fetchcore import FetchError
from fetchcore.observe import Progress, ThrottledProgress, throttled
from tests.unit.observe.sequences import FakeClock


def _throttle(
    clock: FakeClock, interval_s: float = 0.1, step: float = 0.01
) -> tuple[ThrottledProgress, list[Progress]]:
    seen: list[Progress] = []
    return ThrottledProgress(seen.append, interval_s, step, clock), seen


def _blobs(done: int, total: int = 10_000) -> Progress:
    return Progress(blobs_done=done, blobs_total=total)


class TestProgress:
    def test_the_fraction_goes_by_bytes_when_their_total_is_known(self) -> None:
        assert Progress(1, 4, bytes_done=300, bytes_total=400).fraction == 0.75

    def test_the_fraction_goes_by_blobs_without_a_byte_total(self) -> None:
        assert Progress(1, 4).fraction == 0.25

    def test_nothing_to_do_is_complete(self) -> None:
        assert Progress(0, 0).fraction == 1.0
        assert Progress(0, 0).complete


class TestThrottledProgress:
    def test_the_first_call_passes(self) -> None:
        throttle, seen = _throttle(FakeClock())
        throttle(_blobs(1))
        assert seen == [_blobs(1)]

    def test_a_call_soon_after_with_little_progress_is_dropped(self) -> None:
        clock = FakeClock()
        throttle, seen = _throttle(clock)
        throttle(_blobs(1))
        clock.advance(0.099)
        throttle(_blobs(99))
        assert seen == [_blobs(1)]

    def test_a_call_exactly_one_interval_later_passes(self) -> None:
        clock = FakeClock(now=0.0)
        throttle, seen = _throttle(clock, interval_s=0.25)
        throttle(_blobs(1))
        clock.advance(0.25)
        throttle(_blobs(2))
        assert seen == [_blobs(1), _blobs(2)]

    def test_a_call_exactly_one_step_further_passes_at_once(self) -> None:
        throttle, seen = _throttle(FakeClock())
        throttle(_blobs(200))
        throttle(_blobs(299))
        throttle(_blobs(300))
        assert seen == [_blobs(200), _blobs(300)]

    def test_the_completing_call_passes_once(self) -> None:
        throttle, seen = _throttle(FakeClock())
        throttle(_blobs(9_999))
        throttle(_blobs(10_000))
        throttle(_blobs(10_000))
        assert seen == [_blobs(9_999), _blobs(10_000)]

    def test_a_call_per_blob_of_a_large_fetch_passes_about_once_per_step(self) -> None:
        throttle, seen = _throttle(FakeClock())
        for done in range(1, 25_001):
            throttle(_blobs(done, total=25_000))
        assert 100 <= len(seen) <= 101
        assert seen[-1] == _blobs(25_000, total=25_000)

    @pytest.mark.parametrize(
        ("interval_s", "step"), [(-0.1, 0.01), (float("nan"), 0.01), (0.1, 1.5), (0.1, -0.01)]
    )
    def test_a_bad_setting_is_refused(self, interval_s: float, step: float) -> None:
        with pytest.raises(FetchError):
            ThrottledProgress(print, interval_s, step)

    def test_report_passes_on_the_same_progress_as_calls_with_values(self) -> None:
        by_value, seen_by_value = _throttle(FakeClock())
        by_report, seen_by_report = _throttle(FakeClock())
        for done in range(0, 1_001, 7):
            by_value(Progress(done, 1_000, done * 3, 3_000))
            by_report.report(done, 1_000, done * 3, 3_000)
        assert seen_by_report == seen_by_value
        assert len(seen_by_value) > 50

    def test_throttled_wraps_a_callback_and_keeps_none(self) -> None:
        assert throttled(None) is None
        assert isinstance(throttled(print), ThrottledProgress)
