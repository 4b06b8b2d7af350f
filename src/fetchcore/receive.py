"""A push received in pieces: counted, hashed, parsed and verified as it passes. Pure.

:class:`PushReceiver` is what the streamed ingest feeds every chunk of a push
to, in order. It never holds the push: a chunk is hashed into the mpack id,
parsed (:class:`~fetchcore.stream_parser.PushStreamParser`) and its blobs verified
(:class:`~fetchcore.blob_check.PushBlobs`), then let go. Memory is what the
parser keeps (the commits, snapshots and blob entries: bounded by the policy's
document limits) plus one blob's decoding window.
"""

from __future__ import annotations

import hashlib

import attrs

from fetchcore import ids
from fetchcore.blob_check import PushBlobs
from fetchcore.errors import PushTooLargeError
from fetchcore.policy import Policy
from fetchcore.stream_parser import WHOLE_BLOB_BYTES, PushStreamParser
from fetchcore.wire import PushDocument


@attrs.frozen
class ReceivedPush:
    """A whole push, received and verified: its id, size, document and cacheable blobs."""

    mpack_id: str
    size: int
    document: PushDocument
    cached: list[tuple[str, bytes]]

    def batch_parts(self) -> tuple[PushDocument, str, int, list[tuple[str, bytes]]]:
        """What the index batch is built from: document, mpack id, size, cached blobs."""
        return self.document, self.mpack_id, self.size, self.cached


class PushReceiver:
    """Takes a push chunk by chunk; :meth:`finish` gives the verified push."""

    def __init__(self, policy: Policy, *, whole_blob_bytes: int = WHOLE_BLOB_BYTES) -> None:
        self.policy = policy
        self.size = 0
        self._hash = hashlib.sha256()
        self._blobs = PushBlobs(policy)
        self._parser = PushStreamParser(policy, self._blobs, whole_blob_bytes=whole_blob_bytes)

    def admit(self, length: int) -> None:
        """Count the next chunk's length against ``Policy.max_push_bytes`` before it is taken.

        Raises:
            PushTooLargeError: the push would go past the limit.
        """
        if self.size + length > self.policy.max_push_bytes:
            raise PushTooLargeError(self.policy.max_push_bytes)
        self.size += length

    def take(self, chunk: bytes) -> None:
        """Hash, parse and verify the next chunk (admitted first).

        Raises:
            InvalidMPackError: the document is malformed, over a limit, or a blob fails.
        """
        self.hash(chunk)
        self.parse(chunk)

    def hash(self, chunk: bytes) -> None:
        """Hash the next chunk into the mpack id. With :meth:`parse`, what :meth:`take`
        does; the two may run side by side (in two threads) on one chunk, each in order."""
        self._hash.update(chunk)

    def parse(self, chunk: bytes) -> None:
        """Parse the next chunk and verify its blobs (see :meth:`take`).

        Raises:
            InvalidMPackError: the document is malformed, over a limit, or a blob fails.
        """
        self._parser.feed(chunk)

    def finish(self) -> ReceivedPush:
        """The push, once every chunk was taken.

        Raises:
            InvalidMPackError: the document is incomplete.
        """
        document = self._parser.finish()
        mpack_id = ids.PREFIX + self._hash.hexdigest()
        return ReceivedPush(mpack_id, self.size, document, self._blobs.cached)
