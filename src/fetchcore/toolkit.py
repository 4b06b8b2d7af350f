"""The adapter writer's toolkit: every helper an index or store adapter needs, in one place.

An adapter over a hub's own tables or storage backend implements a port of
:mod:`fetchcore.ports` and uses these to keep the port's promises:

- the ports: :class:`FetchIndex` (read) and :class:`IngestIndex` (write), their
  union :class:`IndexRepo`; :class:`FetchStore`, :class:`FetchUpload`,
  :class:`RangedReads`, :class:`PushStore`, :class:`StagedPushes` and
  :class:`PushUpload`, their union :class:`ObjectStore`;
  and :func:`allows_concurrent_calls` (an index whose calls may overlap within
  one fetch declares a class attribute ``concurrent_calls = True``);
- the commit walk, for an index that loads a repository's commits and walks
  them in Python: :func:`commits_to_send` (ancestors-or-self of ``want`` minus
  those of ``have``, parents first), :func:`ancestors_or_self`, :func:`parents_first`;
- ids: :func:`canonical` (the form an index stores and answers in),
  :func:`check_mpack_id` (refuse a malformed mpack id before any I/O),
  :func:`content_id` (the id of some bytes), :func:`is_object_id`, :func:`is_mpack_id`;
- argument checks that raise :class:`InvalidRequestError` before any I/O:
  :func:`check_range`, :func:`check_repo_id`, :func:`check_record` (what every
  ``record`` checks first; it runs :meth:`IndexBatch.check`);
- the errors an adapter raises for what still fails after its own retries:
  :class:`ObjectStoreError`, :class:`IndexRepoError`.

Pass-through wrappers of the ports (subclass one, override what differs) live
with the adapters: ``fetchcore.adapters.wrapping.ObjectStoreWrapper`` and
``fetchcore.adapters.wrapping.IndexRepoWrapper``; in-memory fakes in
``fetchcore.adapters.memory``.
"""

from fetchcore.errors import (
    FetchError,
    IndexRepoError,
    InvalidRequestError,
    ObjectStoreError,
    StorageError,
    UnknownCommitError,
)
from fetchcore.graph import ancestors_or_self, commits_to_send, parents_first
from fetchcore.ids import canonical, check_mpack_id, content_id, is_mpack_id, is_object_id
from fetchcore.model import Commit, IndexBatch, Location, Snapshot, check_record
from fetchcore.ports import (
    FetchIndex,
    FetchStore,
    FetchUpload,
    IndexRepo,
    IngestIndex,
    ObjectStore,
    PushStore,
    PushUpload,
    RangedReads,
    StagedPushes,
    allows_concurrent_calls,
)
from fetchcore.validation import check_range, check_repo_id

__all__ = [
    "Commit",
    "FetchError",
    "FetchIndex",
    "FetchStore",
    "FetchUpload",
    "IndexBatch",
    "IndexRepo",
    "IndexRepoError",
    "IngestIndex",
    "InvalidRequestError",
    "Location",
    "ObjectStore",
    "ObjectStoreError",
    "PushStore",
    "PushUpload",
    "RangedReads",
    "Snapshot",
    "StagedPushes",
    "StorageError",
    "UnknownCommitError",
    "allows_concurrent_calls",
    "ancestors_or_self",
    "canonical",
    "check_mpack_id",
    "check_range",
    "check_record",
    "check_repo_id",
    "commits_to_send",
    "content_id",
    "is_mpack_id",
    "is_object_id",
    "parents_first",
]
