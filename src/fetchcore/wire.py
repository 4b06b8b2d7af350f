"""The wire codec: push mpacks in, fetch mpacks out. Pure: no I/O, no clock.

Rules this module keeps:
- Parsing never trusts a declared size: every list, map, id and the document
  itself is checked against the :class:`Policy` limits before it is walked, and
  every malformed input raises :class:`InvalidMPackError` naming the entry.
- Parsing memory stays within a constant factor of the document's size: every map
  and list the unpacker builds is charged its estimated Python cost against a
  budget proportional to the document (an empty list is 1 byte on the wire and
  about 64 in memory), and a map key written twice with two values is refused.
- An id written twice in a push (commit, snapshot, branch) must carry one content.
- For every blob the parser reports the byte span of its stored content inside
  the document, so that a later fetch can read exactly those bytes.
- Encoding is canonical where order is not information: maps are written with
  sorted keys and snapshots in id order. A fetch document is written in pieces
  (:func:`fetch_head`, then per blob :func:`blob_head`, its content and
  :func:`blob_tail`, then :func:`fetch_tail`), so blobs can be streamed in the
  order they are read; clients verify each blob by its id.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any

import attrs
import msgpack

from fetchcore import ids
from fetchcore.errors import InvalidMPackError
from fetchcore.model import ENCODINGS, Commit, Snapshot, check_name
from fetchcore.policy import Policy

TOP_LEVEL_KEYS = ("commits", "snapshots", "blobs", "branch_heads")
MAX_BLOB_FIELDS = 64
# msgpack bin headers: marker byte -> header length (marker + length field).
BIN_HEADER_LENGTH = {0xC4: 2, 0xC5: 3, 0xC6: 5}
# Parsing may build Python objects of an estimated PARSE_MEMORY_FACTOR times the
# document's size, plus a floor for small documents. A push of tiny commits
# ({"commit_id": "c1", ...}, ~45 bytes each) honestly costs ~10x in Python; a list of
# empty lists cost 130x before this budget.
PARSE_MEMORY_FACTOR = 16
PARSE_MEMORY_FLOOR = 1 << 20
_CONTAINER_COST = 64
_SLOT_COST = 8
_MAP_ENTRY_COST = 24


def _element_cost(value: object) -> int:
    """Estimated bytes of one unpacked value, apart from its own container (charged
    when that container is built)."""
    if isinstance(value, str | bytes):
        return _SLOT_COST + 48 + len(value)
    if isinstance(value, int | float):
        return _SLOT_COST + 24
    return _SLOT_COST


@attrs.frozen
class BlobEntry:
    """One blob of a push: its id as written, its encoding and the span of its stored bytes."""

    object_id: str
    encoding: str
    offset: int
    length: int

    @property
    def end(self) -> int:
        return self.offset + self.length


@attrs.frozen
class PushDocument:
    """A parsed push mpack. Blob contents are not decoded here (see :mod:`fetchcore.content`)."""

    commits: tuple[Commit, ...] = ()
    snapshots: tuple[Snapshot, ...] = ()
    blobs: tuple[BlobEntry, ...] = ()
    branch_heads: Mapping[str, str] = attrs.field(factory=dict, hash=False)


def parse_push(data: bytes, policy: Policy = Policy()) -> PushDocument:
    """Parse a push mpack under the limits of ``policy``.

    Args:
        data: the whole document.
        policy: its limits (``max_document_bytes``, ``max_entries`` and so on).

    Returns:
        The commits, snapshots, branch heads and the stored span of every blob.

    Raises:
        InvalidMPackError: the document is malformed or over a limit; its ``entry``
            says where.
    """
    if not isinstance(data, bytes | bytearray | memoryview):
        raise InvalidMPackError(None, f"must be bytes, not {type(data).__name__}")
    if len(data) > policy.max_document_bytes:
        raise InvalidMPackError(
            None, f"{len(data)} bytes, over the limit of {policy.max_document_bytes}"
        )
    parser = _PushParser(bytes(data), policy)
    try:
        return parser.document()
    except InvalidMPackError:
        raise
    except MSGPACK_ERRORS as error:
        raise translate_msgpack_errors(parser.where, error) from None


def _refuse_conflicting_keys(
    pairs: list[tuple[Any, Any]], built: dict[Any, Any], where: str | None
) -> None:
    """A key written twice must carry the same value both times (one would be lost)."""
    conflicting = [str(key) for key, value in pairs if built[key] != value]
    if conflicting:
        raise InvalidMPackError(where, "a map key appears twice with two values", ids=conflicting)


def _refuse_two_contents(
    entries: Sequence[Commit] | Sequence[Snapshot], id_of: Callable[[Any], str], name: str
) -> None:
    """An id written twice in one push must carry the same content both times."""
    first: dict[str, Any] = {}
    conflicting: set[str] = set()
    for entry in entries:
        kept = first.setdefault(id_of(entry), entry)
        if kept is not entry and _wire(kept) != _wire(entry):
            conflicting.add(id_of(entry))
    if conflicting:
        raise InvalidMPackError(name, "an id appears twice with two contents", ids=conflicting)


def _wire(entry: Commit | Snapshot) -> dict[str, Any]:
    return entry.to_wire()


class EntryChecks:
    """What every push parser does with the values it unpacks: charge their memory to a
    budget, and check each commit, snapshot, blob field and branch head (naming the entry).

    :meth:`memory_allowed` is the parsing memory allowed so far; a parser that
    receives its document in pieces raises it as the document grows.
    """

    def __init__(self, policy: Policy) -> None:
        self.policy = policy
        self.where: str | None = None
        self.memory_spent = 0

    def memory_allowed(self) -> int:
        raise NotImplementedError

    def _charge(self, cost: int) -> None:
        self.memory_spent += cost
        if self.memory_spent > self.memory_allowed():
            raise InvalidMPackError(
                self.where, "holds more values than a document of its size may (parsing memory)"
            )

    def _built_list(self, items: list[Any]) -> list[Any]:
        self._charge(_CONTAINER_COST + sum(map(_element_cost, items)))
        return items

    def _built_map(self, pairs: list[tuple[Any, Any]]) -> dict[Any, Any]:
        self._charge(
            _CONTAINER_COST
            + len(pairs) * _MAP_ENTRY_COST
            # msgpack interns map keys: repeated keys are shared, not copied
            + sum(_SLOT_COST + len(key) + _element_cost(value) for key, value in pairs)
        )
        built = dict(pairs)
        if len(built) != len(pairs):
            _refuse_conflicting_keys(pairs, built, self.where)
        return built

    def new_unpacker(self, max_buffer_size: int) -> msgpack.Unpacker:
        """An Unpacker under the policy's list limits, charging what it builds."""
        longest_list = max(self.policy.max_entries, self.policy.max_manifest_entries)
        return msgpack.Unpacker(
            raw=False,
            strict_map_key=True,
            max_buffer_size=max_buffer_size,
            max_array_len=longest_list,
            max_map_len=longest_list,
            list_hook=self._built_list,
            object_pairs_hook=self._built_map,
        )

    def entry_count(self, count: int, name: str) -> int:
        if count > self.policy.max_entries:
            raise InvalidMPackError(
                name, f"{count} entries, over the limit of {self.policy.max_entries}"
            )
        return count

    def commit_from(self, value: Any, where: str) -> Commit:
        return Commit.from_wire(
            value,
            where=where,
            max_id_length=self.policy.max_id_length,
            max_depth=self.policy.max_depth,
        )

    def snapshot_from(self, value: Any, where: str) -> Snapshot:
        snapshot = Snapshot.from_wire(
            value,
            where=where,
            max_id_length=self.policy.max_id_length,
            max_depth=self.policy.max_depth,
        )
        if len(snapshot.manifest) > self.policy.max_manifest_entries:
            raise InvalidMPackError(
                f"{where}.manifest",
                f"{len(snapshot.manifest)} entries, over the limit of "
                f"{self.policy.max_manifest_entries}",
            )
        return snapshot

    @staticmethod
    def object_id_from(value: Any, where: str) -> str:
        if not ids.is_object_id(value):
            raise InvalidMPackError(where, f"{value!r:.80} is not a content id")
        return str(value)

    @staticmethod
    def encoding_from(value: Any, where: str) -> str:
        if value not in ENCODINGS:
            raise InvalidMPackError(where, f"unknown encoding {value!r:.40}")
        return str(value)

    @staticmethod
    def refuse_twice(value: object, where: str) -> None:
        """A blob field met a second time (the two could disagree, and content is streamed)."""
        if value is not None:
            raise InvalidMPackError(where, "appears twice")

    @staticmethod
    def blob_from(
        where: str, object_id: str | None, encoding: str, span: tuple[int, int] | None
    ) -> BlobEntry:
        if object_id is None:
            raise InvalidMPackError(f"{where}.object_id", "is missing")
        if span is None:
            raise InvalidMPackError(f"{where}.content", "is missing")
        return BlobEntry(object_id, encoding, span[0], span[1] - span[0])

    def add_branch_head(self, heads: dict[str, str], branch: Any, commit_id: Any) -> None:
        limit = self.policy.max_id_length
        where = f"branch_heads[{branch!r:.80}]"
        name = check_name(branch, where, limit)
        head = check_name(commit_id, where, limit)
        if heads.setdefault(name, head) != head:
            raise InvalidMPackError(where, "a branch appears twice with two heads", ids=[name])

    @staticmethod
    def document_from(fields: Mapping[str, Any]) -> PushDocument:
        return PushDocument(
            commits=fields.get("commits") or (),
            snapshots=fields.get("snapshots") or (),
            blobs=fields.get("blobs") or (),
            branch_heads=fields.get("branch_heads") or {},
        )

    def commits_from(self, commits: Sequence[Commit]) -> tuple[Commit, ...]:
        _refuse_two_contents(commits, lambda c: c.commit_id, "commits")
        return tuple(commits)

    def snapshots_from(self, snapshots: Sequence[Snapshot]) -> tuple[Snapshot, ...]:
        _refuse_two_contents(snapshots, lambda s: s.snapshot_id, "snapshots")
        return tuple(snapshots)


