"""Per-phase timings of one fetch or ingest.

:class:`PhaseTimer` measures phases on a monotonic clock (injectable, so a test
can drive it); :class:`Timings` is the frozen result that ``FetchStats`` and
``IngestResult`` carry. A phase entered twice (a re-plan, say) adds up.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager

import attrs

Clock = Callable[[], float]


@attrs.frozen
class Timings:
    """Seconds spent per phase, in the order the phases first ran.

    Attributes:
        phases: ``(phase name, seconds)`` pairs.
        total_s: seconds from the start of the operation to its end (more than
            the phases' sum: the work between phases is not in any of them).
    """

    phases: tuple[tuple[str, float], ...] = ()
    total_s: float = 0.0

    def seconds(self, phase: str) -> float:
        """Seconds spent in ``phase`` (0.0 if it did not run)."""
        return dict(self.phases).get(phase, 0.0)

    def as_dict(self) -> Mapping[str, float]:
        """The phases as a mapping, for JSON output."""
        return dict(self.phases)


@attrs.define
class PhaseTimer:
    """Measures the phases of one operation. Not shared between operations."""

    clock: Clock = time.perf_counter
    _started: float = attrs.field(init=False)
    _spent: dict[str, float] = attrs.field(init=False, factory=dict)

    def __attrs_post_init__(self) -> None:
        self._started = self.clock()

    @contextmanager
    def phase(self, name: str) -> Iterator[None]:
        """Time the block as phase ``name`` (also when it raises)."""
        start = self.clock()
        try:
            yield
        finally:
            self.add(name, self.clock() - start)

    def add(self, name: str, seconds: float) -> None:
        """Count ``seconds`` more for phase ``name``."""
        self._spent[name] = self._spent.get(name, 0.0) + seconds

    def elapsed(self) -> float:
        """Seconds since the timer was made."""
        return self.clock() - self._started

    def timings(self) -> Timings:
        """What was measured until now."""
        return Timings(tuple(self._spent.items()), self.elapsed())
