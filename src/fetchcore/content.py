"""Blob content: decoding stored bytes and verifying them against their id.

Rules this module keeps:
- Nothing is allocated beyond ``max_bytes``: a zstd frame that declares more is
  rejected before decompression; a frame that declares nothing is decoded in
  bounded chunks and rejected as soon as it produces more.
- Content is served only after its sha256 matches the digest its id names.
- Every failure is a :class:`ContentError`; no zstd or memory error escapes.
"""

from __future__ import annotations

import hashlib
import threading

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


Buffer = bytes | bytearray | memoryview


def _decode_zstd(frame: Buffer, max_bytes: int) -> bytes:
    try:
        declared = zstandard.frame_content_size(frame)
    except zstandard.ZstdError as error:
        raise ContentError(f"not a zstd frame ({error})") from None
    if declared > max_bytes:
        raise ContentError(f"zstd frame declares {declared} bytes, over the limit of {max_bytes}")
    decompressor = _decompressor()
    try:
        if declared >= 0:
            return decompressor.decompress(frame)
        return _decode_unsized(decompressor, frame, max_bytes)
    except (zstandard.ZstdError, MemoryError) as error:
        raise ContentError(f"zstd frame does not decode ({error})") from None


def _decode_unsized(
    decompressor: zstandard.ZstdDecompressor, frame: Buffer, max_bytes: int
) -> bytes:
    chunks: list[bytes] = []
    total = 0
    with decompressor.stream_reader(frame) as reader:
        while chunk := reader.read(_CHUNK):
            total += len(chunk)
            if total > max_bytes:
                raise ContentError(f"zstd frame produces more than the limit of {max_bytes} bytes")
            chunks.append(chunk)
    return b"".join(chunks)


def decode(stored: Buffer, encoding: str, max_bytes: int) -> bytes:
    """Decode stored content to the blob's bytes.

    Raises:
        ContentError: unknown encoding, undecodable frame, or more than ``max_bytes``.
    """
    if encoding == "zstd":
        return _decode_zstd(stored, max_bytes)
    if encoding != "identity":
        raise ContentError(f"unknown encoding {encoding!r:.40}")
    if len(stored) > max_bytes:
        raise ContentError(f"{len(stored)} bytes, over the limit of {max_bytes}")
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