def translate_msgpack_errors(where: str | None, error: Exception) -> InvalidMPackError:
    """The InvalidMPackError for an error msgpack raised while parsing at ``where``."""
    if isinstance(error, msgpack.OutOfData):
        return InvalidMPackError(where, "truncated document")
    # msgpack's own errors (ExtraData, FormatError, StackError, BufferFull) are
    # ValueErrors; so is invalid UTF-8. Its length limits say "exceeds max_...".
    problem = "over the limit" if "exceeds max_" in str(error) else "not valid msgpack"
    return InvalidMPackError(where, f"{problem} ({error})")


MSGPACK_ERRORS = (
    msgpack.OutOfData,
    ValueError,
    TypeError,
    OverflowError,
    MemoryError,
    RecursionError,
)
"""What msgpack (and the values it builds) may raise on a bad document."""


class _PushParser(EntryChecks):
    """Walks a whole push document with msgpack's streaming Unpacker, keeping the current entry."""

    def __init__(self, data: bytes, policy: Policy) -> None:
        super().__init__(policy)
        self.data = data
        self._memory_allowed = PARSE_MEMORY_FACTOR * len(data) + PARSE_MEMORY_FLOOR
        self.unpacker = self.new_unpacker(max(len(data), 1))
        self.unpacker.feed(data)

    def memory_allowed(self) -> int:
        return self._memory_allowed

    def document(self) -> PushDocument:
        self.where = None
        fields: dict[str, Any] = {}
        for _ in range(self._map_header("document is not a map", len(TOP_LEVEL_KEYS) * 4)):
            key = self.unpacker.unpack()
            if not isinstance(key, str):
                raise InvalidMPackError(None, f"document key {key!r:.40} is not a string")
            if key in fields:
                raise InvalidMPackError(str(key), "appears twice")
            if key in TOP_LEVEL_KEYS:
                fields[key] = self._top_level(key)
            else:
                self.unpacker.skip()
                fields[key] = None
        self.where = None
        if self.unpacker.tell() != len(self.data):
            raise InvalidMPackError(None, "trailing bytes after the document")
        return self.document_from(fields)

    def _top_level(self, key: str) -> Any:
        self.where = key
        if key == "commits":
            return self.commits_from(list(self._entries("commits", self._commit)))
        if key == "snapshots":
            return self.snapshots_from(list(self._entries("snapshots", self._snapshot)))
        if key == "blobs":
            return tuple(self._entries("blobs", self._blob))
        return self._branch_heads()

    def _map_header(self, complaint: str, limit: int) -> int:
        try:
            count: int = self.unpacker.read_map_header()
        except msgpack.OutOfData:
            raise
        except ValueError:
            raise InvalidMPackError(self.where, complaint) from None
        if count > limit:
            raise InvalidMPackError(self.where, f"{count} entries, over the limit of {limit}")
        return count

    def _entries(self, name: str, read_one: Any) -> Iterable[Any]:
        try:
            count: int = self.unpacker.read_array_header()
        except msgpack.OutOfData:
            raise
        except ValueError:
            raise InvalidMPackError(name, "must be a list") from None
        for index in range(self.entry_count(count, name)):
            self.where = f"{name}[{index}]"
            yield read_one(self.where)

    def _commit(self, where: str) -> Commit:
        return self.commit_from(self.unpacker.unpack(), where)

    def _snapshot(self, where: str) -> Snapshot:
        return self.snapshot_from(self.unpacker.unpack(), where)

    def _blob(self, where: str) -> BlobEntry:
        object_id: str | None = None
        encoding: str | None = None
        span: tuple[int, int] | None = None
        for _ in range(self._map_header("must be a map", MAX_BLOB_FIELDS)):
            key = self.unpacker.unpack()
            if key == "object_id":
                self.refuse_twice(object_id, f"{where}.object_id")
                object_id = self.object_id_from(self.unpacker.unpack(), f"{where}.object_id")
            elif key == "encoding":
                self.refuse_twice(encoding, f"{where}.encoding")
                encoding = self.encoding_from(self.unpacker.unpack(), f"{where}.encoding")
            elif key == "content":
                self.refuse_twice(span, f"{where}.content")
                span = self._bin_span(f"{where}.content")
            else:
                self.unpacker.skip()
        return self.blob_from(where, object_id, encoding or "identity", span)

    def _bin_span(self, where: str) -> tuple[int, int]:
        start = self.unpacker.tell()
        marker = self.data[start] if start < len(self.data) else None
        header_length = BIN_HEADER_LENGTH.get(marker) if marker is not None else None
        self.unpacker.skip()
        if header_length is None:
            raise InvalidMPackError(where, "must be bytes (msgpack bin)")
        return (start + header_length, self.unpacker.tell())

    def _branch_heads(self) -> dict[str, str]:
        heads: dict[str, str] = {}
        for _ in range(self._map_header("must be a map", self.policy.max_entries)):
            branch = self.unpacker.unpack()
            commit_id = self.unpacker.unpack()
            self.add_branch_head(heads, branch, commit_id)
        return heads


