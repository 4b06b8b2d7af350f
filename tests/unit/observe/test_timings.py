"""Phase timings: measured on the clock given, summed per phase, in first-run order."""

from __future__ import annotations

import pytest

from fetchcore.observe import PhaseTimer, Timings
from tests.unit.observe.sequences import FakeClock


def test_each_phase_is_timed_on_the_clock_and_the_total_covers_the_gaps() -> None:
    clock = FakeClock()
    timer = PhaseTimer(clock)
    with timer.phase("resolve"):
        clock.advance(0.25)
    clock.advance(1.0)
    with timer.phase("plan"):
        clock.advance(0.5)
    timings = timer.timings()
    assert timings.phases == (("resolve", 0.25), ("plan", 0.5))
    assert timings.total_s == pytest.approx(1.75)


def test_a_phase_run_twice_adds_up_and_keeps_its_first_place() -> None:
    clock = FakeClock()
    timer = PhaseTimer(clock)
    for phase, seconds in [("read", 1.0), ("plan", 0.5), ("read", 2.0)]:
        with timer.phase(phase):
            clock.advance(seconds)
    assert timer.timings().as_dict() == {"read": 3.0, "plan": 0.5}
    assert list(timer.timings().as_dict()) == ["read", "plan"]


def test_a_phase_that_raises_is_still_timed() -> None:
    clock = FakeClock()
    timer = PhaseTimer(clock)

    def fail_after(seconds: float) -> None:
        with timer.phase("read"):
            clock.advance(seconds)
            raise RuntimeError("store down")

    with pytest.raises(RuntimeError):
        fail_after(0.75)
    assert timer.timings().seconds("read") == 0.75


def test_a_phase_that_did_not_run_took_no_time() -> None:
    assert Timings().seconds("upload") == 0.0
