"""Value types of the repository model: commits, snapshots, locations, index batches.

Commits and snapshots keep their whole wire dict (``fields``) so that fields
fetchcore does not interpret travel through verbatim. ``from_wire`` is the one
place that checks a wire dict's shape; it raises :class:`InvalidMPackError`
naming the entry and what is wrong.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Literal

import attrs

from fetchcore import ids
from fetchcore.errors import InvalidMPackError, InvalidRequestError
from fetchcore.validation import check_repo_id, has_control_characters

Encoding = Literal["identity", "zstd"]
ENCODINGS: frozenset[str] = frozenset({"identity", "zstd"})
PARENT_KEYS = ("parent_ids", "parent_commit_id", "parent2_commit_id")
DEFAULT_MAX_ID_LENGTH = 256
DEFAULT_MAX_DEPTH = 32


def check_name(value: object, where: str, max_length: int) -> str:
    """An id or name: a non-empty string, bounded, without control characters (NUL...)."""
    if not isinstance(value, str) or not value:
        raise InvalidMPackError(where, "must be a non-empty string")
    if len(value) > max_length:
        raise InvalidMPackError(where, f"longer than {max_length} characters")
    if has_control_characters(value):
        raise InvalidMPackError(where, "holds a control character")
    return value


def _check_mapping(d: object, where: str) -> Mapping[str, Any]:
    if not isinstance(d, Mapping):
        raise InvalidMPackError(where, f"must be a map, not {type(d).__name__}")
    return d


def _check_depth(value: object, where: str, max_depth: int) -> None:
    """Reject values nested deeper than ``max_depth`` (iteratively: no recursion)."""
    stack: list[tuple[object, int]] = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if depth > max_depth:
            raise InvalidMPackError(where, f"nested deeper than {max_depth} levels")
        if isinstance(item, Mapping):
            stack.extend((child, depth + 1) for child in item.values())
        elif isinstance(item, list | tuple):
            stack.extend((child, depth + 1) for child in item)


def _parents_from_wire(d: Mapping[str, Any], where: str, max_length: int) -> tuple[str, ...]:
    if "parent_ids" in d:
        listed = d["parent_ids"]
        if not isinstance(listed, list | tuple):
            raise InvalidMPackError(f"{where}.parent_ids", "must be a list")
        parents = [
            check_name(p, f"{where}.parent_ids[{i}]", max_length) for i, p in enumerate(listed)
        ]
    else:
        parents = []
        for key in PARENT_KEYS[1:]:
            value = d.get(key)
            if value is not None:
                parents.append(check_name(value, f"{where}.{key}", max_length))
    return tuple(dict.fromkeys(parents))


def _strings(values: Iterable[str]) -> tuple[str, ...]:
    return tuple(values)


def _commits(values: Iterable[Commit]) -> tuple[Commit, ...]:
    return tuple(values)


def _snapshots(values: Iterable[Snapshot]) -> tuple[Snapshot, ...]:
    return tuple(values)


def _heads(values: Mapping[str, str]) -> dict[str, str]:
    return dict(values)


@attrs.frozen
class Commit:
    """A commit: its id, its snapshot, its parents and every other wire field verbatim."""

    commit_id: str
    snapshot_id: str
    parent_ids: tuple[str, ...] = attrs.field(default=(), converter=_strings)
    fields: Mapping[str, Any] = attrs.field(factory=dict, eq=False, hash=False, repr=False)

    @classmethod
    def from_wire(
        cls,
        d: Mapping[str, Any],
        *,
        where: str = "commit",
        max_id_length: int = DEFAULT_MAX_ID_LENGTH,
        max_depth: int = DEFAULT_MAX_DEPTH,
    ) -> Commit:
        """Build a commit from its wire dict.

        Raises:
            InvalidMPackError: a required field is missing or has the wrong type.
        """
        d = _check_mapping(d, where)
        commit_id = check_name(d.get("commit_id"), f"{where}.commit_id", max_id_length)
        snapshot_id = check_name(d.get("snapshot_id"), f"{where}.snapshot_id", max_id_length)
        parents = _parents_from_wire(d, where, max_id_length)
        _check_depth(d, where, max_depth)
        return cls(commit_id, snapshot_id, parents, dict(d))

    def to_wire(self) -> dict[str, Any]:
        """The wire dict: the original fields, with the identity fields this value holds."""
        wire = dict(self.fields)
        wire["commit_id"] = self.commit_id
        wire["snapshot_id"] = self.snapshot_id
        if not any(key in wire for key in PARENT_KEYS):
            wire["parent_ids"] = list(self.parent_ids)
        return wire


@attrs.frozen
class Snapshot:
    """A snapshot: its id, its manifest (path -> object id as written) and other fields."""

    snapshot_id: str
    manifest: Mapping[str, str] = attrs.field(factory=dict, eq=True, hash=False)
    fields: Mapping[str, Any] = attrs.field(factory=dict, eq=False, hash=False, repr=False)

    @classmethod
    def from_wire(
        cls,
        d: Mapping[str, Any],
        *,
        where: str = "snapshot",
        max_id_length: int = DEFAULT_MAX_ID_LENGTH,
        max_depth: int = DEFAULT_MAX_DEPTH,
    ) -> Snapshot:
        """Build a snapshot from its wire dict.

        Raises:
            InvalidMPackError: a required field is missing or has the wrong type, or a
                manifest entry does not name a content id.
        """
        d = _check_mapping(d, where)
        snapshot_id = check_name(d.get("snapshot_id"), f"{where}.snapshot_id", max_id_length)
        if "manifest" not in d:
            raise InvalidMPackError(f"{where}.manifest", "is missing")
        manifest = _check_manifest(d["manifest"], f"{where}.manifest")
        others = {key: value for key, value in d.items() if key != "manifest"}
        _check_depth(others, where, max_depth)
        return cls(snapshot_id, manifest, dict(d))

    @property
    def object_ids(self) -> Iterable[str]:
        """The object ids of the manifest, as written."""
        return self.manifest.values()

    def to_wire(self) -> dict[str, Any]:
        """The wire dict: the original fields, with the id and manifest this value holds."""
        wire = dict(self.fields)
        wire["snapshot_id"] = self.snapshot_id
        wire["manifest"] = dict(self.manifest)
        return wire


def _check_manifest(manifest: object, where: str) -> dict[str, str]:
    manifest = _check_mapping(manifest, where)
    for path, object_id in manifest.items():
        if not isinstance(path, str):
            raise InvalidMPackError(where, f"path {path!r:.80} is not a string")
        if not ids.is_object_id(object_id):
            raise InvalidMPackError(
                f"{where}[{path!r:.80}]", f"{object_id!r:.80} is not a content id"
            )
    return dict(manifest)


@attrs.frozen
class Location:
    """Where an object's stored content bytes sit inside a push mpack.

    ``offset``/``length`` are the byte span of the stored (maybe compressed)
    content, None when unknown (then only a whole read of the mpack can serve it).
    """

    mpack_id: str
    offset: int | None = None
    length: int | None = None
    encoding: str = "identity"
    mpack_size: int | None = None

    @property
    def span(self) -> tuple[int, int] | None:
        """``(start, end)`` of the stored content, or None when not known."""
        if self.offset is None or self.length is None:
            return None
        return (self.offset, self.offset + self.length)


def _is_size(value: object) -> bool:
    return value is None or (type(value) is int and value >= 0)


def _is_valid_location(location: object) -> bool:
    return (
        isinstance(location, Location)
        and ids.is_mpack_id(location.mpack_id)
        and location.encoding in ENCODINGS
        and _is_size(location.offset)
        and _is_size(location.length)
        and _is_size(location.mpack_size)
    )


def _canonical_pairs(pairs: Iterable[tuple[str, Any]]) -> tuple[tuple[str, Any], ...]:
    return tuple((ids.canonical(object_id), value) for object_id, value in pairs)


@attrs.frozen
class IndexBatch:
    """One atomic write to the index.

    Object ids in ``locations`` and ``cached`` are canonicalized on construction
    (``sha256:<hex>``); a malformed id raises :class:`InvalidRequestError`.
    """

    commits: Sequence[Commit] = attrs.field(default=(), converter=_commits)
    snapshots: Sequence[Snapshot] = attrs.field(default=(), converter=_snapshots)
    locations: Sequence[tuple[str, Location]] = attrs.field(default=(), converter=_canonical_pairs)
    cached: Sequence[tuple[str, bytes]] = attrs.field(default=(), converter=_canonical_pairs)
    branch_heads: Mapping[str, str] = attrs.field(factory=dict, converter=_heads, hash=False)

    def check(self) -> None:
        """What every index checks before it writes: each value has the right type.

        Raises:
            InvalidRequestError: naming the first value that does not.
        """
        problems = (
            *(f"commit {c!r:.80}" for c in self.commits if not isinstance(c, Commit)),
            *(f"snapshot {s!r:.80}" for s in self.snapshots if not isinstance(s, Snapshot)),
            *(f"location of {o}" for o, loc in self.locations if not _is_valid_location(loc)),
            *(f"cached content of {o}" for o, data in self.cached if not isinstance(data, bytes)),
            *(
                f"branch head {branch!r:.80}"
                for branch, commit_id in self.branch_heads.items()
                if not (isinstance(branch, str) and branch and isinstance(commit_id, str))
            ),
        )
        if problems:
            raise InvalidRequestError(f"IndexBatch holds a malformed {problems[0]}")

    def object_ids(self) -> set[str]:
        """Canonical ids of every object the batch makes part of the repository."""
        found = {object_id for object_id, _ in self.locations}
        found.update(object_id for object_id, _ in self.cached)
        for snapshot in self.snapshots:
            found.update(ids.canonical(object_id) for object_id in snapshot.object_ids)
        return found


def check_record(repo_id: str, batch: IndexBatch) -> str:
    """What every index checks before ``record`` writes anything; returns ``repo_id``.

    Raises:
        InvalidRequestError: a bad repo id, something that is not an IndexBatch,
            or a batch that fails :meth:`IndexBatch.check`.
    """
    check_repo_id(repo_id)
    if not isinstance(batch, IndexBatch):
        raise InvalidRequestError(f"not an IndexBatch: {type(batch).__name__}")
    batch.check()
    return repo_id