# ── encoding ────────────────────────────────────────────────────────────────


def _sort_key(key: str | bytes) -> tuple[bool, str | bytes]:
    return (isinstance(key, bytes), key)


def _sorted_keys(mapping: Mapping[Any, Any]) -> list[Any]:
    try:
        return sorted(mapping)  # the common case: keys of one type
    except TypeError:
        return sorted(mapping, key=_sort_key)


def canonical_value(value: Any) -> Any:
    """``value`` with every map's keys in sorted order (str before bytes)."""
    if isinstance(value, Mapping):
        return {key: canonical_value(value[key]) for key in _sorted_keys(value)}
    if isinstance(value, list | tuple):
        return [canonical_value(item) for item in value]
    return value


def _bin_header(length: int) -> bytes:
    if length < 1 << 8:
        return struct.pack(">BB", 0xC4, length)
    if length < 1 << 16:
        return struct.pack(">BH", 0xC5, length)
    return struct.pack(">BI", 0xC6, length)


def _pack(value: Any) -> bytes:
    packed: bytes = msgpack.packb(value, use_bin_type=True)
    return packed


_CONTENT_KEY, _ENCODING_KEY, _ID_KEY = _pack("content"), _pack("encoding"), _pack("object_id")


@attrs.frozen
class OutgoingBlob:
    """A blob as it leaves in a fetch mpack: id as written, content, and its encoding."""

    object_id: str
    content: bytes | memoryview
    encoding: str = "identity"


