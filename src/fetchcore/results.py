"""What the entry points return."""

from __future__ import annotations

from collections.abc import Mapping

import attrs

from fetchcore.planner import FetchPlan
from fetchcore.timings import Timings


@attrs.frozen
class FetchStats:
    """What one fetch read from storage.

    Attributes:
        cache_hits: blobs served from the content cache (no storage request).
        mpack_gets: whole-mpack GETs issued (retries included).
        range_gets: byte-range GETs issued (retries included).
        object_gets: legacy per-object GETs issued (retries included).
        bytes_read: bytes received from the store.
        retries: requests repeated after a transient failure or a timeout.
        failed_sources: mpack reads or ranges that were missing, corrupt or
            failed for good, whose blobs went to their next source.
        verified_whole_mpacks: whole-mpack reads whose bytes matched the mpack's id,
            so one sha256 of the mpack stood in for one per blob (ingest verified
            each blob in those exact bytes).
        timings: seconds per phase of this call (resolve, lookup, plan, read,
            upload) and its total. A call that waited for an identical build in
            flight reports its own time: its phases, and a total that includes
            the wait; the reads are the builder's. Not compared: two results
            that differ only in how long they took are equal.
    """

    cache_hits: int = 0
    mpack_gets: int = 0
    range_gets: int = 0
    object_gets: int = 0
    bytes_read: int = 0
    retries: int = 0
    failed_sources: int = 0
    verified_whole_mpacks: int = 0
    timings: Timings = attrs.field(factory=Timings, eq=False)

    @property
    def requests(self) -> int:
        """Storage read requests issued."""
        return self.mpack_gets + self.range_gets + self.object_gets


@attrs.frozen
class FetchResult:
    """A served fetch: the fetch document's id, where to download it, and what it holds.

    Attributes:
        mpack_id: the fetch id, a content id of what the document sends (see
            :mod:`fetchcore.fetch_id`); the same request gives the same id.
        mpack_url: a presigned URL of the document, or None if the store cannot sign.
        uploaded: this call wrote the document.
        reused: the document was already stored intact (or was being built by an
            identical request in this process), so this call read no push mpack.
        size_bytes: the bytes this call wrote; 0 when it wrote nothing (reused).
        stats: what this call read from storage, and how long its phases took.
    """

    mpack_id: str
    mpack_url: str | None
    commit_count: int
    snapshot_count: int
    blob_count: int
    size_bytes: int
    uploaded: bool
    reused: bool
    stats: FetchStats


@attrs.frozen
class IngestResult:
    """An ingested push: its mpack id and what it held (distinct blobs).

    Attributes:
        commit_ids: the commits recorded, in the order the push lists them.
        branch_heads: the branch heads the push set (branch -> commit id).
        size_bytes: the push's size.
        timings: seconds per phase and the total. A push handed over as bytes:
            parse, verify, connect, store, record (the connectivity queries run
            while the blobs are verified, so ``connect`` lies within ``verify``).
            A push in pieces: receive (parsing, verifying and staging as it
            arrives), connect, store (the staged bytes become the mpack), record.
            Not compared: ingesting the same push twice gives equal results.
    """

    mpack_id: str
    commit_count: int
    snapshot_count: int
    blob_count: int
    uploaded: bool
    commit_ids: tuple[str, ...] = ()
    branch_heads: Mapping[str, str] = attrs.field(factory=dict, hash=False)
    size_bytes: int = 0
    timings: Timings = attrs.field(factory=Timings, eq=False)


@attrs.frozen
class FetchPreview:
    """What a fetch would send and read: its counts and the plan for the first reads."""

    commit_count: int
    snapshot_count: int
    blob_count: int
    cached_bytes: int
    plan: FetchPlan
