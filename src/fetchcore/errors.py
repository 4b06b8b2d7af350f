"""The error tree: every error fetchcore raises is a :class:`FetchError`.

Errors carry their subjects (the ids they are about) as tuples, so a caller can
act on them without parsing messages. Adapters translate vendor errors into
:class:`StorageError` subclasses at their boundary.

    FetchError
    ├── InvalidRequestError        bad arguments (also a ValueError)
    ├── UnknownCommitError         .commit_ids
    ├── FetchNotIndexedError       .object_ids   ("retry later")
    ├── ObjectUnavailableError     .object_ids
    ├── InvalidMPackError          .entry, .reason, .missing_ids
    ├── IndexIntegrityError        the index contradicts itself
    ├── FetchDeadlineError         the fetch ran past Policy.deadline_s
    ├── FetchTooLargeError         the blobs decode to more than Policy.max_fetch_decoded_bytes
    └── StorageError               an adapter failed for good (after its retries)
        ├── ObjectStoreError
        └── IndexRepoError
"""

from __future__ import annotations

from collections.abc import Iterable

# Messages name client-supplied values: they stay one short line, whatever the client
# sent (a million characters, newlines, terminal escapes). Full lists are attributes.
_MAX_IDS_IN_MESSAGE = 3
_MAX_ID_CHARS = 80


def quote(value: object) -> str:
    """``value`` for a message: repr-quoted (control characters and escapes made
    visible), cut to a bounded length."""
    text = value if isinstance(value, str) else str(type(value).__name__)
    shown = repr(text[:_MAX_ID_CHARS])
    return f"{shown}...({len(text)} chars)" if len(text) > _MAX_ID_CHARS else shown


def _summarize(ids: tuple[str, ...]) -> str:
    shown = ", ".join(quote(i) for i in ids[:_MAX_IDS_IN_MESSAGE])
    more = len(ids) - _MAX_IDS_IN_MESSAGE
    return f"{len(ids)}: {shown} and {more} more" if more > 0 else shown


class FetchError(Exception):
    """Root of every error fetchcore raises."""


class InvalidRequestError(FetchError, ValueError):
    """The caller passed arguments fetchcore cannot act on (empty want, bad id, bad policy)."""


class UnknownCommitError(FetchError):
    """Wanted commits that the repository does not have."""

    def __init__(self, commit_ids: Iterable[str]) -> None:
        self.commit_ids = tuple(sorted(set(commit_ids)))
        super().__init__(f"unknown commit(s): {_summarize(self.commit_ids)}")


class FetchNotIndexedError(FetchError):
    """Needed blobs with neither a cache entry nor an mpack location: retry later."""

    def __init__(self, object_ids: Iterable[str]) -> None:
        self.object_ids = tuple(sorted(set(object_ids)))
        super().__init__(f"object(s) not indexed yet: {_summarize(self.object_ids)}")


class ObjectUnavailableError(FetchError):
    """Blobs that no source could deliver with verified content."""

    def __init__(self, object_ids: Iterable[str]) -> None:
        self.object_ids = tuple(sorted(set(object_ids)))
        super().__init__(f"object(s) unavailable from every source: {_summarize(self.object_ids)}")


class InvalidMPackError(FetchError):
    """A push mpack that is malformed, corrupt, over a limit or not connected.

    Attributes:
        entry: where in the document the problem is, e.g. ``"blobs[3].content"``
            (``None`` when it concerns the whole document).
        reason: what is wrong there.
        missing_ids: for connectivity failures, the ids the push refers to but
            neither carries nor finds in the repository.
        ids: the ids the problem is about (e.g. the commits of a cycle, an id
            pushed twice with two contents); ``missing_ids`` included.
    """

    def __init__(
        self,
        entry: str | None,
        reason: str,
        *,
        missing_ids: Iterable[str] = (),
        ids: Iterable[str] = (),
    ) -> None:
        self.entry = entry
        self.reason = reason
        self.missing_ids = tuple(sorted(set(missing_ids)))
        self.ids = tuple(sorted(set(ids) | set(self.missing_ids)))
        where = f"{entry}: " if entry else ""
        detail = f": {_summarize(self.ids)}" if self.ids else ""
        super().__init__(f"invalid mpack: {where}{reason}{detail}")


class PushTooLargeError(InvalidMPackError):
    """A push longer than ``Policy.max_push_bytes`` (a hub answers 413). Nothing is recorded.

    Attributes:
        limit: the limit, in bytes, that the push went past.
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit
        super().__init__(None, f"the push is over the limit of {limit} bytes")


class IndexIntegrityError(FetchError):
    """The index contradicts itself (e.g. a commit whose snapshot it does not hold)."""


class FetchDeadlineError(FetchError):
    """The fetch did not finish within ``Policy.deadline_s``."""


class FetchTooLargeError(FetchError):
    """The blobs a fetch would send decode to more than ``Policy.max_fetch_decoded_bytes``.

    Not a failed source (every source holds the same content): the fetch stops.
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit
        super().__init__(f"the fetch decodes to more than the limit of {limit} bytes")


class StorageError(FetchError):
    """An adapter failed for good after its own retries; ``__cause__`` holds the vendor error."""


class ObjectStoreError(StorageError):
    """The object store failed."""


class IndexRepoError(StorageError):
    """The index failed."""


class LegacyFallbackLimitError(ObjectUnavailableError):
    """A fetch would need more legacy per-object GETs than ``Policy.max_legacy_gets`` allows.

    Raised before any of those GETs is issued. So many blobs falling back to their
    legacy keys means their push mpacks could not be read: most likely the store
    points at the wrong bucket or prefix, or lost its mpacks.

    Attributes:
        object_ids: the blobs that would have fallen back (as for ObjectUnavailableError).
        mpack_ids: the push mpacks that held them and could not be read.
        limit: the ``Policy.max_legacy_gets`` in force.
    """

    def __init__(self, object_ids: Iterable[str], mpack_ids: Iterable[str], limit: int) -> None:
        self.object_ids = tuple(sorted(set(object_ids)))
        self.mpack_ids = tuple(sorted(set(mpack_ids)))
        self.limit = limit
        unreadable = _summarize(self.mpack_ids) if self.mpack_ids else "none is indexed"
        FetchError.__init__(
            self,
            f"{len(self.object_ids):,} blob(s) would need a legacy per-object GET each, more "
            f"than Policy.max_legacy_gets={limit:,} allows; their push mpacks could not be "
            f"read ({unreadable}): is the store configured with the right bucket and prefix?",
        )