_IDENTITY_HEAD = b"\x82" + _CONTENT_KEY  # a map of two: content, object_id
_ENCODED_HEAD = b"\x83" + _CONTENT_KEY  # a map of three: content, encoding, object_id


def blob_head(content_length: int, encoding: str) -> bytes:
    """The bytes of a blob's map that come before its content.

    The content goes first in the map so that a streaming writer needs only its
    length, not its id or bytes, to start the entry.
    """
    head = _IDENTITY_HEAD if encoding == "identity" else _ENCODED_HEAD
    return head + _bin_header(content_length)


def blob_tail(object_id: str, encoding: str) -> bytes:
    """The bytes of a blob's map that come after its content (identity carries no encoding)."""
    tail = _ID_KEY + _pack(object_id)
    if encoding == "identity":
        return tail
    return _ENCODING_KEY + _pack(encoding) + tail


def encode_blobs(blobs: Iterable[OutgoingBlob]) -> bytes:
    """The entries of ``blobs``, in the order given, as they sit in a fetch document."""
    pieces: list[bytes | memoryview] = []
    for blob in blobs:
        pieces += [
            blob_head(len(blob.content), blob.encoding),
            blob.content,
            blob_tail(blob.object_id, blob.encoding),
        ]
    return b"".join(pieces)


