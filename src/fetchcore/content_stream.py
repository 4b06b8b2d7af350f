"""Stored content that arrives in pieces: decoded and hashed in bounded memory.

Rules this module keeps (those of :mod:`fetchcore.content`, for content that is
never held whole):
- Nothing is allocated beyond the limit: a zstd frame that declares more is
  refused from its header; decoded output leaves zstd in small pieces, counted
  and hashed as it comes, and the stream is refused as soon as it grows past the
  limit (a few KiB of zstd may declare nothing and produce GiBs).
- Stored zstd content is exactly one frame: the frame's block headers are
  followed as the bytes pass, so a frame that ends early, a second frame or
  trailing bytes are refused just as :func:`fetchcore.content.decode` refuses them.
- The result is the sha256 of the decoded content; the caller compares it with
  the id (which may come after the content in a blob's map).
"""

from __future__ import annotations

import hashlib

import zstandard

from fetchcore.content import (
    _BLOCK_HEADER_LENGTH,
    _CHECKSUM_LENGTH,
    _COMPRESSED,
    _RAW,
    _RLE,
    Buffer,
    ContentError,
    OverLimitError,
)

_FRAME_HEADER_MAX = 18
_DECODED_PIECE = 1 << 17


class _FrameEnd:
    """Follows one zstd frame's block headers as its bytes pass, to find where it ends."""

    def __init__(self, header: bytes) -> None:
        try:
            params = zstandard.get_frame_parameters(header)
            self.next_block = zstandard.frame_header_size(header)
        except zstandard.ZstdError as error:
            raise ContentError(f"not a zstd frame ({error})") from None
        self.declared = (
            params.content_size if params.content_size != zstandard.CONTENTSIZE_UNKNOWN else -1
        )
        self.checksum = _CHECKSUM_LENGTH if params.has_checksum else 0
        self.end: int | None = None
        self.seen = 0
        self._carry = b""

    def feed(self, piece: Buffer) -> None:
        """Note the next stored bytes; once the last block is seen, :attr:`end` is known."""
        window_start = self.seen - len(self._carry)
        window = self._carry + bytes(piece) if self._carry else piece
        self.seen += len(piece)
        while self.end is None and self.next_block + _BLOCK_HEADER_LENGTH <= self.seen:
            at = self.next_block - window_start
            value = int.from_bytes(window[at : at + _BLOCK_HEADER_LENGTH], "little")
            last, kind, size = bool(value & 1), (value >> 1) & 3, value >> 3
            if kind not in (_RAW, _RLE, _COMPRESSED):
                raise ContentError("zstd frame holds a reserved block type")
            self.next_block += _BLOCK_HEADER_LENGTH + (1 if kind == _RLE else size)
            if last:
                self.end = self.next_block + self.checksum
        pending = self.end is None and self.next_block < self.seen
        self._carry = bytes(window[self.next_block - window_start :]) if pending else b""


class _Decoded:
    """Where zstd writes decoded bytes: hashed, counted, refused past the limit, and kept
    while they fit ``keep_up_to``."""

    def __init__(self, max_bytes: int, keep_up_to: int) -> None:
        self.max_bytes = max_bytes
        self.keep_up_to = keep_up_to
        self.size = 0
        self.hash = hashlib.sha256()
        self.kept: bytearray | None = bytearray() if keep_up_to > 0 else None

    def write(self, data: Buffer) -> int:
        self.size += len(data)
        if self.size > self.max_bytes:
            raise OverLimitError(
                f"content produces more than the limit of {self.max_bytes} bytes", None
            )
        self.hash.update(data)
        if self.kept is not None:
            if self.size <= self.keep_up_to:
                self.kept += data
            else:
                self.kept = None
        return len(data)


