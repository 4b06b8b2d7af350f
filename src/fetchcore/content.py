"""Blob content: decoding stored bytes and verifying them against their id.

Rules this module keeps:
- Nothing is allocated beyond ``max_bytes``: a zstd frame that declares more is
  rejected before decompression; a frame that declares nothing is decoded in
  bounded chunks and rejected as soon as it produces more.
- Stored zstd content is exactly one frame: a second frame or trailing bytes are
  refused, and a frame that declares its size must produce exactly that size.
- Content is served only after its sha256 matches the digest its id names, or
  when it is cut from bytes already proven to be a push mpack that ingest
  verified blob by blob (their sha256 matches the mpack's id): then it is
  decoded (``verified=False``), within the same limits, but not hashed again.
- A :class:`DecodeBudget` bounds the decoded total of a whole push or fetch.
- Every failure is a :class:`ContentError`; no zstd or memory error escapes.
"""

from __future__ import annotations

import hashlib
import threading

import attrs
import zstandard

from fetchcore import ids

_CHUNK = 1 << 20
_local = threading.local()


def _decompressor() -> zstandard.ZstdDecompressor:
    """This thread's decompressor: making one costs more than decoding a small blob,
    and one instance must not be used by two threads at once."""
    decompressor: zstandard.ZstdDecompressor | None = getattr(_local, "decompressor", None)
    if decompressor is None:
        decompressor = _local.decompressor = zstandard.ZstdDecompressor()
    return decompressor


class ContentError(ValueError):
    """Stored content that does not decode, is over the size limit or fails verification."""


class OverLimitError(ContentError):
    """Content that declares (``declared``) or produces (``declared`` None) more than its limit."""

    def __init__(self, message: str, declared: int | None) -> None:
        super().__init__(message)
        self.declared = declared


class DecodeBudgetError(ContentError):
    """The decoded total of a push or fetch would pass its limit (not the content's fault)."""


Buffer = bytes | bytearray | memoryview


_BLOCK_HEADER_LENGTH = 3
_CHECKSUM_LENGTH = 4
_RAW, _RLE, _COMPRESSED = 0, 1, 2


def _frame_length(frame: Buffer) -> int:
    """The length of the zstd frame at the start of ``frame``, from its block headers.

    Walking the headers costs nothing and allocates nothing; it is how a second frame
    or trailing garbage is found, since the decompressor stops at the first frame's end.
    """
    params = zstandard.get_frame_parameters(frame)
    position = zstandard.frame_header_size(frame)
    last = False
    while not last:
        header = bytes(frame[position : position + _BLOCK_HEADER_LENGTH])
        if len(header) < _BLOCK_HEADER_LENGTH:
            raise ContentError("zstd frame is truncated")
        value = int.from_bytes(header, "little")
        last, kind, size = bool(value & 1), (value >> 1) & 3, value >> 3
        if kind not in (_RAW, _RLE, _COMPRESSED):
            raise ContentError("zstd frame holds a reserved block type")
        position += _BLOCK_HEADER_LENGTH + (1 if kind == _RLE else size)
    return position + (_CHECKSUM_LENGTH if params.has_checksum else 0)


def _declared_size(frame: Buffer, max_bytes: int) -> int:
    """The size the frame declares (-1: none), after checking it is one whole frame."""
    try:
        declared = zstandard.frame_content_size(frame)
        length = _frame_length(frame)
    except zstandard.ZstdError as error:
        raise ContentError(f"not a zstd frame ({error})") from None
    if length != len(frame):
        raise ContentError(
            f"stored content is not exactly one zstd frame ({len(frame)} bytes, frame {length})"
        )
    if declared > max_bytes:
        raise OverLimitError(
            f"zstd frame declares {declared} bytes, over the limit of {max_bytes}", declared
        )
    return int(declared)


