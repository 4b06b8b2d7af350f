"""A fault-injecting ObjectStore wrapper, for fetchcore's tests and hub services' own.

Each operation (``get_mpack``, ``get_mpack_range``, ``get_object``, ``put_mpack``,
``has_mpack``, ``fetch_intact``, ``get_fetch``, ``open_push``, ``sweep_staging``, on a
fetch upload ``fetch_write`` and ``fetch_commit``, on a staged push ``push_write`` and
``push_commit``, ...) draws its faults from a :class:`Faults` of probabilities:
raise a transient ``ObjectStoreError``, add latency, stall (sleep far past any
timeout), lose the key (answer None), truncate or corrupt the returned bytes.
Draws come from a seeded ``random.Random``, so a failing schedule replays
exactly; ``injected`` counts what was done, per operation and fault.
"""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from collections.abc import Awaitable, Callable, Collection, Mapping
from typing import TypeVar

import attrs

from fetchcore import ids
from fetchcore.errors import InvalidRequestError, ObjectStoreError
from fetchcore.ports import FetchUpload, ObjectStore, PushUpload

T = TypeVar("T")

STALL_S = 3600.0


def _probability(instance: object, attribute: attrs.Attribute[float], value: float) -> None:
    if not 0.0 <= value <= 1.0:
        raise InvalidRequestError(f"Faults.{attribute.name} must be within [0, 1], not {value!r}")


@attrs.frozen
class Faults:
    """Probabilities of each fault for one operation (each drawn independently)."""

    error: float = attrs.field(default=0.0, validator=_probability)
    latency: float = attrs.field(default=0.0, validator=_probability)
    latency_s: float = 0.01
    stall: float = attrs.field(default=0.0, validator=_probability)
    lose: float = attrs.field(default=0.0, validator=_probability)
    truncate: float = attrs.field(default=0.0, validator=_probability)
    corrupt: float = attrs.field(default=0.0, validator=_probability)


NO_FAULTS = Faults()


