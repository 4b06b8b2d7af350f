"""Value types to table rows and back; and one IndexBatch to the rows it writes. Pure.

Rules this module keeps:
- A value read back equals the value written: a commit's parents in order and
  its wire fields verbatim (msgpack), a snapshot's manifest and fields, every
  field of a location (None included).
- Everything that could make the database refuse a row is refused here first,
  as InvalidRequestError, so ``record`` either writes all of a batch or fails
  before it starts: wrong types, text a database cannot hold (NUL, lone
  surrogates), integers outside 64 bits, fields msgpack cannot encode.
- The rows of each table are deduplicated (the first occurrence wins, as in the
  memory index) and sorted by key, so concurrent writers take locks in one order.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, TypeGuard, TypeVar

import attrs
import msgpack
from fetchcore.adapters.sql.schema import UNKNOWN

from fetchcore.errors import InvalidRequestError
from fetchcore.model import Commit, IndexBatch, Location, Snapshot, check_record

Row = tuple[Any, ...]
T = TypeVar("T")
_INT64 = range(-(2**63), 2**63)


def pack(value: object, what: str) -> bytes:
    """``value`` as msgpack bytes (bin and str kept apart).

    Raises:
        InvalidRequestError: msgpack cannot encode it.
    """
    try:
        packed: bytes = msgpack.packb(value, use_bin_type=True)
    except (TypeError, ValueError, OverflowError) as error:
        raise InvalidRequestError(f"{what} cannot be stored: {error}") from error
    return packed


def unpack(data: bytes) -> Any:
    """The value that :func:`pack` stored."""
    return msgpack.unpackb(data, raw=False, strict_map_key=False)


def is_storable_text(value: object) -> TypeGuard[str]:
    """Whether ``value`` is a string that both databases store unchanged (UTF-8, no NUL)."""
    if not isinstance(value, str) or "\x00" in value:
        return False
    if value.isascii():  # every canonical id: no need to encode
        return True
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def storable_ids(values: Iterable[object]) -> list[str]:
    """The distinct values that could be stored ids, in order; others cannot match a row."""
    return [value for value in dict.fromkeys(values) if is_storable_text(value)]


def _text(value: object, what: str) -> str:
    if not is_storable_text(value) or not value:
        raise InvalidRequestError(f"{what} must be a non-empty UTF-8 string without NUL")
    return value


def _size(value: object, what: str) -> int | None:
    if value is None:
        return None
    if type(value) is not int or value < 0 or value not in _INT64:
        raise InvalidRequestError(f"{what} must be None or a non-negative 64-bit integer")
    return value


# ── commits ──────────────────────────────────────────────────────────────────


def commit_row(repo_id: str, commit: Commit) -> Row:
    """``(repo_id, commit_id, snapshot_id, parent_ids, fields)``."""
    where = f"commit {commit.commit_id!r:.80}"
    parents = [_text(parent, f"a parent of {where}") for parent in commit.parent_ids]
    return (
        repo_id,
        _text(commit.commit_id, "a commit id"),
        _text(commit.snapshot_id, f"the snapshot id of {where}"),
        pack(parents, f"the parents of {where}"),
        pack(commit.fields, f"the fields of {where}"),
    )


def commit_from_row(row: Sequence[Any]) -> Commit:
    """The commit a :func:`commit_row` row holds (``repo_id`` first)."""
    _, commit_id, snapshot_id, parent_ids, fields = row
    return Commit(commit_id, snapshot_id, unpack(parent_ids), unpack(fields))


def parent_rows(repo_id: str, commit: Commit) -> list[Row]:
    """``(repo_id, commit_id, parent_id)``: one edge per distinct parent."""
    parents = dict.fromkeys(commit.parent_ids)
    return [(repo_id, commit.commit_id, parent) for parent in parents]


# ── snapshots ────────────────────────────────────────────────────────────────


def snapshot_row(repo_id: str, snapshot: Snapshot) -> Row:
    """``(repo_id, snapshot_id, manifest, fields, manifest_in_fields)``.

    The fields usually repeat the manifest; then their copy is stored as nil (in
    place, so key order is kept) and ``manifest_in_fields`` says to put it back.
    """
    where = f"snapshot {snapshot.snapshot_id!r:.80}"
    manifest = dict(snapshot.manifest)
    fields = dict(snapshot.fields)
    repeated = "manifest" in fields and fields["manifest"] == manifest
    if repeated:
        fields["manifest"] = None
    return (
        repo_id,
        _text(snapshot.snapshot_id, "a snapshot id"),
        pack(manifest, f"the manifest of {where}"),
        pack(fields, f"the fields of {where}"),
        repeated,
    )


def snapshot_from_row(row: Sequence[Any]) -> Snapshot:
    """The snapshot a :func:`snapshot_row` row holds (``repo_id`` first)."""
    _, snapshot_id, manifest_bytes, fields_bytes, manifest_in_fields = row
    manifest = unpack(manifest_bytes)
    fields = unpack(fields_bytes)
    if manifest_in_fields:
        fields["manifest"] = manifest
    return Snapshot(snapshot_id, manifest, fields)


# ── locations ────────────────────────────────────────────────────────────────


def location_row(object_id: str, location: Location) -> Row:
    """``(object_id, mpack_id, byte_offset, byte_length, encoding, mpack_size)``."""
    where = f"the location of {object_id}"
    return (
        object_id,
        _text(location.mpack_id, f"the mpack id of {where}"),
        _size(location.offset, f"the offset of {where}"),
        _size(location.length, f"the length of {where}"),
        _text(location.encoding, f"the encoding of {where}"),
        _size(location.mpack_size, f"the mpack size of {where}"),
    )


def location_from_row(row: Sequence[Any]) -> Location:
    """The location a :func:`location_row` row holds (``object_id`` first)."""
    _, mpack_id, offset, length, encoding, mpack_size = row
    return Location(mpack_id, offset, length, encoding, mpack_size)


LOCATION_COLUMNS = ("object_id", "byte_offset", "byte_length", "encoding", "mpack_size")
"""The location columns aggregated per mpack, in the order :func:`locations_from_groups` reads."""


def locations_from_groups(
    groups: Iterable[Sequence[Any]], column: Callable[[Any], Sequence[Any]]
) -> dict[str, list[Location]]:
    """Every object's locations, from location rows grouped by mpack.

    Args:
        groups: rows ``(mpack_id, *aggregates of LOCATION_COLUMNS)``; an mpack may
            come in several rows.
        column: the values of one aggregate, in one order for every aggregate of a row.

    Returns:
        object id -> its locations, sorted by :func:`location_order`.

    Building from columns makes one Location per row and shares the mpack id
    among them: for a large fetch this is most of the cost of the lookup.
    """
    grouped: dict[str, list[Location]] = {}
    crowded: list[list[Location]] = []
    for mpack_id, *aggregates in groups:
        object_ids, offsets, lengths, encodings, sizes = map(column, aggregates)
        found = map(Location, itertools.repeat(mpack_id), offsets, lengths, encodings, sizes)
        for object_id, location in zip(object_ids, found, strict=True):
            group = grouped.get(object_id)
            if group is None:
                grouped[object_id] = [location]
            else:
                group.append(location)
                crowded.append(group)
    for group in crowded:
        group.sort(key=location_order)
    return grouped


def location_order(location: Location) -> tuple[str, int, int, str, int]:
    """A total order of one object's locations, the same on every backend and run."""
    return (
        location.mpack_id,
        UNKNOWN if location.offset is None else location.offset,
        UNKNOWN if location.length is None else location.length,
        location.encoding,
        UNKNOWN if location.mpack_size is None else location.mpack_size,
    )


