"""The fetch document writer: encodes blobs into a FetchUpload as they are verified.

Rules this module keeps:
- The document is written head, blobs in the order they arrive, tail; the
  array header is written first from the known blob count.
- It is committed only when as many blobs were written as announced (the
  executor sends each blob once); otherwise :meth:`DocumentWriter.finish`
  refuses and the caller aborts.
- A blob larger than a read range is written through in pieces under the
  document's lock (:meth:`DocumentWriter.streamed`), its length announced first.
- Small pieces are joined into chunks of ``CHUNK_BYTES`` before they reach the
  upload; a blob larger than a chunk goes through without being copied into it.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence

import attrs

from fetchcore import wire
from fetchcore.errors import FetchError
from fetchcore.ports import FetchUpload

CHUNK_BYTES = 1 << 20


@attrs.define
class DocumentWriter:
    """One fetch document being streamed into ``upload``."""

    upload: FetchUpload
    blob_count: int
    written: int = 0
    """Blobs written so far (the executor sends each blob once; this counts them)."""
    size: int = 0
    _buffer: bytearray = attrs.field(factory=bytearray)
    _lock: asyncio.Lock = attrs.field(factory=asyncio.Lock)

    async def start(self, head: Iterable[bytes]) -> None:
        """Write everything before the first blob (``wire.fetch_head``)."""
        async with self._lock:
            for piece in head:
                await self._write(piece)

    async def add_encoded(self, object_ids: Sequence[str], encoded: bytes) -> None:
        """Write verified blobs already encoded as entries (``wire.encode_blobs``)."""
        async with self._lock:
            self.written += len(object_ids)
            await self._write(encoded)

    @contextlib.asynccontextmanager
    async def streamed(
        self, object_id: str, written_id: str, encoding: str, length: int
    ) -> AsyncIterator[Callable[[bytes], Awaitable[None]]]:
        """Write one blob of ``length`` content bytes in pieces, holding the document.

        The caller verifies the pieces and raises inside the block if they fail; the
        document is then unusable (the caller aborts it). Raises FetchError if the
        pieces written do not add up to ``length``.
        """
        async with self._lock:
            await self._write(wire.blob_head(length, encoding))
            remaining = length

            async def write(piece: bytes) -> None:
                nonlocal remaining
                remaining -= len(piece)
                if remaining < 0:
                    raise FetchError(
                        f"blob {written_id} is longer than the {length} bytes announced"
                    )
                await self._write(piece)

            yield write
            if remaining:
                raise FetchError(f"blob {written_id} is shorter than the {length} bytes announced")
            await self._write(wire.blob_tail(written_id, encoding))
            self.written += 1

    async def finish(self, tail: bytes) -> int:
        """Write the tail and commit; return the document's size.

        Raises:
            FetchError: the blobs written are not the blobs announced.
        """
        async with self._lock:
            if self.written != self.blob_count:
                raise FetchError(f"fetch document has {self.written} of {self.blob_count} blobs")
            await self._write(tail)
            await self._flush()
            await self.upload.commit()
            return self.size

    async def _write(self, piece: bytes | memoryview) -> None:
        self.size += len(piece)
        if len(piece) >= CHUNK_BYTES:
            await self._flush()
            await self.upload.write(bytes(piece))
            return
        self._buffer += piece
        if len(self._buffer) >= CHUNK_BYTES:
            await self._flush()

    async def _flush(self) -> None:
        if self._buffer:
            chunk = bytes(self._buffer)
            self._buffer.clear()
            await self.upload.write(chunk)