@attrs.define
class FaultyObjectStore:
    """Wraps ``inner`` and injects faults per operation.

    Args:
        inner: the store that does the real work.
        faults: per operation name, its fault probabilities; ``"*"`` applies to
            every operation without an entry of its own.
        targets: if given, only calls about these ids (canonical, or mpack ids)
            get faults; everything else passes through untouched.
        seed: seed of the fault schedule.
    """

    inner: ObjectStore
    faults: Mapping[str, Faults] = attrs.field(factory=dict)
    targets: Collection[str] | None = None
    seed: int = 0
    injected: Counter[tuple[str, str]] = attrs.field(factory=Counter)
    _random: random.Random = attrs.field(init=False)

    def __attrs_post_init__(self) -> None:
        self._random = random.Random(self.seed)

    def _faults_for(self, operation: str, subject: str) -> Faults:
        if self.targets is not None:
            key = ids.canonical(subject) if ids.is_object_id(subject) else subject
            if key not in self.targets and subject not in self.targets:
                return NO_FAULTS
        return self.faults.get(operation, self.faults.get("*", NO_FAULTS))

    def _happens(self, operation: str, fault: str, probability: float) -> bool:
        if probability and self._random.random() < probability:
            self.injected[(operation, fault)] += 1
            return True
        return False

    async def _before(self, operation: str, faults: Faults) -> None:
        if self._happens(operation, "stall", faults.stall):
            await asyncio.sleep(STALL_S)
        if self._happens(operation, "latency", faults.latency):
            await asyncio.sleep(faults.latency_s)
        if self._happens(operation, "error", faults.error):
            raise ObjectStoreError(f"injected transient fault in {operation}")

    def _damaged(self, operation: str, faults: Faults, data: bytes | None) -> bytes | None:
        if data is None:
            return None
        if self._happens(operation, "lose", faults.lose):
            return None
        if data and self._happens(operation, "truncate", faults.truncate):
            data = data[: self._random.randrange(len(data))]
        if data and self._happens(operation, "corrupt", faults.corrupt):
            position = self._random.randrange(len(data))
            data = data[:position] + bytes([data[position] ^ 0xFF]) + data[position + 1 :]
        return data

    async def _read(
        self, operation: str, subject: str, call: Callable[[], Awaitable[bytes | None]]
    ) -> bytes | None:
        faults = self._faults_for(operation, subject)
        await self._before(operation, faults)
        return self._damaged(operation, faults, await call())

    async def _act(self, operation: str, subject: str, call: Callable[[], Awaitable[T]]) -> T:
        await self._before(operation, self._faults_for(operation, subject))
        return await call()

    async def get_object(self, object_id: str) -> bytes | None:
        return await self._read("get_object", object_id, lambda: self.inner.get_object(object_id))

    async def put_object(self, object_id: str, data: bytes) -> None:
        await self._act("put_object", object_id, lambda: self.inner.put_object(object_id, data))

    async def get_mpack(self, mpack_id: str) -> bytes | None:
        return await self._read("get_mpack", mpack_id, lambda: self.inner.get_mpack(mpack_id))

    async def get_mpack_range(self, mpack_id: str, start: int, end: int) -> bytes | None:
        return await self._read(
            "get_mpack_range",
            mpack_id,
            lambda: self.inner.get_mpack_range(mpack_id, start, end),
        )

    async def put_mpack(self, mpack_id: str, data: bytes) -> None:
        await self._act("put_mpack", mpack_id, lambda: self.inner.put_mpack(mpack_id, data))

    async def has_mpack(self, mpack_id: str) -> bool | None:
        return await self._act("has_mpack", mpack_id, lambda: self.inner.has_mpack(mpack_id))

    async def presign_mpack(self, mpack_id: str, ttl_s: int) -> str | None:
        return await self._act(
            "presign_mpack", mpack_id, lambda: self.inner.presign_mpack(mpack_id, ttl_s)
        )

    async def open_fetch(self, fetch_id: str) -> FetchUpload:
        upload = await self._act("open_fetch", fetch_id, lambda: self.inner.open_fetch(fetch_id))
        return FaultyFetchUpload(upload, fetch_id, self)

    async def fetch_intact(self, fetch_id: str) -> bool | None:
        return await self._act("fetch_intact", fetch_id, lambda: self.inner.fetch_intact(fetch_id))

    async def get_fetch(self, fetch_id: str) -> bytes | None:
        return await self._read("get_fetch", fetch_id, lambda: self.inner.get_fetch(fetch_id))

    async def presign_fetch(self, fetch_id: str, ttl_s: int) -> str | None:
        return await self._act(
            "presign_fetch", fetch_id, lambda: self.inner.presign_fetch(fetch_id, ttl_s)
        )

    async def open_push(self) -> PushUpload:
        upload = await self._act("open_push", "", self.inner.open_push)
        return FaultyPushUpload(upload, self)

    async def sweep_staging(self, min_age_s: float) -> int:
        return await self._act("sweep_staging", "", lambda: self.inner.sweep_staging(min_age_s))


@attrs.define
class FaultyFetchUpload:
    """A fetch upload whose ``write`` and ``commit`` draw faults from the store's schedule
    (operations ``fetch_write`` and ``fetch_commit``). A fault is raised before the call
    reaches ``inner``; ``abort`` always passes through, so cleanup is never faked."""

    inner: FetchUpload
    fetch_id: str
    store: FaultyObjectStore

    async def write(self, chunk: bytes) -> None:
        await self.store._act("fetch_write", self.fetch_id, lambda: self.inner.write(chunk))

    async def commit(self) -> None:
        await self.store._act("fetch_commit", self.fetch_id, self.inner.commit)

    async def abort(self) -> None:
        await self.inner.abort()


@attrs.define
class FaultyPushUpload:
    """A staged push whose ``write`` and ``commit`` draw faults from the store's schedule
    (operations ``push_write``, about no id, and ``push_commit``, about the mpack id). A
    fault in ``write`` is raised before the call reaches ``inner``, which stays open (the
    caller aborts it, as after any failure); a fault in ``commit`` aborts ``inner`` first,
    as a failed commit leaves nothing staged. ``abort`` always passes through."""

    inner: PushUpload
    store: FaultyObjectStore

    async def write(self, chunk: bytes) -> None:
        await self.store._act("push_write", "", lambda: self.inner.write(chunk))

    async def commit(self, mpack_id: str) -> None:
        try:
            await self.store._before("push_commit", self.store._faults_for("push_commit", mpack_id))
        except BaseException:
            await self.inner.abort()  # a failed commit leaves nothing staged (the port says so)
            raise
        await self.inner.commit(mpack_id)

    async def abort(self) -> None:
        await self.inner.abort()
