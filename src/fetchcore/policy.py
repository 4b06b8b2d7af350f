"""Policy: every tunable of fetch and ingest, with defaults a hub can live with."""

from __future__ import annotations

import math
from typing import Any

import attrs

from fetchcore.errors import InvalidRequestError

KiB = 1024
MiB = 1024 * KiB
GiB = 1024 * MiB


DEFAULT_DEADLINE_S = 300.0
"""How long a fetch may run by default: far above a healthy fetch, short of a hung request."""

MAX_PRESIGN_TTL_S = 7 * 24 * 3600
"""The longest a presigned URL may live: S3's SigV4 maximum (7 days)."""


def _refuse(
    instance: object, attribute: attrs.Attribute[Any], wanted: str, value: Any
) -> InvalidRequestError:
    owner = type(instance).__name__
    return InvalidRequestError(f"{owner}.{attribute.name} must be {wanted}, not {value!r:.80}")


def integer_within(minimum: int, maximum: int | None = None) -> Any:
    """An attrs validator: an int (not a bool, nor a float however whole) in [minimum, maximum]."""
    wanted = f"an integer >= {minimum}" + ("" if maximum is None else f" and <= {maximum}")

    def check(instance: object, attribute: attrs.Attribute[Any], value: Any) -> None:
        is_int = isinstance(value, int) and not isinstance(value, bool)
        if not is_int or value < minimum or (maximum is not None and value > maximum):
            raise _refuse(instance, attribute, wanted, value)

    return check


def _flag(instance: object, attribute: attrs.Attribute[Any], value: Any) -> None:
    """An attrs validator: True or False, nothing else (not 0 or 1, not a string)."""
    if not isinstance(value, bool):
        raise _refuse(instance, attribute, "True or False", value)


def _real(minimum: float) -> Any:
    """A finite int or float (not a bool, not NaN, not an infinity) of at least ``minimum``."""

    def check(instance: object, attribute: attrs.Attribute[Any], value: Any) -> None:
        is_number = isinstance(value, int | float) and not isinstance(value, bool)
        if not is_number or not math.isfinite(value) or value < minimum:
            raise _refuse(instance, attribute, f"a finite number >= {minimum}", value)

    return check


def _optional_real(minimum: float) -> Any:
    """None, or what :func:`_real` accepts."""
    real = _real(minimum)

    def check(instance: object, attribute: attrs.Attribute[Any], value: Any) -> None:
        if value is not None:
            real(instance, attribute, value)

    return check


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
        presign_ttl_s: lifetime of the presigned URL of the fetch mpack, at most
            :data:`MAX_PRESIGN_TTL_S` (7 days, S3's maximum). A store whose own
            maximum is lower refuses a longer TTL before any work, as this does.

    Resilience:
        read_attempts: tries per storage read on a transient error (1 = no retry).
        retry_backoff_s: base of the jittered exponential backoff between tries.
        request_timeout_s: a single storage request that takes longer has failed.
        deadline_s: the whole fetch (index calls and storage reads) must finish within
            this, else FetchDeadlineError. The default, :data:`DEFAULT_DEADLINE_S`
            (5 minutes), is far above a healthy fetch (a 25,000-blob fetch takes
            seconds) yet stops a stalled index or store from holding a request
            forever. None: no deadline.
        max_legacy_gets: per-object (legacy key) GETs one fetch may issue. Past
            it the fetch fails fast with LegacyFallbackLimitError before issuing
            any of them: thousands of legacy GETs mean the push mpacks cannot be
            found (a wrong bucket or prefix), not a few stray objects. 0 forbids them.

    Every integer field takes an int only (a bool or a float such as 2.0 is
    refused); every float field takes a finite number (NaN and infinities are
    refused); the flag takes a bool only. A value out of range raises
    InvalidRequestError on construction.

    Content:
        max_blob_bytes: decoded size limit of one blob (zstd frames are checked
            before anything is allocated).
        cache_max_bytes: ingest puts blobs of at most this many bytes into the
            content cache; 0 caches nothing.
        max_push_decoded_bytes: decoded size limit of all the blobs of one push
            (a few KiB of zstd can declare GiBs; checked before allocating).
        max_fetch_decoded_bytes: decoded size limit of all the blobs one fetch sends.
        verify_each_blob: hash every blob against its id even when it comes from a
            push mpack read whole whose bytes match the mpack's id (by default that
            one sha256 stands in for the blobs', which ingest verified in those exact
            bytes). For an index whose locations may not all come from ``ingest_push``.

    Untrusted push documents:
        max_push_bytes: the longest push :func:`~fetchcore.ingest_push` accepts, in
            bytes (PushTooLargeError past it). A push received in pieces may be
            this long; one handed over whole as ``bytes`` (or joined for a store
            without staged pushes) is held in memory and also obeys ``max_document_bytes``.
        whole_push_bytes: a push received in pieces that ends within this many
            bytes (and within ``max_document_bytes``) is joined and ingested as
            a whole push, as ``bytes`` are: the whole-document parser is faster
            than the incremental one, and the store writes the mpack under its
            id with no staging copy. A longer push streams from there on.
            Memory per push: up to this much. 0: every push in pieces streams.
        max_document_bytes: the longest document parsed in memory; of a push
            received in pieces, the bytes outside blob contents (commits,
            snapshots, branch heads, blob fields). With ``max_entries``
            (per top-level list and branch-head map),
        max_manifest_entries, max_id_length, max_depth (nesting of carried fields)
            it bounds the parsing memory of any push, however long.
    """

    max_in_flight: int = attrs.field(default=16, validator=integer_within(1))
    coalesce_gap_bytes: int = attrs.field(default=1 * MiB, validator=integer_within(0))
    max_range_bytes: int = attrs.field(default=16 * MiB, validator=integer_within(1))
    max_read_amplification: float = attrs.field(default=2.0, validator=_real(1.0))
    request_cost_bytes: int = attrs.field(default=256 * KiB, validator=integer_within(0))
    presign_ttl_s: int = attrs.field(default=3600, validator=integer_within(1, MAX_PRESIGN_TTL_S))

    read_attempts: int = attrs.field(default=3, validator=integer_within(1))
    retry_backoff_s: float = attrs.field(default=0.05, validator=_real(0))
    request_timeout_s: float = attrs.field(default=60.0, validator=_real(0.001))
    deadline_s: float | None = attrs.field(
        default=DEFAULT_DEADLINE_S, validator=_optional_real(0.001)
    )
    max_legacy_gets: int = attrs.field(default=1_000, validator=integer_within(0))

    max_blob_bytes: int = attrs.field(default=256 * MiB, validator=integer_within(0))
    cache_max_bytes: int = attrs.field(default=0, validator=integer_within(0))
    max_push_decoded_bytes: int = attrs.field(default=4 * GiB, validator=integer_within(0))
    max_fetch_decoded_bytes: int = attrs.field(default=4 * GiB, validator=integer_within(0))
    verify_each_blob: bool = attrs.field(default=False, validator=_flag)

    max_push_bytes: int = attrs.field(default=64 * GiB, validator=integer_within(1))
    whole_push_bytes: int = attrs.field(default=64 * MiB, validator=integer_within(0))
    max_document_bytes: int = attrs.field(default=2 * GiB, validator=integer_within(1))
    max_entries: int = attrs.field(default=1_000_000, validator=integer_within(1))
    max_manifest_entries: int = attrs.field(default=1_000_000, validator=integer_within(1))
    max_id_length: int = attrs.field(default=256, validator=integer_within(64 + len("sha256:")))
    max_depth: int = attrs.field(default=32, validator=integer_within(1))