_SCALARS = (str, bytes, int, float, bool, type(None))
_FLAT_CHUNK = 4096
"""Map entries packed per call into msgpack's C packer (a flat map, such as a manifest)."""

Packed = tuple[bytes, ...]
"""One msgpack value in consecutive chunks of about a MiB: a large fetch's
manifests are hundreds of MiB, and joining them would hold them twice."""
_PACKED_CHUNK = 1 << 20


def _spill(out: bytearray) -> Iterator[bytes]:
    """Yield what ``out`` holds once it has reached a chunk, and empty it."""
    if len(out) >= _PACKED_CHUNK:
        yield bytes(out)
        out.clear()


def _pack_canonical_into(out: bytearray, packer: msgpack.Packer, value: Any) -> Iterator[bytes]:
    """Append ``canonical_value(value)`` packed to ``out``, without building the sorted
    copy, and yield ``out``'s content whenever it reaches a chunk (a large fetch's
    manifests hold millions of entries: one of them never sits in memory whole)."""
    if isinstance(value, Mapping):
        out += packer.pack_map_header(len(value))
        keys = _sorted_keys(value)
        if all(type(value[key]) in _SCALARS for key in keys):
            yield from _pack_flat_entries_into(out, packer, value, keys)
            return
        for key in keys:
            out += packer.pack(key)
            yield from _pack_canonical_into(out, packer, value[key])
    elif isinstance(value, list | tuple):
        out += packer.pack_array_header(len(value))
        for item in value:
            yield from _pack_canonical_into(out, packer, item)
    else:
        out += packer.pack(value)


def _pack_flat_entries_into(
    out: bytearray, packer: msgpack.Packer, mapping: Mapping[Any, Any], keys: Sequence[Any]
) -> Iterator[bytes]:
    """Append the entries of ``mapping`` (scalar values) in the order of ``keys``,
    yielding full chunks as :func:`_pack_canonical_into` does.

    A map's entries are packed exactly as an array of key, value, key, value... is
    packed after its header, so each chunk goes through the C packer in one call.
    """
    for start in range(0, len(keys), _FLAT_CHUNK):
        flat = [item for key in keys[start : start + _FLAT_CHUNK] for item in (key, mapping[key])]
        packed = packer.pack(flat)
        out += memoryview(packed)[len(_array_header(len(flat))) :]
        yield from _spill(out)


def _iter_pack_canonical_list(values: Iterable[Any], count: int) -> Iterator[bytes]:
    packer = msgpack.Packer(use_bin_type=True)
    out = bytearray(packer.pack_array_header(count))
    for value in values:
        yield from _pack_canonical_into(out, packer, value)
        yield from _spill(out)
    yield bytes(out)


def _snapshot_to_pack(snapshot: Snapshot) -> dict[str, Any]:
    """A snapshot's wire dict, its manifest not copied (``to_wire`` copies it)."""
    wire = dict(snapshot.fields)
    wire["snapshot_id"] = snapshot.snapshot_id
    wire["manifest"] = snapshot.manifest
    return wire


