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

from fetchcore import ids
from fetchcore.model import Commit, Snapshot
from fetchcore.wire import canonical_value

_DOMAIN = b"fetchcore fetch document v1\x00"


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
    canonical = {
        "accept_encodings": sorted(set(accept_encodings)),
        "blob_ids": sorted(blob_ids),
        "branch_heads": canonical_value(dict(branch_heads)),
        "commits": [canonical_value(commit.to_wire()) for commit in commits],
        "snapshots": [
            canonical_value(snapshot.to_wire())
            for snapshot in sorted(snapshots, key=lambda s: s.snapshot_id)
        ],
    }
    encoded: bytes = msgpack.packb(canonical, use_bin_type=True)
    return ids.PREFIX + hashlib.sha256(_DOMAIN + encoded).hexdigest()
