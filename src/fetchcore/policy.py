"""Policy: every tunable of fetch and ingest, with defaults a hub can live with."""

from __future__ import annotations

from typing import Any

import attrs

from fetchcore.errors import InvalidRequestError

KiB = 1024
MiB = 1024 * KiB
GiB = 1024 * MiB


def _at_least(minimum: float) -> Any:
    def check(instance: object, attribute: attrs.Attribute[Any], value: Any) -> None:
        if isinstance(value, bool) or not isinstance(value, int | float) or value < minimum:
            raise InvalidRequestError(
                f"Policy.{attribute.name} must be >= {minimum}, not {value!r}"
            )

    return check


def _optional_positive(instance: object, attribute: attrs.Attribute[Any], value: Any) -> None:
    if value is not None:
        _at_least(0.001)(instance, attribute, value)


@attrs.frozen
class Policy:
    """Every tunable of fetchcore.

    Reading:
        max_in_flight: storage requests running at once in one fetch.
        coalesce_gap_bytes: gaps between needed spans up to this size may be read
            to save a request; larger gaps are never read.
        max_range_bytes: a ranged GET is at most this long (unless one blob is longer).
        max_read_amplification: a ranged read of an mpack reads at most this many
            times the bytes it needs (gap coalescing stops at that budget).
        request_cost_bytes: what one extra request is worth in bytes, when the
            planner weighs one whole GET against several ranged GETs.
        presign_ttl_s: lifetime of the presigned URL of the fetch mpack.

    Resilience:
        read_attempts: tries per storage read on a transient error (1 = no retry).
        retry_backoff_s: base of the jittered exponential backoff between tries.
        request_timeout_s: a single storage request that takes longer has failed.
        deadline_s: the whole fetch must finish within this, else FetchDeadlineError
            (None: no deadline).

    Content:
        max_blob_bytes: decoded size limit of one blob (zstd frames are checked
            before anything is allocated).
        cache_max_bytes: ingest puts blobs of at most this many bytes into the
            content cache; 0 caches nothing.
        max_push_decoded_bytes: decoded size limit of all the blobs of one push
            (a few KiB of zstd can declare GiBs; checked before allocating).
        max_fetch_decoded_bytes: decoded size limit of all the blobs one fetch sends.

    Untrusted push documents:
        max_document_bytes, max_entries (per top-level list and branch-head map),
        max_manifest_entries, max_id_length, max_depth (nesting of carried fields).
    """

    max_in_flight: int = attrs.field(default=16, validator=_at_least(1))
    coalesce_gap_bytes: int = attrs.field(default=1 * MiB, validator=_at_least(0))
    max_range_bytes: int = attrs.field(default=16 * MiB, validator=_at_least(1))
    max_read_amplification: float = attrs.field(default=2.0, validator=_at_least(1.0))
    request_cost_bytes: int = attrs.field(default=256 * KiB, validator=_at_least(0))
    presign_ttl_s: int = attrs.field(default=3600, validator=_at_least(1))

    read_attempts: int = attrs.field(default=3, validator=_at_least(1))
    retry_backoff_s: float = attrs.field(default=0.05, validator=_at_least(0))
    request_timeout_s: float = attrs.field(default=60.0, validator=_at_least(0.001))
    deadline_s: float | None = attrs.field(default=None, validator=_optional_positive)

    max_blob_bytes: int = attrs.field(default=256 * MiB, validator=_at_least(0))
    cache_max_bytes: int = attrs.field(default=0, validator=_at_least(0))
    max_push_decoded_bytes: int = attrs.field(default=4 * GiB, validator=_at_least(0))
    max_fetch_decoded_bytes: int = attrs.field(default=4 * GiB, validator=_at_least(0))

    max_document_bytes: int = attrs.field(default=2 * GiB, validator=_at_least(1))
    max_entries: int = attrs.field(default=1_000_000, validator=_at_least(1))
    max_manifest_entries: int = attrs.field(default=1_000_000, validator=_at_least(1))
    max_id_length: int = attrs.field(default=256, validator=_at_least(64 + len("sha256:")))
    max_depth: int = attrs.field(default=32, validator=_at_least(1))