def _trusted_declared_size(frame: Buffer, max_bytes: int) -> int:
    """The size a frame already checked at ingest declares (-1: none), within the limit."""
    try:
        declared = zstandard.frame_content_size(frame)
    except zstandard.ZstdError as error:
        raise ContentError(f"not a zstd frame ({error})") from None
    if declared > max_bytes:
        raise OverLimitError(
            f"zstd frame declares {declared} bytes, over the limit of {max_bytes}", declared
        )
    return int(declared)


def _decode_zstd(frame: Buffer, max_bytes: int, *, checked: bool = False) -> bytes:
    """Decode one zstd frame; ``checked``: its framing was checked at ingest (skip the walk)."""
    declared = (
        _trusted_declared_size(frame, max_bytes) if checked else _declared_size(frame, max_bytes)
    )
    decompressor = _decompressor()
    try:
        if declared >= 0:  # zstd itself refuses a frame that produces more or less
            content = decompressor.decompress(frame)
        else:
            content = _decode_unsized(decompressor, frame, max_bytes)
    except (zstandard.ZstdError, MemoryError) as error:
        raise ContentError(f"zstd frame does not decode ({error})") from None
    return content


def _decode_unsized(
    decompressor: zstandard.ZstdDecompressor, frame: Buffer, max_bytes: int
) -> bytes:
    chunks: list[bytes] = []
    total = 0
    with decompressor.stream_reader(frame) as reader:
        while chunk := reader.read(_CHUNK):
            total += len(chunk)
            if total > max_bytes:
                raise OverLimitError(
                    f"zstd frame produces more than the limit of {max_bytes} bytes", None
                )
            chunks.append(chunk)
    return b"".join(chunks)


def decode(stored: Buffer, encoding: str, max_bytes: int, *, checked: bool = False) -> bytes:
    """Decode stored content to the blob's bytes.

    Args:
        checked: the content was verified at ingest in these exact bytes, so a zstd
            frame's framing is not walked again (its size limit still applies).

    Raises:
        ContentError: unknown encoding, undecodable frame, or more than ``max_bytes``.
    """
    if encoding == "zstd":
        return _decode_zstd(stored, max_bytes, checked=checked)
    if encoding != "identity":
        raise ContentError(f"unknown encoding {encoding!r:.40}")
    if len(stored) > max_bytes:
        raise OverLimitError(f"{len(stored)} bytes, over the limit of {max_bytes}", len(stored))
    return bytes(stored)


def decode_verified(object_id: str, stored: Buffer, encoding: str, max_bytes: int) -> bytes:
    """Decode stored content and check that it hashes to ``object_id``.

    Raises:
        ContentError: it does not decode, is too large, or does not match its id.
    """
    content = decode(stored, encoding, max_bytes)
    if not ids.matches(object_id, content):
        raise ContentError(f"content does not match its id {object_id}")
    return content