def _location_key(row: Row) -> tuple[str, tuple[str, int, int, str, int]]:
    return (row[0], location_order(location_from_row(row)))


# ── batches ──────────────────────────────────────────────────────────────────


@attrs.frozen
class BatchRows:
    """The rows one ``record`` writes, per table, deduplicated and sorted by key."""

    commits: list[Row]
    commit_parents: list[Row]
    snapshots: list[Row]
    repo_objects: list[Row]
    locations: list[Row]
    cached: list[Row]
    branch_heads: list[Row]


def _check_fields(batch: IndexBatch) -> None:
    if not all(isinstance(fields, Mapping) for fields in _all_fields(batch)):
        raise InvalidRequestError("IndexBatch holds commit or snapshot fields that are not a map")


def _all_fields(batch: IndexBatch) -> Iterable[object]:
    yield from (commit.fields for commit in batch.commits if isinstance(commit, Commit))
    yield from (s.fields for s in batch.snapshots if isinstance(s, Snapshot))
    yield from (s.manifest for s in batch.snapshots if isinstance(s, Snapshot))


def _first_by_id(values: Iterable[T], key: Callable[[T], str]) -> list[T]:
    chosen: dict[str, T] = {}
    for value in values:
        chosen.setdefault(key(value), value)
    return [chosen[k] for k in sorted(chosen)]


def _head_rows(repo_id: str, heads: Mapping[str, str]) -> list[Row]:
    return sorted(
        (repo_id, _text(branch, "a branch name"), _text(commit_id, f"the head of {branch!r:.80}"))
        for branch, commit_id in heads.items()
    )


def batch_rows(repo_id: str, batch: IndexBatch) -> BatchRows:
    """Every row ``record(repo_id, batch)`` writes.

    Raises:
        InvalidRequestError: the batch holds something the index cannot store.
    """
    repo_id = _text(check_record(repo_id, batch), "repo_id")
    _check_fields(batch)
    commits = _first_by_id(batch.commits, lambda c: _text(c.commit_id, "a commit id"))
    snapshots = _first_by_id(batch.snapshots, lambda s: _text(s.snapshot_id, "a snapshot id"))
    located = {location_row(o, location): None for o, location in batch.locations}
    return BatchRows(
        commits=[commit_row(repo_id, commit) for commit in commits],
        commit_parents=sorted(row for commit in commits for row in parent_rows(repo_id, commit)),
        snapshots=[snapshot_row(repo_id, snapshot) for snapshot in snapshots],
        repo_objects=[(repo_id, object_id) for object_id in sorted(batch.object_ids())],
        locations=sorted(located, key=_location_key),
        cached=[(o, content) for o, content in _first_by_id(batch.cached, lambda pair: pair[0])],
        branch_heads=_head_rows(repo_id, batch.branch_heads),
    )