def iter_packed_commits(commits: Sequence[Commit]) -> Iterator[bytes]:
    """The commits as a msgpack array, in the order sent (parents first), maps canonical;
    packed lazily, in pieces of about a MiB."""
    return _iter_pack_canonical_list((c.to_wire() for c in commits), len(commits))


def iter_packed_snapshots(snapshots: Iterable[Snapshot]) -> Iterator[bytes]:
    """The snapshots as a msgpack array in snapshot-id order, maps canonical; packed
    lazily, in pieces of about a MiB (a snapshot's copy lives only while it is packed)."""
    ordered = sorted(snapshots, key=lambda s: s.snapshot_id)
    return _iter_pack_canonical_list((_snapshot_to_pack(s) for s in ordered), len(ordered))


def pack_commits(commits: Sequence[Commit]) -> Packed:
    """:func:`iter_packed_commits`, all pieces."""
    return tuple(iter_packed_commits(commits))


def pack_snapshots(snapshots: Iterable[Snapshot]) -> Packed:
    """:func:`iter_packed_snapshots`, all pieces."""
    return tuple(iter_packed_snapshots(snapshots))


def fetch_head(
    packed_commits: Iterable[bytes], packed_snapshots: Iterable[bytes], blob_count: int
) -> Iterator[bytes]:
    """Everything of a fetch document before its first blob, in pieces, lazily.

    Args:
        packed_commits: :func:`pack_commits` (or :func:`iter_packed_commits`) of the
            commits sent.
        packed_snapshots: :func:`pack_snapshots` (or :func:`iter_packed_snapshots`) of
            their snapshots.
        blob_count: how many blob entries will follow (the array header needs it).
    """
    yield b"\x84" + _pack("commits")
    yield from packed_commits
    yield _pack("snapshots")
    yield from packed_snapshots
    yield _pack("blobs") + _array_header(blob_count)


def fetch_tail(branch_heads: Mapping[str, str]) -> bytes:
    """Everything of a fetch document after its last blob."""
    return _pack("branch_heads") + _pack(canonical_value(dict(branch_heads)))


def _digest_order(blob: OutgoingBlob) -> str:
    return blob.object_id.removeprefix(ids.PREFIX)


def encode_fetch(
    commits: Sequence[Commit],
    snapshots: Iterable[Snapshot],
    blobs: Iterable[OutgoingBlob],
    branch_heads: Mapping[str, str],
) -> bytes:
    """Encode a whole fetch document in memory, blobs in digest order (for tools and tests;
    :func:`~fetchcore.serve_fetch` streams the same pieces in the order blobs are read).

    Args:
        commits: in the order they are sent (parents first).
        snapshots: any order; written in snapshot-id order.
        blobs: any order; written in order of their digest. Identity blobs
            carry no ``encoding`` key.
        branch_heads: the repository's branch heads.

    Returns:
        The document's bytes; blob contents are copied once, into the result.
    """
    ordered_blobs = sorted(blobs, key=_digest_order)
    return b"".join(
        [
            *fetch_head(pack_commits(commits), pack_snapshots(snapshots), len(ordered_blobs)),
            encode_blobs(ordered_blobs),
            fetch_tail(branch_heads),
        ]
    )


def _array_header(length: int) -> bytes:
    if length < 16:
        return bytes([0x90 | length])
    if length < 1 << 16:
        return struct.pack(">BH", 0xDC, length)
    return struct.pack(">BI", 0xDD, length)


def encode_push(
    commits: Iterable[Mapping[str, Any]] = (),
    snapshots: Iterable[Mapping[str, Any]] = (),
    blobs: Iterable[Mapping[str, Any]] = (),
    branch_heads: Mapping[str, str] | None = None,
) -> bytes:
    """Encode a push mpack from wire dicts, as a client would (for tests and tools)."""
    return _pack(
        {
            "commits": list(commits),
            "snapshots": list(snapshots),
            "blobs": list(blobs),
            "branch_heads": dict(branch_heads or {}),
        }
    )


def decode_fetch(data: bytes) -> dict[str, Any]:
    """Decode a fetch mpack into plain values (for clients, tests and tools)."""
    decoded: dict[str, Any] = msgpack.unpackb(data, raw=False)
    return decoded