class ContentStream:
    """Decodes and hashes stored content of a known length that arrives in pieces.

    :meth:`feed` every stored piece in order, then :meth:`finish`. Memory: the
    zstd decoding window and one decoded piece, plus the decoded content while it
    fits ``keep_up_to`` (for the content cache; 0 keeps nothing).
    """

    def __init__(self, encoding: str, length: int, max_bytes: int, keep_up_to: int = 0) -> None:
        if encoding not in ("identity", "zstd"):
            raise ContentError(f"unknown encoding {encoding!r:.40}")
        if encoding == "identity" and length > max_bytes:
            raise OverLimitError(f"{length} bytes, over the limit of {max_bytes}", length)
        self.encoding = encoding
        self.length = length
        self.decoded = _Decoded(max_bytes, keep_up_to)
        self.stored = 0
        self._head = bytearray()
        self._frame: _FrameEnd | None = None
        self._writer: zstandard.ZstdDecompressionWriter | None = None

    def feed(self, piece: Buffer) -> None:
        """Decode and hash the next stored bytes.

        Raises:
            ContentError: they do not decode, or the content grows past the limit.
            OverLimitError: the frame declares, or the content reaches, more than the limit.
        """
        self.stored += len(piece)
        if self.stored > self.length:
            raise ContentError(f"more than the {self.length} stored bytes announced")
        if self.encoding == "identity":
            self.decoded.write(piece)
            return
        if self._frame is None:
            self._head += piece
            if len(self._head) < min(_FRAME_HEADER_MAX, self.length):
                return
            piece, self._head = bytes(self._head), bytearray()
            self._start_frame(piece)
        self._decode(piece)

    def finish(self) -> tuple[str, int, bytes | None]:
        """The sha256 (hex) of the decoded content, its size, and the content if kept.

        Raises:
            ContentError: the stored bytes are not all there, or not exactly one zstd frame.
        """
        if self.stored != self.length:
            raise ContentError(f"{self.stored} of the {self.length} stored bytes announced")
        if self.encoding == "zstd":
            if self._frame is None:  # shorter than a frame header
                self._start_frame(bytes(self._head))
                self._decode(bytes(self._head))
            self._finish_frame()
        kept = self.decoded.kept
        return (
            self.decoded.hash.hexdigest(),
            self.decoded.size,
            None if kept is None else bytes(kept),
        )

    def _start_frame(self, header: bytes) -> None:
        self._frame = _FrameEnd(header)
        declared = self._frame.declared
        if declared > self.decoded.max_bytes:
            raise OverLimitError(
                f"zstd frame declares {declared} bytes, over the limit of {self.decoded.max_bytes}",
                declared,
            )
        self._writer = zstandard.ZstdDecompressor().stream_writer(
            self.decoded,  # type: ignore[arg-type]  # zstd only calls write()
            write_size=_DECODED_PIECE,
            write_return_read=True,
        )

    def _decode(self, piece: Buffer) -> None:
        assert self._frame is not None
        assert self._writer is not None
        self._frame.feed(piece)
        if self._frame.end is not None and self._frame.end < self._frame.seen:
            raise self._not_one_frame()
        try:
            self._writer.write(piece)
        except zstandard.ZstdError as error:
            raise ContentError(f"zstd frame does not decode ({error})") from None
        except MemoryError:
            raise ContentError("zstd frame does not decode (out of memory)") from None

    def _finish_frame(self) -> None:
        assert self._frame is not None
        assert self._writer is not None
        if self._frame.end is None or self._frame.end > self.length:
            raise ContentError("zstd frame is truncated")
        if self._frame.end != self.length:
            raise self._not_one_frame()
        try:
            self._writer.flush()  # type: ignore[no-untyped-call]
        except zstandard.ZstdError as error:
            raise ContentError(f"zstd frame does not decode ({error})") from None
        declared = self._frame.declared
        if declared >= 0 and declared != self.decoded.size:
            raise ContentError(
                f"zstd frame declares {declared} bytes but produces {self.decoded.size}"
            )

    def _not_one_frame(self) -> ContentError:
        assert self._frame is not None
        return ContentError(
            "stored content is not exactly one zstd frame "
            f"({self.length} bytes, frame {self._frame.end})"
        )
