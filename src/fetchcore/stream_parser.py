"""The push document parsed as it arrives, in pieces. Pure: no I/O, no clock.

Rules this module keeps (with :func:`fetchcore.wire.parse_push`, whose entry
checks it shares through :class:`~fetchcore.wire.EntryChecks`):
- It accepts exactly the documents ``parse_push`` accepts and finds the same
  commits, snapshots, branch heads and blob spans, however the bytes are cut.
- Blob contents are never held by the parser beyond one piece: a blob of at
  most ``whole_blob_bytes`` stored bytes is handed to the :class:`BlobSink`
  whole, a larger one in the pieces it arrives in. Everything else (commits,
  snapshots, blob fields, branch heads) is charged to the parsing budget, which
  grows with those bytes only, and is bounded by ``Policy.max_document_bytes``:
  parsing memory does not grow with the blobs' size.
- The parser is a generator that suspends wherever msgpack runs out of bytes;
  msgpack keeps a partly unpacked value across feeds, so nothing is parsed twice.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Generator
from typing import Any, Protocol, TypeVar

import msgpack

from fetchcore.errors import InvalidMPackError
from fetchcore.model import Commit, Snapshot
from fetchcore.policy import MiB, Policy
from fetchcore.wire import (
    BIN_HEADER_LENGTH,
    MAX_BLOB_FIELDS,
    MSGPACK_ERRORS,
    PARSE_MEMORY_FACTOR,
    PARSE_MEMORY_FLOOR,
    TOP_LEVEL_KEYS,
    BlobEntry,
    EntryChecks,
    PushDocument,
    translate_msgpack_errors,
)

T = TypeVar("T")
Steps = Generator[None, None, T]
"""A parsing step: suspends (yields) whenever it needs more bytes."""

FEED_BYTES = 1 * MiB
"""Bytes handed to msgpack at once: a larger chunk is fed in slices of this size."""

WHOLE_BLOB_BYTES = 1 * MiB
"""Blobs of at most this many stored bytes reach the sink whole; larger ones in pieces."""


class BlobSink(Protocol):
    """Receives blob contents as the parser meets them (see :class:`PushStreamParser`)."""

    def whole(self, index: int, entry: BlobEntry, stored: bytes) -> None:
        """A blob's whole stored content, with its entry (once its map is complete)."""

    def begin(self, index: int, length: int, object_id: str | None, encoding: str | None) -> None:
        """A large blob's content starts: ``length`` stored bytes follow in :meth:`piece`
        calls. Its id and encoding are given when they come before it in the map."""

    def piece(self, stored: bytes) -> None:
        """The next stored bytes of the large blob begun last."""

    def end(self, index: int, entry: BlobEntry) -> None:
        """The large blob's map is complete: here is its entry."""


