"""FilesystemObjectStore: the ObjectStore port in a local directory (the embedded default).

Theory of operation:

- Layout. ``<root>/mpacks/<hh>/<hex>``, ``<root>/objects/<hh>/<hex>`` and
  ``<root>/fetch/<hh>/<hex>`` (fetch documents, derived data that may be
  deleted at any time), where ``<hex>`` is the digest an id names and ``<hh>``
  its first two digits (256 shards keep directories small). Ids are checked,
  and legacy ids canonicalized, before any path is built: a path is made of hex
  digits only, so none can leave the root, and both spellings of an object id
  hit one file.
- Writes are atomic: the bytes go to a temporary file in the target's own
  directory, are fsynced, then renamed over the target (and the directory is
  fsynced). A reader sees the whole file or none. A write of an existing id
  writes again, so putting the same bytes repairs a damaged copy; concurrent
  writers of one id each rename whole files. Temporary names start with a dot
  and never look like a key.
- Fetch documents are streamed into such a temporary file and renamed on
  commit; abort deletes it. After the rename a seal ``<hex>.seal`` records the
  document's size, inode, mtime_ns and ctime_ns (and its sha256, for people).
  :meth:`fetch_intact` compares a ``stat`` of the document with the seal
  without reading it: a replaced file (new inode) or a truncated or extended
  one (size) no longer matches, nor one rewritten in place at a later tick of
  the file system's clock (mtime, and ctime, which user space cannot set back).
  A same-size rewrite in place within one clock tick of the commit is not seen:
  only reading the document could catch that.
- Staged pushes (a push received in pieces, its id known only at the end) are
  streamed into ``<root>/staging/<uuid hex>``, on the same file system as the
  mpacks: commit fsyncs it and renames it onto the mpack's path (atomic, and
  always done: it repairs a damaged copy, and costs no more than checking
  one). Abort deletes it. :meth:`~FilesystemObjectStore.sweep_staging` deletes
  staging files last written before a cutoff (left by a crashed process).
- Reads: a whole file, or a seek and one read for a byte range, of at most what
  the file holds (a range far past the end allocates nothing).
- Every file operation runs in a worker thread (``asyncio.to_thread``), so
  the event loop never blocks on the disk. A missing file is ``None``; any
  other ``OSError`` becomes :class:`~fetchcore.errors.ObjectStoreError`.
- Presigned URLs are ``file://`` URLs of the file: a directory has no server,
  but a process on this machine can read the path (``ttl_s`` does not apply).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import hashlib
import json
import os
import stat
import tempfile
import threading
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import IO

import attrs

from fetchcore import ids
from fetchcore.errors import InvalidRequestError, ObjectStoreError
from fetchcore.lifecycle import StoredMPack, age_cutoff
from fetchcore.validation import check_range

_SHARD_DIGITS = 2
_TEMP_PREFIX = ".tmp-"
_SEAL_SUFFIX = ".seal"
_STAGING_DIRECTORY = "staging"
_STAGING_NAME_LENGTH = 32  # a uuid4's hex
_SEALED_FIELDS = ("st_size", "st_ino", "st_mtime_ns", "st_ctime_ns")
# Writes gather up to this many bytes before one trip to a worker thread: a fetch
# writes blob by blob, and a thread hop per small blob would cost more than the disk.
_FLUSH_BYTES = 1024 * 1024


@contextlib.contextmanager
def _os_errors(operation: str, path: Path) -> Iterator[None]:
    """The boundary: an OSError in, an ObjectStoreError (cause chained) out."""
    try:
        yield
    except OSError as error:
        raise ObjectStoreError(f"{operation} {path}: {error}") from error


def _read_whole(path: Path) -> bytes | None:
    with _os_errors("read", path):
        try:
            return path.read_bytes()
        except FileNotFoundError:
            return None


def _read_span(path: Path, start: int, end: int) -> bytes | None:
    with _os_errors("read", path):
        try:
            with path.open("rb") as file:
                # Never ask for more than the file holds: read(n) allocates n bytes first.
                size = os.fstat(file.fileno()).st_size
                file.seek(start)
                return file.read(max(0, min(end, size) - start))
        except FileNotFoundError:
            return None


def _is_file(path: Path) -> bool:
    with _os_errors("stat", path):
        try:
            return stat.S_ISREG(path.stat().st_mode)
        except FileNotFoundError:
            return False


def _open_temporary(directory: Path) -> tuple[IO[bytes], Path]:
    directory.mkdir(parents=True, exist_ok=True)
    descriptor, temporary = tempfile.mkstemp(prefix=_TEMP_PREFIX, dir=directory)
    return os.fdopen(descriptor, "wb"), Path(temporary)


def _write_atomically(path: Path, data: bytes) -> None:
    with _os_errors("write", path):
        file, temporary = _open_temporary(path.parent)
        try:
            with file:
                file.write(data)
                file.flush()
                os.fsync(file.fileno())
            os.replace(temporary, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(temporary)
            raise
        _fsync_directory(path.parent)


def _fsync_directory(directory: Path) -> None:
    descriptor = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def _mpacks_in_shard(shard: Path) -> list[StoredMPack]:
    """The push mpacks stored in one shard directory (temporary files are skipped)."""
    found: list[StoredMPack] = []
    with _os_errors("list", shard):
        for entry in os.scandir(shard):
            mpack_id = ids.PREFIX + entry.name
            if entry.name.startswith(".") or not ids.is_mpack_id(mpack_id):
                continue
            info = entry.stat()
            stored_at = dt.datetime.fromtimestamp(info.st_mtime, dt.UTC)
            found.append(StoredMPack(mpack_id, info.st_size, stored_at))
    return found


def _shards(namespace: Path) -> list[Path]:
    with _os_errors("list", namespace):
        try:
            return sorted(Path(entry.path) for entry in os.scandir(namespace) if entry.is_dir())
        except FileNotFoundError:
            return []


def _delete(path: Path) -> None:
    with _os_errors("delete", path):
        path.unlink(missing_ok=True)


def _seal_path(path: Path) -> Path:
    return path.with_name(path.name + _SEAL_SUFFIX)


def _seal_of(status: os.stat_result, sha256: str) -> dict[str, int | str]:
    return {**{field: getattr(status, field) for field in _SEALED_FIELDS}, "sha256": sha256}


def _is_sealed(path: Path) -> bool:
    with _os_errors("stat", path):
        try:
            status = path.stat()
            seal = json.loads(_seal_path(path).read_bytes())
        except (FileNotFoundError, ValueError):
            return False
    if not isinstance(seal, dict) or not stat.S_ISREG(status.st_mode):
        return False
    return all(seal.get(field) == getattr(status, field) for field in _SEALED_FIELDS)


@attrs.define
class _StreamedFile:
    """Bytes streamed into one file through worker threads; the base of both uploads.

    Small writes gather in memory (up to ``_FLUSH_BYTES``) and go to the file in
    one worker-thread call. Every file operation holds ``_lock``: a write still
    running in its worker thread after its caller was cancelled finishes before
    ``abort`` deletes the file.
    """

    _file: IO[bytes] | None = attrs.field(default=None, alias="file")
    _temporary: Path | None = attrs.field(default=None, alias="temporary")
    _lock: threading.Lock = attrs.field(factory=threading.Lock, init=False)
    _done: bool = attrs.field(default=False, init=False)
    _pending: list[bytes] = attrs.field(factory=list, init=False)
    _pending_bytes: int = attrs.field(default=0, init=False)

    async def write(self, chunk: bytes) -> None:
        """Append ``chunk`` to the file.

        Raises:
            InvalidRequestError: the upload is already committed or aborted.
            ObjectStoreError: the file could not be written.
        """
        self._check_open("write to")
        self._pending.append(bytes(chunk))
        self._pending_bytes += len(chunk)
        if self._pending_bytes >= _FLUSH_BYTES:
            await asyncio.to_thread(self._write, self._take_pending())

    async def abort(self) -> None:
        """Delete the file. Safe to call more than once."""
        self._done = True
        self._take_pending()
        await asyncio.shield(asyncio.to_thread(self._discard))

    def _describe(self) -> str:
        return "an upload"

    def _where(self) -> Path:
        """The path named in errors."""
        raise NotImplementedError

    def _create(self) -> tuple[IO[bytes], Path]:
        """Open the file the bytes go to (in a worker thread, under the lock)."""
        raise NotImplementedError

    def _wrote(self, chunk: bytes) -> None:
        """Called with every chunk that reached the file."""

    def _check_open(self, action: str) -> None:
        if self._done:
            raise InvalidRequestError(f"{action} {self._describe()} that is already finished")

    def _take_pending(self) -> bytes:
        data = b"".join(self._pending)
        self._pending.clear()
        self._pending_bytes = 0
        return data

    def _opened(self) -> IO[bytes]:
        if self._file is None:
            self._file, self._temporary = self._create()
        return self._file

    def _write(self, chunk: bytes) -> None:
        with self._lock, _os_errors("write", self._where()):
            if self._done:
                return  # aborted while this write waited for its thread
            self._opened().write(chunk)
            self._wrote(chunk)

    def _finish_file(self, rest: bytes) -> Path:
        """Write ``rest``, fsync and close the file; returns its path. Holds no lock."""
        file = self._opened()
        file.write(rest)
        self._wrote(rest)
        file.flush()
        os.fsync(file.fileno())
        file.close()
        assert self._temporary is not None
        return self._temporary

    async def _commit_in_thread(self, commit: Callable[[], None]) -> None:
        """Run ``commit`` in a worker thread; on any failure delete the file, then re-raise."""
        self._check_open("commit")
        self._done = True
        try:
            await asyncio.to_thread(commit)
        except BaseException:
            await asyncio.shield(asyncio.to_thread(self._discard))
            raise

    def _discard(self) -> None:
        with self._lock:
            if self._file is not None:
                self._file.close()
            if self._temporary is not None:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(self._temporary)
                self._temporary = None


@attrs.define
class FilesystemFetchUpload(_StreamedFile):
    """A fetch document streamed into a temporary file beside its target, renamed
    over it and sealed on commit (see :class:`_StreamedFile`)."""

    path: Path = attrs.field(kw_only=True)
    _sha256: hashlib._Hash = attrs.field(factory=hashlib.sha256, init=False)

    async def commit(self) -> None:
        """fsync, rename over the document, then write its seal.

        Raises:
            InvalidRequestError: the upload is already committed or aborted.
            ObjectStoreError: the file system failed (the temporary file is removed).
        """
        rest = self._take_pending()
        await self._commit_in_thread(lambda: self._commit(rest))

    def _describe(self) -> str:
        return "a fetch upload"

    def _where(self) -> Path:
        return self.path

    def _create(self) -> tuple[IO[bytes], Path]:
        return _open_temporary(self.path.parent)

    def _wrote(self, chunk: bytes) -> None:
        self._sha256.update(chunk)

    def _commit(self, rest: bytes) -> None:
        with self._lock, _os_errors("write", self.path):
            os.replace(self._finish_file(rest), self.path)
            self._temporary = None
            seal = _seal_of(self.path.stat(), self._sha256.hexdigest())
            _write_atomically(_seal_path(self.path), json.dumps(seal).encode())


@attrs.define
class FilesystemPushUpload(_StreamedFile):
    """A push mpack staged in ``<root>/staging/<uuid hex>`` until its id is known.

    The staging file is on the same file system as the mpacks, so commit is an
    fsync and one atomic ``os.replace`` onto the mpack's path (then the
    directory is fsynced, as ``put_mpack`` does). Commit always replaces a
    stored copy: the store keeps no seal of push mpacks, and a rename costs no
    more than telling whether the stored copy is intact, and repairs a damaged one.
    """

    staging: Path = attrs.field(kw_only=True)
    mpack_path: Callable[[str], Path] = attrs.field(kw_only=True)

    async def commit(self, mpack_id: str) -> None:
        """fsync the staging file and rename it onto the mpack ``mpack_id``.

        Raises:
            InvalidRequestError: already committed or aborted, or a malformed id
                (the staging file is removed).
            ObjectStoreError: the file system failed, or the staging file was
                swept meanwhile (the staging file is removed).
        """
        rest = self._take_pending()
        await self._commit_in_thread(lambda: self._commit(self.mpack_path(mpack_id), rest))

    def _describe(self) -> str:
        return "a push upload"

    def _where(self) -> Path:
        return self.staging

    def _create(self) -> tuple[IO[bytes], Path]:
        return _create_staging_file(self.staging), self.staging

    def _commit(self, target: Path, rest: bytes) -> None:
        with self._lock, _os_errors("write", target):
            staged = self._finish_file(rest)
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(staged, target)
            self._temporary = None
            _fsync_directory(target.parent)


def _create_staging_file(path: Path) -> IO[bytes]:
    with _os_errors("create", path):
        path.parent.mkdir(parents=True, exist_ok=True)
        return path.open("xb")


def _sweep_staging_files(staging: Path, cutoff: float) -> int:
    """Delete the staging files last modified at or before ``cutoff`` (a POSIX time)."""
    removed = 0
    with _os_errors("sweep", staging):
        try:
            entries = list(os.scandir(staging))
        except FileNotFoundError:
            return 0
        for entry in entries:
            if not _is_staging_name(entry.name) or not entry.is_file(follow_symlinks=False):
                continue
            with contextlib.suppress(FileNotFoundError):  # finished or swept meanwhile
                if entry.stat(follow_symlinks=False).st_mtime <= cutoff:
                    os.unlink(entry.path)
                    removed += 1
    return removed


def _is_staging_name(name: str) -> bool:
    return len(name) == _STAGING_NAME_LENGTH and all(c in "0123456789abcdef" for c in name)


@attrs.define
class FilesystemObjectStore:
    """An ObjectStore in a directory tree under ``root`` (created on first write).

    Args:
        root: the directory that holds everything; nothing is read or written outside it.
    """

    root: Path = attrs.field(converter=Path)

    async def get_object(self, object_id: str) -> bytes | None:
        """The content under a legacy per-object key, or None.

        Raises:
            InvalidRequestError: the id is not a content id (nothing was touched).
            ObjectStoreError: the file could not be read.
        """
        return await asyncio.to_thread(_read_whole, self._object_path(object_id))

    async def put_object(self, object_id: str, data: bytes) -> None:
        """Store content under a legacy per-object key (either id spelling), atomically.

        Raises:
            InvalidRequestError: the id is not a content id (nothing was touched).
            ObjectStoreError: the file could not be written.
        """
        await asyncio.to_thread(_write_atomically, self._object_path(object_id), data)

    async def get_mpack(self, mpack_id: str) -> bytes | None:
        """A whole mpack, or None.

        Raises:
            InvalidRequestError: the id is not ``sha256:<hex>`` (nothing was touched).
            ObjectStoreError: the file could not be read.
        """
        return await asyncio.to_thread(_read_whole, self._mpack_path(mpack_id))

    async def get_mpack_range(self, mpack_id: str, start: int, end: int) -> bytes | None:
        """Bytes ``[start, end)`` of an mpack, sliced like ``data[start:end]``, or None.

        Reads (and allocates) at most what the file holds, whatever ``end`` asks.

        Raises:
            InvalidRequestError: a bad id or range (nothing was touched).
            ObjectStoreError: the file could not be read.
        """
        path = self._mpack_path(mpack_id)
        check_range(start, end)
        return await asyncio.to_thread(_read_span, path, start, end)

    async def put_mpack(self, mpack_id: str, data: bytes) -> None:
        """Store an mpack atomically, replacing any stored copy (so a damaged one is repaired).

        Raises:
            InvalidRequestError: the id is not ``sha256:<hex>`` (nothing was touched).
            ObjectStoreError: the file could not be written.
        """
        await asyncio.to_thread(_write_atomically, self._mpack_path(mpack_id), data)

    async def has_mpack(self, mpack_id: str) -> bool | None:
        """Whether the mpack is stored (a ``stat``; never a read).

        Raises:
            InvalidRequestError: the id is not ``sha256:<hex>`` (nothing was touched).
            ObjectStoreError: the file system failed.
        """
        return await asyncio.to_thread(_is_file, self._mpack_path(mpack_id))

    async def presign_mpack(self, mpack_id: str, ttl_s: int) -> str | None:
        """The ``file://`` URL of the mpack's file (``ttl_s`` does not apply to a path).

        Raises:
            InvalidRequestError: the id is not ``sha256:<hex>``.
        """
        return self._mpack_path(mpack_id).absolute().as_uri()

    async def open_fetch(self, fetch_id: str) -> FilesystemFetchUpload:
        """Start writing a fetch document into a temporary file beside its target.

        Raises:
            InvalidRequestError: the id is not ``sha256:<hex>`` (nothing was touched).
        """
        return FilesystemFetchUpload(path=self._fetch_path(fetch_id))

    async def fetch_intact(self, fetch_id: str) -> bool | None:
        """Whether the fetch document and its seal agree (a ``stat``; never a read).

        Raises:
            InvalidRequestError: the id is not ``sha256:<hex>`` (nothing was touched).
            ObjectStoreError: the file system failed.
        """
        return await asyncio.to_thread(_is_sealed, self._fetch_path(fetch_id))

    async def get_fetch(self, fetch_id: str) -> bytes | None:
        """A whole fetch document, or None.

        Raises:
            InvalidRequestError: the id is not ``sha256:<hex>`` (nothing was touched).
            ObjectStoreError: the file could not be read.
        """
        return await asyncio.to_thread(_read_whole, self._fetch_path(fetch_id))

    async def presign_fetch(self, fetch_id: str, ttl_s: int) -> str | None:
        """The ``file://`` URL of the fetch document (``ttl_s`` does not apply to a path).

        Raises:
            InvalidRequestError: the id is not ``sha256:<hex>``.
        """
        return self._fetch_path(fetch_id).absolute().as_uri()

    # ── staged pushes (fetchcore.ports.StagedPushes) ──

    async def open_push(self) -> FilesystemPushUpload:
        """Start staging a push in ``<root>/staging/<uuid hex>`` (the file is created now,
        so a crashed ingest leaves it for :meth:`sweep_staging`).

        Raises:
            ObjectStoreError: the staging file could not be created.
        """
        staging = self.root / _STAGING_DIRECTORY / uuid.uuid4().hex
        file = await asyncio.to_thread(_create_staging_file, staging)
        return FilesystemPushUpload(file, staging, staging=staging, mpack_path=self._mpack_path)

    async def sweep_staging(self, min_age_s: float) -> int:
        """Delete staging files last written at least ``min_age_s`` seconds ago.

        Returns:
            How many staging files were deleted.

        Raises:
            InvalidRequestError: ``min_age_s`` is negative or not finite (nothing was touched).
            ObjectStoreError: the staging directory could not be listed or a file deleted.
        """
        cutoff = age_cutoff(min_age_s).timestamp()
        return await asyncio.to_thread(_sweep_staging_files, self.root / _STAGING_DIRECTORY, cutoff)

    # ── lifecycle (fetchcore.lifecycle.StoreLifecycle) ──

    async def list_mpacks(self) -> AsyncIterator[StoredMPack]:
        """Every push mpack stored, shard by shard; its age is the file's mtime.

        Raises:
            ObjectStoreError: a directory could not be listed.
        """
        for shard in await asyncio.to_thread(_shards, self.root / "mpacks"):
            for stored in await asyncio.to_thread(_mpacks_in_shard, shard):
                yield stored

    async def delete_mpack(self, mpack_id: str) -> None:
        """Delete a push mpack; a missing one is not an error.

        Raises:
            InvalidRequestError: the id is not ``sha256:<hex>`` (nothing was touched).
            ObjectStoreError: the file could not be deleted.
        """
        await asyncio.to_thread(_delete, self._mpack_path(mpack_id))

    def _mpack_path(self, mpack_id: str) -> Path:
        return self._sharded("mpacks", ids.check_mpack_id(mpack_id).removeprefix(ids.PREFIX))

    def _fetch_path(self, fetch_id: str) -> Path:
        return self._sharded("fetch", ids.check_mpack_id(fetch_id).removeprefix(ids.PREFIX))

    def _object_path(self, object_id: str) -> Path:
        return self._sharded("objects", ids.canonical(object_id).removeprefix(ids.PREFIX))

    def _sharded(self, namespace: str, digest: str) -> Path:
        return self.root / namespace / digest[:_SHARD_DIGITS] / digest
