"""fetchcore: the fetch engine of a version-control hub.

A client asks for commits (``want``) and says what it has (``have``);
:func:`serve_fetch` answers with one fetch document, streamed out of the push
mpacks that :func:`ingest_push` stored, under its fetch id (a content id of
what it sends), or handed out again if already stored intact. The planner
(:func:`plan_fetch`) and the wire codec are pure; the executor talks only to
the ports (:mod:`fetchcore.ports`), which adapters implement; adapter
writers find their helpers in :mod:`fetchcore.toolkit`.
"""

from fetchcore._version import __version__
from fetchcore.errors import (
    FetchDeadlineError,
    FetchError,
    FetchNotIndexedError,
    FetchTooLargeError,
    IndexIntegrityError,
    IndexRepoError,
    InvalidMPackError,
    InvalidRequestError,
    LegacyFallbackLimitError,
    ObjectStoreError,
    ObjectUnavailableError,
    PushTooLargeError,
    StorageError,
    UnknownCommitError,
)
from fetchcore.fetch import preview_fetch, serve_fetch
from fetchcore.ingest import ingest_push
from fetchcore.limiter import FetchLimiter
from fetchcore.memo import FetchMemo
from fetchcore.model import Commit, IndexBatch, Location, Snapshot
from fetchcore.planner import FetchPlan, MPackRead, plan_fetch
from fetchcore.policy import Policy
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
)
from fetchcore.results import FetchPreview, FetchResult, FetchStats, IngestResult

__all__ = [
    "Commit",
    "FetchDeadlineError",
    "FetchError",
    "FetchIndex",
    "FetchLimiter",
    "FetchMemo",
    "FetchNotIndexedError",
    "FetchPlan",
    "FetchPreview",
    "FetchResult",
    "FetchStats",
    "FetchStore",
    "FetchTooLargeError",
    "FetchUpload",
    "IndexBatch",
    "IndexIntegrityError",
    "IndexRepo",
    "IndexRepoError",
    "IngestIndex",
    "IngestResult",
    "InvalidMPackError",
    "InvalidRequestError",
    "LegacyFallbackLimitError",
    "Location",
    "MPackRead",
    "ObjectStore",
    "ObjectStoreError",
    "ObjectUnavailableError",
    "Policy",
    "PushStore",
    "PushTooLargeError",
    "PushUpload",
    "RangedReads",
    "Snapshot",
    "StagedPushes",
    "StorageError",
    "UnknownCommitError",
    "__version__",
    "ingest_push",
    "plan_fetch",
    "preview_fetch",
    "serve_fetch",
]
