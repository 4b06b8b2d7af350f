"""Verifying the blobs of a push: every one decoded and checked against its id.

Rules this module keeps:
- A blob that does not decode, is over a limit, or does not hash to its id
  rejects the whole push (InvalidMPackError naming ``blobs[i]``).
- The decoded total of a push is charged to one :class:`~fetchcore.content.DecodeBudget`.
- Blobs of at most ``Policy.cache_max_bytes`` decoded bytes are kept for the
  content cache; no other decoded content outlives its check.
- A blob that arrives whole is decoded in one call; a large one arrives in
  pieces and is decoded as it passes (:class:`~fetchcore.content_stream.ContentStream`).
  When its encoding comes after its content in the map, it is decoded both ways
  until the encoding is known (identity costs only a hash).
"""

from __future__ import annotations

from collections.abc import Sequence

from fetchcore import content, ids
from fetchcore.content_stream import ContentStream
from fetchcore.errors import InvalidMPackError
from fetchcore.policy import Policy
from fetchcore.wire import BlobEntry


def verify_whole(
    stored: content.Buffer,
    index: int,
    blob: BlobEntry,
    budget: content.DecodeBudget,
    policy: Policy,
) -> bytes | None:
    """Decode and verify one blob held whole; its content if the cache takes it.

    Its own function so that one decoded blob is let go before the next is decoded.
    """
    try:
        decoded = budget.decode_verified(
            blob.object_id, stored, blob.encoding, policy.max_blob_bytes
        )
    except content.ContentError as error:
        raise InvalidMPackError(f"blobs[{index}]", str(error)) from None
    cacheable = policy.cache_max_bytes > 0 and len(decoded) <= policy.cache_max_bytes
    return decoded if cacheable else None


def verify_all(data: bytes, blobs: Sequence[BlobEntry], policy: Policy) -> list[tuple[str, bytes]]:
    """Decode and verify every blob of a whole document; the ones the cache takes.

    One thread does it all: threads contending for the GIL over thousands of
    small blobs ran twice as slow.
    """
    view = memoryview(data)
    budget = content.DecodeBudget(policy.max_push_decoded_bytes)
    cacheable: list[tuple[str, bytes]] = []
    for index, blob in enumerate(blobs):
        stored = view[blob.offset : blob.end]
        if (cached := verify_whole(stored, index, blob, budget, policy)) is not None:
            cacheable.append((ids.canonical(blob.object_id), cached))
    return cacheable


class _Candidate:
    """One way of decoding a large blob; its first failure is kept for when it matters."""

    def __init__(self, encoding: str, length: int, max_bytes: int, keep_up_to: int) -> None:
        self.failure: content.ContentError | None = None
        self.stream: ContentStream | None = None
        try:
            self.stream = ContentStream(encoding, length, max_bytes, keep_up_to)
        except content.ContentError as error:
            self.failure = error

    def feed(self, piece: bytes) -> None:
        if self.stream is not None and self.failure is None:
            try:
                self.stream.feed(piece)
            except content.ContentError as error:
                self.failure = error

    def finish(self) -> tuple[str, int, bytes | None]:
        if self.failure is None and self.stream is not None:
            try:
                return self.stream.finish()
            except content.ContentError as error:
                self.failure = error
        assert self.failure is not None
        raise self.failure


class PushBlobs:
    """Every blob of a push verified as the parser meets it (a
    :class:`~fetchcore.stream_parser.BlobSink`); :attr:`cached` collects what the cache takes."""

    def __init__(self, policy: Policy) -> None:
        self.policy = policy
        self.budget = content.DecodeBudget(policy.max_push_decoded_bytes)
        self.cached: list[tuple[str, bytes]] = []
        self._candidates: dict[str, _Candidate] = {}

    def whole(self, index: int, entry: BlobEntry, stored: bytes) -> None:
        if (kept := verify_whole(stored, index, entry, self.budget, self.policy)) is not None:
            self.cached.append((ids.canonical(entry.object_id), kept))

    def begin(self, index: int, length: int, object_id: str | None, encoding: str | None) -> None:
        allowance = self.budget.allowance(self.policy.max_blob_bytes)
        keep = self.policy.cache_max_bytes
        encodings = (encoding,) if encoding is not None else ("identity", "zstd")
        self._candidates = {e: _Candidate(e, length, allowance, keep) for e in encodings}

    def piece(self, stored: bytes) -> None:
        for candidate in self._candidates.values():
            candidate.feed(stored)

    def end(self, index: int, entry: BlobEntry) -> None:
        candidate = self._candidates.pop(entry.encoding)
        self._candidates = {}
        try:
            digest, size, kept = candidate.finish()
        except content.OverLimitError as error:
            failure = self.budget.blame(error, self.policy.max_blob_bytes)
            raise InvalidMPackError(f"blobs[{index}]", str(failure)) from None
        except content.ContentError as error:
            raise InvalidMPackError(f"blobs[{index}]", str(error)) from None
        if entry.object_id.removeprefix(ids.PREFIX) != digest:
            raise InvalidMPackError(
                f"blobs[{index}]", f"content does not match its id {entry.object_id}"
            )
        self.budget.spent += size
        if kept is not None and self.policy.cache_max_bytes > 0:
            self.cached.append((ids.canonical(entry.object_id), kept))