@attrs.define
class DecodeBudget:
    """The decoded bytes a whole push or fetch may produce, spent blob by blob.

    A blob is refused before it is allocated when its frame declares more than what is
    left; a frame without a declared size is decoded in bounded pieces, cut off at it.
    Not thread-safe: one budget per push or fetch, spent from one thread (or under a lock).
    """

    limit: int
    spent: int = 0

    @property
    def left(self) -> int:
        return self.limit - self.spent

    def decode_verified(
        self,
        object_id: str,
        stored: Buffer,
        encoding: str,
        max_blob_bytes: int,
        *,
        verified: bool = False,
    ) -> bytes:
        """:func:`decode_verified`, charged to this budget.

        Args:
            verified: the stored bytes are known to be what ingest verified (they were
                cut from a push mpack whose bytes match its id): decode, within the
                same limits, without hashing the content again.

        Raises:
            DecodeBudgetError: the blob would take the total past ``limit``.
            ContentError: the blob itself is bad or over ``max_blob_bytes``.
        """
        allowance = self.allowance(max_blob_bytes)
        try:
            if verified:
                content = decode(stored, encoding, allowance, checked=True)
            else:
                content = decode_verified(object_id, stored, encoding, allowance)
        except OverLimitError as error:
            raise self.blame(error, max_blob_bytes) from None
        self.spent += len(content)
        return content

    def allowance(self, max_blob_bytes: int) -> int:
        """The most the next blob may decode to: its own limit, or what is left."""
        return min(max_blob_bytes, self.left)

    def blame(self, error: OverLimitError, max_blob_bytes: int) -> ContentError:
        """The error to raise for a blob that went past :meth:`allowance`: the budget's
        (DecodeBudgetError) when the blob alone was within ``max_blob_bytes``."""
        blob_alone_is_fine = error.declared is None or error.declared <= max_blob_bytes
        if self.allowance(max_blob_bytes) < max_blob_bytes and blob_alone_is_fine:
            return self._exceeded(error.declared)
        return error

    def charge(self, size: int) -> None:
        """Count ``size`` bytes that need no decoding (a cache hit) against the budget.

        Raises:
            DecodeBudgetError: they would take the total past ``limit``.
        """
        if size > self.left:
            raise self._exceeded(size)
        self.spent += size

    def _exceeded(self, announced: int | None) -> DecodeBudgetError:
        size = "more" if announced is None else f"{announced} bytes"
        return DecodeBudgetError(
            f"a blob of {size} takes the decoded total past the limit of {self.limit} bytes"
        )


# ── content that arrives in pieces (a blob larger than one ranged read) ──────


def declared_size(first_piece: Buffer, encoding: str, stored_length: int) -> int | None:
    """The decoded size of content whose first stored bytes are ``first_piece``, if known
    before decoding: the stored length for identity, the frame header's size for zstd."""
    if encoding == "identity":
        return stored_length
    try:
        declared = zstandard.frame_content_size(first_piece)
    except zstandard.ZstdError:
        return None
    return declared if declared >= 0 else None


class PieceDecoder:
    """Decodes and verifies stored content that arrives in pieces, in bounded memory.

    :meth:`feed` each stored piece in order and write what it returns;
    :meth:`finish` then says whether the whole decoded to exactly the bytes of
    the id: nothing more (no bytes after the zstd frame), nothing less.
    """

    def __init__(self, object_id: str, encoding: str, max_bytes: int) -> None:
        if encoding not in ("identity", "zstd"):
            raise ContentError(f"unknown encoding {encoding!r:.40}")
        self.object_id = object_id
        self.max_bytes = max_bytes
        self.decoded = 0
        self._hash = hashlib.sha256()
        self._frame = zstandard.ZstdDecompressor().decompressobj() if encoding == "zstd" else None

    def feed(self, piece: Buffer) -> bytes:
        """The decoded bytes of ``piece``.

        Raises:
            ContentError: it does not decode, or the content grows over ``max_bytes``.
        """
        if self._frame is None:
            decoded = bytes(piece)
        elif self._frame.eof:
            raise ContentError("bytes after the end of the zstd frame")
        else:
            try:
                decoded = self._frame.decompress(piece)
            except (zstandard.ZstdError, MemoryError) as error:
                raise ContentError(f"zstd frame does not decode ({error})") from None
            if self._frame.unused_data:  # only ever set once the frame has ended
                raise ContentError("bytes after the end of the zstd frame")
        self.decoded += len(decoded)
        if self.decoded > self.max_bytes:
            raise ContentError(f"content grows over the limit of {self.max_bytes} bytes")
        self._hash.update(decoded)
        return decoded

    def finish(self) -> None:
        """Raises ContentError unless the pieces fed were all of the content of the id."""
        if self._frame is not None and not self._frame.eof:
            raise ContentError("the zstd frame ends early")
        if self.object_id.removeprefix(ids.PREFIX) != self._hash.hexdigest():
            raise ContentError(f"content does not match its id {self.object_id}")
