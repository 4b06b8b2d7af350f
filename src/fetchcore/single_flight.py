"""Single flight: identical work in flight in one process runs once.

The first caller with a key runs the work; callers that arrive with the same key
while it runs wait for its outcome instead of repeating it. If the first caller
is cancelled, a waiter runs the work itself; any other failure is shared.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Hashable
from typing import Generic, TypeVar

T = TypeVar("T")


class SingleFlight(Generic[T]):
    """Runs ``work`` once per key among the calls that overlap."""

    def __init__(self) -> None:
        self._running: dict[Hashable, asyncio.Future[T]] = {}

    def running(self, key: Hashable) -> bool:
        return key in self._running

    async def run(self, key: Hashable, work: Callable[[], Awaitable[T]]) -> tuple[T, bool]:
        """The outcome of ``work`` for ``key``, and whether another caller produced it."""
        while (shared := self._running.get(key)) is not None:
            try:
                return await asyncio.shield(shared), True
            except asyncio.CancelledError:
                if not shared.cancelled():
                    raise  # this waiter was cancelled, not the one it waited for
        outcome: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._running[key] = outcome
        try:
            result = await work()
        except asyncio.CancelledError:
            outcome.cancel()
            raise
        except BaseException as error:
            outcome.set_exception(error)
            outcome.exception()  # retrieved: no "never retrieved" warning when no one waits
            raise
        else:
            outcome.set_result(result)
            return result, False
        finally:
            del self._running[key]
