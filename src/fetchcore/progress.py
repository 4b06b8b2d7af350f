"""Progress of one fetch: blobs and bytes done of the total, and a throttle.

The core calls a :data:`ProgressCallback` with a :class:`Progress` value. A
fetch may make progress per blob, far too often for a terminal or a log, so
:class:`ThrottledProgress` passes a call on only when it is the first, the
last, or when enough time or enough of the work has passed since the last one
it passed on.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from typing import Protocol, TypeAlias

import attrs

from fetchcore.errors import InvalidRequestError


def _fraction(blobs_done: int, blobs_total: int, bytes_done: int, bytes_total: int) -> float:
    if bytes_total > 0:
        return min(bytes_done / bytes_total, 1.0)
    if blobs_total > 0:
        return min(blobs_done / blobs_total, 1.0)
    return 1.0


@attrs.frozen
class Progress:
    """How far one fetch is: blobs and (decoded) bytes done of the total."""

    blobs_done: int
    blobs_total: int
    bytes_done: int = 0
    bytes_total: int = 0

    @property
    def fraction(self) -> float:
        """Share done, 0.0 to 1.0: by bytes when their total is known, else by blobs."""
        return _fraction(self.blobs_done, self.blobs_total, self.bytes_done, self.bytes_total)

    @property
    def complete(self) -> bool:
        """Whether every blob (and byte) is done."""
        return self.blobs_done >= self.blobs_total and self.bytes_done >= self.bytes_total


# 3/100 - 2/100 is a hair under 0.01 in binary floating point: a step is due at 1 % exactly.
_ROUNDING = 1e-9

ProgressCallback: TypeAlias = Callable[[Progress], None]


def _check_throttle(interval_s: float, step: float) -> None:
    if not interval_s >= 0 or not 0 <= step <= 1:
        raise InvalidRequestError(
            f"progress throttle: interval_s must be >= 0 and step in [0, 1], "
            f"got {interval_s!r} and {step!r}"
        )


@attrs.define
class ThrottledProgress:
    """A :data:`ProgressCallback` that passes calls on to ``callback`` sparingly.

    A call is passed on when it is the first, when it completes the work, when
    at least ``interval_s`` seconds passed since the last call passed on, or
    when the work advanced by at least ``step`` (a fraction of the total) since
    then. With the defaults: at most about 10 calls a second, or one per 1 %.
    """

    callback: ProgressCallback
    interval_s: float = 0.1
    step: float = 0.01
    clock: Callable[[], float] = time.monotonic
    _last_at: float | None = attrs.field(init=False, default=None)
    _last_fraction: float = attrs.field(init=False, default=0.0)
    _finished: bool = attrs.field(init=False, default=False)

    def __attrs_post_init__(self) -> None:
        _check_throttle(self.interval_s, self.step)

    def __call__(self, progress: Progress) -> None:
        """Pass ``progress`` on if it is due."""
        self.report(
            progress.blobs_done, progress.blobs_total, progress.bytes_done, progress.bytes_total
        )

    def report(self, blobs_done: int, blobs_total: int, bytes_done: int, bytes_total: int) -> None:
        """Pass this progress on if it is due; the cheap form for a call per blob.

        No :class:`Progress` is made unless it is passed on.
        """
        now = self.clock()
        complete = blobs_done >= blobs_total and bytes_done >= bytes_total
        fraction = _fraction(blobs_done, blobs_total, bytes_done, bytes_total)
        if not self._due(complete, fraction, now):
            return
        self._last_at = now
        self._last_fraction = fraction
        self._finished = complete
        self.callback(Progress(blobs_done, blobs_total, bytes_done, bytes_total))

    def _due(self, complete: bool, fraction: float, now: float) -> bool:
        if self._last_at is None:
            return True
        if complete:
            return not self._finished
        return (
            now - self._last_at >= self.interval_s
            or fraction - self._last_fraction >= self.step - _ROUNDING
        )


class _Sink(Protocol):
    async def add_encoded(self, object_ids: Sequence[str], encoded: bytes) -> None: ...

    def streamed(
        self, object_id: str, written_id: str, encoding: str, length: int
    ) -> AbstractAsyncContextManager[Callable[[bytes], Awaitable[None]]]: ...


@attrs.define
class ProgressSink:
    """A blob sink that reports progress as verified blobs reach the document.

    Bytes are counted in ``sizes`` (per canonical id: the blob's length as the
    index knows it, its cache entry's or its stored span's), so the done bytes
    reach the total exactly when every blob is in.
    """

    sink: _Sink
    progress: ThrottledProgress
    sizes: Mapping[str, int]
    bytes_total: int = attrs.field(init=False)
    _blobs_done: int = attrs.field(init=False, default=0)
    _bytes_done: int = attrs.field(init=False, default=0)

    def __attrs_post_init__(self) -> None:
        self.bytes_total = sum(self.sizes.values())

    def start(self) -> None:
        """Report that nothing is done yet (a bar appears before the first read)."""
        self._report()

    async def add_encoded(self, object_ids: Sequence[str], encoded: bytes) -> None:
        """Pass the blobs on, then count them."""
        await self.sink.add_encoded(object_ids, encoded)
        self._done(object_ids)

    @contextlib.asynccontextmanager
    async def streamed(
        self, object_id: str, written_id: str, encoding: str, length: int
    ) -> AsyncIterator[Callable[[bytes], Awaitable[None]]]:
        """Pass the pieces on; count the blob once all of it is written."""
        async with self.sink.streamed(object_id, written_id, encoding, length) as write:
            yield write
        self._done([object_id])

    def _done(self, object_ids: Sequence[str]) -> None:
        self._blobs_done += len(object_ids)
        self._bytes_done += sum(self.sizes.get(object_id, 0) for object_id in object_ids)
        self._report()

    def _report(self) -> None:
        self.progress.report(self._blobs_done, len(self.sizes), self._bytes_done, self.bytes_total)
