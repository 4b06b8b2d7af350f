"""FilesystemObjectStore: the ObjectStore port in a local directory (the embedded default).

Theory of operation:

- Layout. ``<root>/mpacks/<hh>/<hex>`` and ``<root>/objects/<hh>/<hex>``, where
  ``<hex>`` is the digest an id names and ``<hh>`` its first two digits (256
  shards keep directories small). Ids are checked, and legacy ids
  canonicalized, before any path is built: a path is made of hex digits only,
  so none can leave the root, and both spellings of an object id hit one file.
- Writes are atomic: the bytes go to a temporary file in the target's own
  directory, are fsynced, then renamed over the target (and the directory is
  fsynced). A reader sees the whole file or none. Content addressing makes a
  write of an existing id a no-op, and concurrent writers of one id harmless.
  Temporary names start with a dot and never look like a key.
- Reads: a whole file, or a seek and one read for a byte range (slicing
  semantics fall out of ``seek`` + ``read``).
- Every file operation runs in a worker thread (``asyncio.to_thread``), so
  the event loop never blocks on the disk. A missing file is ``None``; any
  other ``OSError`` becomes :class:`~fetchcore.errors.ObjectStoreError`.
- There is no server to hand out URLs: :meth:`presign_mpack` returns None.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import os
import stat
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import attrs

from fetchcore import ids
from fetchcore.errors import ObjectStoreError
from fetchcore.lifecycle import StoredMPack
from fetchcore.validation import check_range

_SHARD_DIGITS = 2
_TEMP_PREFIX = ".tmp-"


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
                file.seek(start)
                return file.read(end - start)
        except FileNotFoundError:
            return None


def _is_file(path: Path) -> bool:
    with _os_errors("stat", path):
        try:
            return stat.S_ISREG(path.stat().st_mode)
        except FileNotFoundError:
            return False


def _write_atomically(path: Path, data: bytes) -> None:
    with _os_errors("write", path):
        if path.exists():
            return  # content-addressed: the bytes there are these bytes
        path.parent.mkdir(parents=True, exist_ok=True)
        descriptor, temporary = tempfile.mkstemp(prefix=_TEMP_PREFIX, dir=path.parent)
        try:
            with os.fdopen(descriptor, "wb") as file:
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

        Raises:
            InvalidRequestError: a bad id or range (nothing was touched).
            ObjectStoreError: the file could not be read.
        """
        path = self._mpack_path(mpack_id)
        check_range(start, end)
        return await asyncio.to_thread(_read_span, path, start, end)

    async def put_mpack(self, mpack_id: str, data: bytes) -> None:
        """Store an mpack atomically; idempotent.

        Raises:
            InvalidRequestError: the id is not ``sha256:<hex>`` (nothing was touched).
            ObjectStoreError: the file could not be written.
        """
        await asyncio.to_thread(_write_atomically, self._mpack_path(mpack_id), data)

    async def has_mpack(self, mpack_id: str) -> bool:
        """Whether the mpack is stored.

        Raises:
            InvalidRequestError: the id is not ``sha256:<hex>`` (nothing was touched).
            ObjectStoreError: the file system failed.
        """
        return await asyncio.to_thread(_is_file, self._mpack_path(mpack_id))

    async def presign_mpack(self, mpack_id: str, ttl_s: int) -> str | None:
        """Always None: a directory cannot hand out URLs.

        Raises:
            InvalidRequestError: the id is not ``sha256:<hex>``.
        """
        ids.check_mpack_id(mpack_id)
        return None

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

    def _object_path(self, object_id: str) -> Path:
        return self._sharded("objects", ids.canonical(object_id).removeprefix(ids.PREFIX))

    def _sharded(self, namespace: str, digest: str) -> Path:
        return self.root / namespace / digest[:_SHARD_DIGITS] / digest
