"""FetchLimiter: what all the fetches of a hub may use at once.

A hub makes one at start-up and passes it to every :func:`~fetchcore.serve_fetch`
call, so that fifty concurrent clones wait their turn instead of exhausting
memory: at most ``max_builds`` documents are built at once, and their reads
hold at most ``max_bytes_in_flight`` bytes together (a single read larger than
that runs alone). A document that is reused costs no build slot.
"""

from __future__ import annotations

import asyncio

import attrs

from fetchcore.executor import ByteBudget
from fetchcore.policy import MiB, integer_within


@attrs.define
class FetchLimiter:
    """Caps shared by every fetch it is passed to (use it from one event loop)."""

    max_builds: int = attrs.field(default=8, validator=integer_within(1))
    max_bytes_in_flight: int = attrs.field(default=128 * MiB, validator=integer_within(1))
    builds: asyncio.Semaphore = attrs.field(init=False)
    bytes_in_flight: ByteBudget = attrs.field(init=False)

    def __attrs_post_init__(self) -> None:
        self.builds = asyncio.Semaphore(self.max_builds)
        self.bytes_in_flight = ByteBudget(self.max_bytes_in_flight)
