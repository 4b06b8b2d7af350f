"""fetchcore's store ports over a hub backend that has only get, get_mpack, put_mpack and
presign_mpack_get.

Fetch documents go where the backend can put them, beside the push mpacks
(``put_mpack``), buffered and put whole at commit. The backend cannot say
whether a stored document is intact, nor whether an mpack exists without
downloading it, so both questions answer "can't tell" (None): fetchcore then
writes, and never downloads an mpack just to learn that it exists. No ranged
reads: mpacks are read whole, which is what an index without offsets needs anyway.
"""

from __future__ import annotations

from typing import Protocol

import attrs

from fetchcore.toolkit import check_mpack_id


class HubBackend(Protocol):
    """The hub's storage client, as it already is."""

    async def get(self, oid: str) -> bytes | None: ...
    async def get_mpack(self, mpack_id: str) -> bytes | None: ...
    async def put_mpack(self, mpack_id: str, data: bytes) -> None: ...
    async def presign_mpack_get(self, mpack_id: str, ttl: int) -> str: ...


@attrs.define
class BufferedUpload:
    """A fetch document kept in memory until ``commit`` puts it whole."""

    backend: HubBackend
    fetch_id: str
    chunks: list[bytes] = attrs.field(factory=list)

    async def write(self, chunk: bytes) -> None:
        self.chunks.append(bytes(chunk))

    async def commit(self) -> None:
        await self.backend.put_mpack(self.fetch_id, b"".join(self.chunks))
        self.chunks.clear()

    async def abort(self) -> None:
        self.chunks.clear()


@attrs.frozen
class HubStore:
    """FetchStore and PushStore over :class:`HubBackend`. Ids are checked before any I/O."""

    backend: HubBackend

    async def get_object(self, object_id: str) -> bytes | None:
        return await self.backend.get(object_id)

    async def get_mpack(self, mpack_id: str) -> bytes | None:
        return await self.backend.get_mpack(check_mpack_id(mpack_id))

    async def put_mpack(self, mpack_id: str, data: bytes) -> None:
        await self.backend.put_mpack(check_mpack_id(mpack_id), data)

    async def has_mpack(self, mpack_id: str) -> bool | None:
        return None

    async def presign_mpack(self, mpack_id: str, ttl_s: int) -> str | None:
        return await self.backend.presign_mpack_get(check_mpack_id(mpack_id), ttl_s)

    async def open_fetch(self, fetch_id: str) -> BufferedUpload:
        return BufferedUpload(self.backend, check_mpack_id(fetch_id))

    async def fetch_intact(self, fetch_id: str) -> bool | None:
        return None

    async def get_fetch(self, fetch_id: str) -> bytes | None:
        return await self.get_mpack(fetch_id)

    async def presign_fetch(self, fetch_id: str, ttl_s: int) -> str | None:
        return await self.presign_mpack(fetch_id, ttl_s)
