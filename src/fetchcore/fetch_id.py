"""The fetch id: the content id of what a fetch sends, known before any blob is read.

Rules this module keeps:
- The id names the *content* of a fetch document, not its bytes: the commits
  sent (in the order sent, parents first), their snapshots, the ids of the blobs
  sent (as the manifests wrote them), the encodings the client accepts and the
  branch heads. Which encoding a blob ends up in, and where it sits in the
  document, depend on which source served it and when; neither is part of the id.
- Same content, same id; any difference, another id. Snapshots, blob ids and
  encodings count as sets: their order never changes the id.
- The branch heads are hashed last: they are the one part that moves while the
  rest stays (commits and snapshots never change), so a :class:`ContentDigest`
  of everything before them can be kept and finished with the heads of the day.
- The hashed bytes start with a domain tag, so a fetch id never names the
  bytes of a push mpack.
"""

from __future__ import annotations

import hashlib
from collections.abc import Collection, Iterable, Mapping, Sequence

import attrs
import msgpack

from fetchcore import ids, wire
from fetchcore.model import Commit, Snapshot
from fetchcore.wire import canonical_value

_DOMAIN = b"fetchcore fetch document v3\x00"


@attrs.frozen
class ContentDigest:
    """The fetch id's hash over everything but the branch heads.

    Finishing it (:meth:`fetch_id`) leaves it unchanged, so one digest serves
    every later request for the same content, whatever the heads are then.
    """

    _state: hashlib._Hash

    def fetch_id(self, branch_heads: Mapping[str, str]) -> str:
        """The id of the document that sends this content with these branch heads."""
        digest = self._state.copy()
        digest.update(_pack(canonical_value(dict(branch_heads))))
        return ids.PREFIX + digest.hexdigest()


def content_digest(
    packed_commits: Iterable[bytes],
    packed_snapshots: Iterable[bytes],
    blob_ids: Collection[str],
    accept_encodings: Collection[str],
) -> ContentDigest:
    """The digest of a fetch's content but its branch heads.

    Args:
        packed_commits: the commits as the document encodes them
            (``wire.pack_commits``), in pieces; consumed once.
        packed_snapshots: the snapshots likewise (``wire.pack_snapshots``).
        blob_ids: the ids of the blobs sent, as the manifests wrote them, any order.
        accept_encodings: the encodings the client accepts, any order.
    """
    digest = hashlib.sha256(_DOMAIN)
    # Each part is one self-delimiting msgpack value: their concatenation is unambiguous.
    for piece in packed_commits:
        digest.update(piece)
    for piece in packed_snapshots:
        digest.update(piece)
    digest.update(_pack(sorted(blob_ids)))
    digest.update(_pack(sorted(set(accept_encodings))))
    return ContentDigest(digest)


def fetch_id(
    commits: Sequence[Commit],
    snapshots: Iterable[Snapshot],
    branch_heads: Mapping[str, str],
    blob_ids: Collection[str],
    accept_encodings: Collection[str],
) -> str:
    """The id of the fetch document that sends this content.

    Args:
        commits: the commits sent, in the order sent (parents first).
        snapshots: their snapshots, any order.
        branch_heads: the repository's branch heads.
        blob_ids: the ids of the blobs sent, as the manifests wrote them, any order.
        accept_encodings: the encodings the client accepts, any order.

    Returns:
        ``sha256:<hex>`` of a canonical encoding of all of the above.
    """
    digest = content_digest(
        wire.pack_commits(commits), wire.pack_snapshots(snapshots), blob_ids, accept_encodings
    )
    return digest.fetch_id(branch_heads)


def _pack(value: object) -> bytes:
    packed: bytes = msgpack.packb(value, use_bin_type=True)
    return packed
