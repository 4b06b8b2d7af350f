"""The fetch id: the content id of what a fetch sends, known before any blob is read.

Rules this module keeps:
- The id names the *content* of a fetch document, not its bytes: the commits
  sent (in the order sent, parents first), their snapshots, the branch heads,
  the ids of the blobs sent (as the manifests wrote them) and the encodings the
  client accepts. Which encoding a blob ends up in, and where it sits in the
  document, depend on which source served it and when; neither is part of the id.
- Same content, same id; any difference, another id. Snapshots, blob ids and
  encodings count as sets: their order never changes the id.
- The hashed bytes start with a domain tag, so a fetch id never names the
  bytes of a push mpack.
"""

from __future__ import annotations

import hashlib
from collections.abc import Collection, Iterable, Mapping, Sequence

import msgpack

from fetchcore import ids, wire
from fetchcore.model import Commit, Snapshot
from fetchcore.wire import canonical_value

_DOMAIN = b"fetchcore fetch document v2\x00"


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
    return packed_fetch_id(
        wire.pack_commits(commits),
        wire.pack_snapshots(snapshots),
        branch_heads,
        blob_ids,
        accept_encodings,
    )


def packed_fetch_id(
    packed_commits: wire.Packed,
    packed_snapshots: wire.Packed,
    branch_heads: Mapping[str, str],
    blob_ids: Collection[str],
    accept_encodings: Collection[str],
) -> str:
    """:func:`fetch_id` from the commits and snapshots as the document encodes them
    (``wire.pack_commits``, ``wire.pack_snapshots``), so a large fetch encodes them once."""
    digest = hashlib.sha256(_DOMAIN)
    # Each part is one self-delimiting msgpack value: their concatenation is unambiguous.
    for part in (
        *packed_commits,
        *packed_snapshots,
        _pack(canonical_value(dict(branch_heads))),
        _pack(sorted(blob_ids)),
        _pack(sorted(set(accept_encodings))),
    ):
        digest.update(part)
    return ids.PREFIX + digest.hexdigest()


def _pack(value: object) -> bytes:
    packed: bytes = msgpack.packb(value, use_bin_type=True)
    return packed