class PushStreamParser(EntryChecks):
    """Parses a push document fed in pieces; blob contents go to ``sink``.

    :meth:`feed` the bytes in order, then :meth:`finish` for the document. Any
    error raises InvalidMPackError naming the entry; the parser is then unusable.
    """

    def __init__(
        self, policy: Policy, sink: BlobSink, *, whole_blob_bytes: int = WHOLE_BLOB_BYTES
    ) -> None:
        super().__init__(policy)
        self.sink = sink
        self.whole_blob_bytes = max(whole_blob_bytes, 0)
        self.fed = 0
        self.content_bytes = 0
        """Bytes of blob contents (stored) met so far: not metadata."""
        # The buffer holds at most one feed plus a value (a string) still incomplete,
        # itself part of the metadata that max_document_bytes bounds.
        self.unpacker = self.new_unpacker(policy.max_document_bytes + FEED_BYTES)
        self._document: PushDocument | None = None
        self._steps = self._parse()
        self._resume()

    def memory_allowed(self) -> int:
        return PARSE_MEMORY_FACTOR * max(self.metadata_bytes(self.fed), 0) + PARSE_MEMORY_FLOOR

    def metadata_bytes(self, upto: int) -> int:
        """Bytes before ``upto`` outside blob contents (an upper bound past what is parsed)."""
        return upto - self.content_bytes

    def feed(self, chunk: bytes | bytearray | memoryview) -> None:
        """Parse the next bytes of the document.

        Raises:
            InvalidMPackError: the document is malformed, over a limit, or continues
                after its end.
        """
        with memoryview(chunk) as view:
            for start in range(0, len(view), FEED_BYTES):
                piece = view[start : start + FEED_BYTES]
                if self._document is not None:
                    raise InvalidMPackError(None, "trailing bytes after the document")
                self.fed += len(piece)
                self._translated(self.unpacker.feed, piece)
                self._resume()
        if self.metadata_bytes(self.unpacker.tell()) > self.policy.max_document_bytes:
            raise InvalidMPackError(
                self.where,
                "commits, snapshots, branch heads and blob fields are over the limit of "
                f"{self.policy.max_document_bytes} bytes",
            )

    def finish(self) -> PushDocument:
        """The parsed document, once every byte was fed.

        Raises:
            InvalidMPackError: the document is incomplete (truncated).
        """
        if self._document is None:
            raise InvalidMPackError(self.where, "truncated document")
        return self._document

    def _resume(self) -> None:
        with contextlib.suppress(StopIteration):
            self._translated(next, self._steps)

    def _translated(self, call: Callable[[Any], Any], argument: Any) -> Any:
        try:
            return call(argument)
        except (InvalidMPackError, StopIteration):
            raise
        except MSGPACK_ERRORS as error:
            raise translate_msgpack_errors(self.where, error) from None

    # ── the steps (each suspends until msgpack has the bytes it needs) ───────

    def _when_fed(self, call: Callable[[], T]) -> Steps[T]:
        while True:
            try:
                return call()
            except msgpack.OutOfData:
                yield

    def _unpacked(self) -> Steps[Any]:
        """The next value; the common case (it is all there) without a second generator."""
        try:
            return self.unpacker.unpack()
        except msgpack.OutOfData:
            return (yield from self._when_fed(self.unpacker.unpack))

    def _read(self, count: int) -> Steps[bytes]:
        data: bytes = self.unpacker.read_bytes(count)
        if len(data) == count:
            return data
        parts = [data]
        missing = count - len(data)
        while missing:
            yield
            more: bytes = self.unpacker.read_bytes(missing)
            parts.append(more)
            missing -= len(more)
        return b"".join(parts)

    def _header(self, read: Callable[[], int], complaint: str, limit: int) -> Steps[int]:
        try:
            count = yield from self._when_fed(read)
        except ValueError:
            raise InvalidMPackError(self.where, complaint) from None
        if count > limit:
            raise InvalidMPackError(self.where, f"{count} entries, over the limit of {limit}")
        return count

    def _parse(self) -> Steps[None]:
        self.where = None
        fields: dict[str, Any] = {}
        read_map = self.unpacker.read_map_header
        for _ in range(
            (yield from self._header(read_map, "document is not a map", 4 * len(TOP_LEVEL_KEYS)))
        ):
            self.where = None
            key = yield from self._when_fed(self.unpacker.unpack)
            if not isinstance(key, str):
                raise InvalidMPackError(None, f"document key {key!r:.40} is not a string")
            if key in fields:
                raise InvalidMPackError(str(key), "appears twice")
            if key in TOP_LEVEL_KEYS:
                fields[key] = yield from self._top_level(key)
            else:
                yield from self._when_fed(self.unpacker.skip)
                fields[key] = None
        self.where = None
        self._document = self.document_from(fields)
        if self.unpacker.tell() != self.fed:
            raise InvalidMPackError(None, "trailing bytes after the document")

    def _top_level(self, key: str) -> Steps[Any]:
        self.where = key
        if key == "branch_heads":
            return (yield from self._branch_heads())
        read_list = self.unpacker.read_array_header
        count = yield from self._header(read_list, "must be a list", 2**32)
        self.entry_count(count, key)
        if key == "commits":
            commits: list[Commit] = []
            for index in range(count):
                self.where = f"commits[{index}]"
                value = yield from self._when_fed(self.unpacker.unpack)
                commits.append(self.commit_from(value, self.where))
            return self.commits_from(commits)
        if key == "snapshots":
            snapshots: list[Snapshot] = []
            for index in range(count):
                self.where = f"snapshots[{index}]"
                value = yield from self._when_fed(self.unpacker.unpack)
                snapshots.append(self.snapshot_from(value, self.where))
            return self.snapshots_from(snapshots)
        blobs: list[BlobEntry] = []
        for index in range(count):
            self.where = f"blobs[{index}]"
            blobs.append((yield from self._blob(index, self.where)))
        return tuple(blobs)

    def _blob(self, index: int, where: str) -> Steps[BlobEntry]:
        object_id: str | None = None
        encoding: str | None = None
        span: tuple[int, int] | None = None
        stored: bytes | None = None
        read_map = self.unpacker.read_map_header
        for _ in range((yield from self._header(read_map, "must be a map", MAX_BLOB_FIELDS))):
            key = yield from self._unpacked()
            if key == "object_id":
                self.refuse_twice(object_id, f"{where}.object_id")
                value = yield from self._unpacked()
                object_id = self.object_id_from(value, f"{where}.object_id")
            elif key == "encoding":
                self.refuse_twice(encoding, f"{where}.encoding")
                value = yield from self._unpacked()
                encoding = self.encoding_from(value, f"{where}.encoding")
            elif key == "content":
                self.refuse_twice(span, f"{where}.content")
                span, stored = yield from self._content(
                    index, f"{where}.content", object_id, encoding
                )
            else:
                yield from self._when_fed(self.unpacker.skip)
        entry = self.blob_from(where, object_id, encoding or "identity", span)
        if stored is not None:
            self.sink.whole(index, entry, stored)
        else:
            self.sink.end(index, entry)
        return entry

    def _content(
        self, index: int, where: str, object_id: str | None, encoding: str | None
    ) -> Steps[tuple[tuple[int, int], bytes | None]]:
        marker = yield from self._read(1)
        header_length = BIN_HEADER_LENGTH.get(marker[0])
        if header_length is None:
            raise InvalidMPackError(where, "must be bytes (msgpack bin)")
        length = int.from_bytes((yield from self._read(header_length - 1)), "big")
        start = self.unpacker.tell()
        self.content_bytes += length
        if length <= self.whole_blob_bytes:
            return (start, start + length), (yield from self._read(length))
        self.sink.begin(index, length, object_id, encoding)
        missing = length
        while missing:
            piece: bytes = self.unpacker.read_bytes(min(missing, FEED_BYTES))
            if not piece:
                yield
                continue
            self.sink.piece(piece)
            missing -= len(piece)
        return (start, start + length), None

    def _branch_heads(self) -> Steps[dict[str, str]]:
        heads: dict[str, str] = {}
        read_map = self.unpacker.read_map_header
        for _ in range(
            (yield from self._header(read_map, "must be a map", self.policy.max_entries))
        ):
            branch = yield from self._when_fed(self.unpacker.unpack)
            commit_id = yield from self._when_fed(self.unpacker.unpack)
            self.add_branch_head(heads, branch, commit_id)
        return heads
