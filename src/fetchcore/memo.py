"""FetchMemo: what a hub remembers of the fetches it resolved.

Resolving a fetch (the commits sent, their snapshots with their manifests, the
have side's manifests, hashing it all into the fetch id) is most of what a
repeated fetch costs. Commits and snapshots do not change once recorded, so a
hub that passes one memo to every :func:`~fetchcore.serve_fetch` call pays for
that once per request shape; a repeated fetch then costs two small index calls,
one existence check and one presign.

Rules this module keeps:
- An entry is keyed by the repository, the want and have sets and the accepted
  encodings. It holds the fetch id's :class:`~fetchcore.fetch_id.ContentDigest`
  (everything but the branch heads), the counts, and the want and have commits
  as the index returned them; never manifests or blob data.
- What can change is read again on every hit: the branch heads (the id is
  finished with them) and the want and have commits themselves (a hit needs the
  repository to hold them unchanged, so a deleted repository's entries die at
  their next use). A hub that deletes a repository and lets it be pushed again
  under the same commit ids calls :meth:`FetchMemo.forget` (or passes the memo
  to :func:`~fetchcore.lifecycle.delete_repository`).
- A resolution where some have commit was unknown is not remembered: that
  commit may be pushed later, and then less is sent.
- Bounded: at most ``max_entries`` entries and about ``max_bytes`` bytes, least
  recently used out first; an entry older than ``ttl_s`` is dropped when met.
- One memo belongs to one index (one hub's database) and one event loop.
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from collections.abc import Callable, Collection

import attrs

from fetchcore.errors import InvalidRequestError
from fetchcore.fetch_id import ContentDigest
from fetchcore.policy import MiB, integer_within

_ENTRY_OVERHEAD_BYTES = 512
"""What an entry costs besides its ids: the key and entry objects, the hash state."""


@attrs.frozen
class FetchKey:
    """The shape of a fetch request: what the id depends on besides the index's content."""

    repo_id: str
    want: frozenset[str]
    have: frozenset[str]
    encodings: frozenset[str]

    @classmethod
    def of(
        cls, repo_id: str, want: Collection[str], have: Collection[str], encodings: Collection[str]
    ) -> FetchKey:
        return cls(repo_id, frozenset(want), frozenset(have), frozenset(encodings))

    @property
    def endpoint_ids(self) -> frozenset[str]:
        """The want and have commit ids: what a hit must find unchanged in the index."""
        return self.want | self.have


@attrs.frozen
class Resolution:
    """A resolved fetch as the memo keeps it."""

    digest: ContentDigest
    commit_count: int
    snapshot_count: int
    blob_count: int
    endpoints: bytes
    """The want and have commits as the index returned them, packed in id order."""

    def cost_bytes(self, key: FetchKey) -> int:
        ids = sum(len(commit_id) for commit_id in key.endpoint_ids)
        return _ENTRY_OVERHEAD_BYTES + 2 * ids + len(self.endpoints) + len(key.repo_id)


@attrs.frozen
class _Entry:
    resolution: Resolution
    stored_at: float
    cost: int


@attrs.define
class FetchMemo:
    """Resolved fetches by request shape, shared by a hub across requests.

    Make one at start-up, next to the :class:`~fetchcore.FetchLimiter`, and pass
    it to every :func:`~fetchcore.serve_fetch` call on the same index.

    Attributes:
        max_entries: entries kept at most.
        max_bytes: what the entries may cost together, by the memo's own estimate
            (ids, packed want and have commits, a fixed overhead each).
        ttl_s: seconds an entry is used after it was stored.
        clock: monotonic seconds (for tests).
    """

    max_entries: int = attrs.field(default=4096, validator=integer_within(1))
    max_bytes: int = attrs.field(default=16 * MiB, validator=integer_within(1))
    ttl_s: float = attrs.field(default=600.0)
    clock: Callable[[], float] = attrs.field(default=time.monotonic, repr=False)
    _entries: OrderedDict[FetchKey, _Entry] = attrs.field(init=False, factory=OrderedDict)
    _bytes: int = attrs.field(init=False, default=0)

    @ttl_s.validator
    def _positive_ttl(self, _: attrs.Attribute[float], value: float) -> None:
        is_number = isinstance(value, int | float) and not isinstance(value, bool)
        if not (is_number and math.isfinite(value) and value > 0):
            raise InvalidRequestError(
                f"FetchMemo.ttl_s must be a finite number of seconds > 0, not {value!r:.80}"
            )

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def size_bytes(self) -> int:
        """What the entries cost, by the memo's own estimate."""
        return self._bytes

    def get(self, key: FetchKey) -> Resolution | None:
        """The resolution remembered for ``key``, unless it is missing or too old."""
        entry = self._entries.get(key)
        if entry is None:
            return None
        if self.clock() - entry.stored_at > self.ttl_s:
            self._drop(key)
            return None
        self._entries.move_to_end(key)
        return entry.resolution

    def remember(self, key: FetchKey, resolution: Resolution) -> None:
        """Keep ``resolution`` for ``key``, evicting the least recently used as needed;
        one larger than the whole memo is not kept."""
        cost = resolution.cost_bytes(key)
        self._drop(key)
        if cost > self.max_bytes:
            return
        self._entries[key] = _Entry(resolution, self.clock(), cost)
        self._bytes += cost
        while len(self._entries) > self.max_entries or self._bytes > self.max_bytes:
            self._drop(next(iter(self._entries)))

    def discard(self, key: FetchKey) -> None:
        """Drop the entry for ``key`` (its commits are no longer what it recorded)."""
        self._drop(key)

    def forget(self, repo_id: str) -> int:
        """Drop every entry of ``repo_id`` (call it when the repository is deleted);
        returns how many were dropped."""
        keys = [key for key in self._entries if key.repo_id == repo_id]
        for key in keys:
            self._drop(key)
        return len(keys)

    def clear(self) -> None:
        """Drop every entry."""
        self._entries.clear()
        self._bytes = 0

    def _drop(self, key: FetchKey) -> None:
        entry = self._entries.pop(key, None)
        if entry is not None:
            self._bytes -= entry.cost
