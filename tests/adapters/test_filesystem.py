"""What FilesystemObjectStore promises beyond the shared contract: layout, atomicity, threads."""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Callable
from pathlib import Path

import pytest
from fetchcore.adapters import filesystem
from fetchcore.adapters.filesystem import FilesystemObjectStore

from fetchcore import InvalidRequestError, ObjectStoreError
from fetchcore.ids import content_id
from fetchcore.testing import blob_id
from tests.contract.test_object_store import BAD_IDS

DATA = b"mpack bytes" * 100
MPACK_ID = content_id(DATA)
DIGEST = MPACK_ID.removeprefix("sha256:")


def files_under(root: Path) -> list[Path]:
    return sorted(path.relative_to(root) for path in root.rglob("*") if path.is_file())


class TestLayout:
    async def test_mpacks_and_objects_sit_in_sharded_namespaces(self, tmp_path: Path) -> None:
        store = FilesystemObjectStore(tmp_path)
        content = b"legacy"
        bare = blob_id(content, bare=True)
        await store.put_mpack(MPACK_ID, DATA)
        await store.put_object(bare, content)
        assert files_under(tmp_path) == [
            Path("mpacks", DIGEST[:2], DIGEST),
            Path("objects", bare[:2], bare),
        ]

    async def test_the_root_is_created_on_the_first_write(self, tmp_path: Path) -> None:
        root = tmp_path / "not" / "yet"
        store = FilesystemObjectStore(root)
        assert await store.get_mpack(MPACK_ID) is None
        assert not root.exists()
        await store.put_mpack(MPACK_ID, DATA)
        assert await store.get_mpack(MPACK_ID) == DATA

    @pytest.mark.parametrize("bad_id", BAD_IDS)
    async def test_a_malformed_id_touches_no_file(self, tmp_path: Path, bad_id: str) -> None:
        store = FilesystemObjectStore(tmp_path / "root")
        for write in (store.put_mpack, store.put_object):
            with pytest.raises(InvalidRequestError):
                await write(bad_id, b"x")
        assert files_under(tmp_path) == []


class TestAtomicWrites:
    async def test_a_write_leaves_no_temporary_file(self, tmp_path: Path) -> None:
        store = FilesystemObjectStore(tmp_path)
        await store.put_mpack(MPACK_ID, DATA)
        assert [path.name for path in files_under(tmp_path)] == [DIGEST]

    async def test_a_second_write_of_an_id_writes_a_new_file(self, tmp_path: Path) -> None:
        store = FilesystemObjectStore(tmp_path)
        await store.put_mpack(MPACK_ID, DATA)
        path = tmp_path / "mpacks" / DIGEST[:2] / DIGEST
        before = path.stat()
        await store.put_mpack(MPACK_ID, DATA)
        assert path.stat().st_ino != before.st_ino  # renamed over, never "exists, skip"
        assert files_under(tmp_path) == [Path("mpacks", DIGEST[:2], DIGEST)]

    async def test_a_failed_write_leaves_neither_target_nor_temporary(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        def broken_fsync(descriptor: int) -> None:
            raise OSError(5, "Input/output error")

        monkeypatch.setattr(os, "fsync", broken_fsync)
        store = FilesystemObjectStore(tmp_path)
        with pytest.raises(ObjectStoreError) as raised:
            await store.put_mpack(MPACK_ID, DATA)
        assert isinstance(raised.value.__cause__, OSError)
        assert files_under(tmp_path) == []
        assert await store.has_mpack(MPACK_ID) is False


class TestFailures:
    async def test_an_unusable_root_is_an_object_store_error(self, tmp_path: Path) -> None:
        blocker = tmp_path / "a-file"
        blocker.write_bytes(b"")
        store = FilesystemObjectStore(blocker)
        for call in (
            store.get_mpack(MPACK_ID),
            store.get_mpack_range(MPACK_ID, 0, 1),
            store.has_mpack(MPACK_ID),
            store.put_mpack(MPACK_ID, DATA),
            store.get_object(MPACK_ID),
        ):
            with pytest.raises(ObjectStoreError) as raised:
                await call
            assert isinstance(raised.value.__cause__, OSError)

    async def test_presigned_urls_are_file_urls_of_the_stored_files(self, tmp_path: Path) -> None:
        store = FilesystemObjectStore(tmp_path / "relative-or-not")
        await store.put_mpack(MPACK_ID, DATA)
        assert await store.presign_mpack(MPACK_ID, 60) == (
            (tmp_path / "relative-or-not" / "mpacks" / DIGEST[:2] / DIGEST).as_uri()
        )
        assert await store.presign_fetch(MPACK_ID, 60) == (
            (tmp_path / "relative-or-not" / "fetch" / DIGEST[:2] / DIGEST).as_uri()
        )


FILE_FUNCTIONS = ("_read_whole", "_read_span", "_is_file", "_write_atomically")


class TestEventLoop:
    async def test_file_io_runs_off_the_event_loop_thread(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        threads: dict[str, int] = {}
        for name in FILE_FUNCTIONS:
            monkeypatch.setattr(filesystem, name, _noting_thread(name, threads))
        store = FilesystemObjectStore(tmp_path)
        await store.put_mpack(MPACK_ID, DATA)
        assert await store.get_mpack(MPACK_ID) == DATA
        assert await store.get_mpack_range(MPACK_ID, 1, 5) == DATA[1:5]
        assert await store.has_mpack(MPACK_ID)
        assert sorted(threads) == sorted(FILE_FUNCTIONS)
        assert threading.get_ident() not in threads.values()


def _noting_thread(name: str, threads: dict[str, int]) -> Callable[..., object]:
    function = getattr(filesystem, name)

    def wrapper(*args: object) -> object:
        threads[name] = threading.get_ident()
        return function(*args)

    return wrapper


class TestRanges:
    async def test_a_range_far_past_the_end_reads_only_what_the_file_holds(
        self, tmp_path: Path
    ) -> None:
        store = FilesystemObjectStore(tmp_path)
        await store.put_mpack(MPACK_ID, DATA)
        # Allocating the asked length would need a terabyte (MemoryError).
        assert await store.get_mpack_range(MPACK_ID, 0, 2**40) == DATA
        assert await store.get_mpack_range(MPACK_ID, 7, 2**40) == DATA[7:]
        assert await store.get_mpack_range(MPACK_ID, 2**39, 2**40) == b""

    @pytest.mark.parametrize("end", [len(DATA) - 1, len(DATA), len(DATA) + 1])
    async def test_a_range_ending_at_the_file_size_is_exact(self, tmp_path: Path, end: int) -> None:
        store = FilesystemObjectStore(tmp_path)
        await store.put_mpack(MPACK_ID, DATA)
        assert await store.get_mpack_range(MPACK_ID, 3, end) == DATA[3:end]


FETCH_DIR = Path("fetch", DIGEST[:2])
FLUSH_BYTES = 1024 * 1024


def _counting_disk_writes(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    sizes: list[int] = []
    write = filesystem.FilesystemFetchUpload._write

    def counted(upload: filesystem.FilesystemFetchUpload, chunk: bytes) -> None:
        sizes.append(len(chunk))
        write(upload, chunk)

    monkeypatch.setattr(filesystem.FilesystemFetchUpload, "_write", counted)
    return sizes


class TestFetchDocuments:
    async def test_a_document_is_written_to_a_dot_file_beside_its_target(
        self, tmp_path: Path
    ) -> None:
        store = FilesystemObjectStore(tmp_path)
        upload = await store.open_fetch(MPACK_ID)
        await upload.write(bytes(FLUSH_BYTES))  # enough to reach the disk before commit
        [temporary] = files_under(tmp_path)
        assert temporary.parent == FETCH_DIR
        assert temporary.name.startswith(".")
        await upload.commit()
        assert files_under(tmp_path) == [FETCH_DIR / DIGEST, FETCH_DIR / f"{DIGEST}.seal"]

    async def test_small_writes_reach_the_disk_a_mebibyte_at_a_time(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        disk_writes = _counting_disk_writes(monkeypatch)
        store = FilesystemObjectStore(tmp_path)
        upload = await store.open_fetch(MPACK_ID)
        chunk = bytes(range(256)) * 16  # 4 KiB, a small blob
        chunks = 3 * FLUSH_BYTES // len(chunk) + 1
        for _ in range(chunks):
            await upload.write(chunk)
        assert disk_writes == [FLUSH_BYTES] * 3  # at the limit exactly, not one chunk later
        await upload.commit()
        assert await store.get_fetch(MPACK_ID) == chunk * chunks
        assert await store.fetch_intact(MPACK_ID) is True

    async def test_the_seal_records_size_inode_times_and_checksum(self, tmp_path: Path) -> None:
        store = FilesystemObjectStore(tmp_path)
        upload = await store.open_fetch(MPACK_ID)
        await upload.write(DATA[:100])
        await upload.write(DATA[100:])
        await upload.commit()
        status = (tmp_path / FETCH_DIR / DIGEST).stat()
        seal = json.loads((tmp_path / FETCH_DIR / f"{DIGEST}.seal").read_bytes())
        assert seal == {
            "st_size": len(DATA),
            "st_ino": status.st_ino,
            "st_mtime_ns": status.st_mtime_ns,
            "st_ctime_ns": status.st_ctime_ns,
            "sha256": DIGEST,
        }

    async def test_a_later_rewrite_in_place_is_not_intact(self, tmp_path: Path) -> None:
        store = FilesystemObjectStore(tmp_path)
        upload = await store.open_fetch(MPACK_ID)
        await upload.write(DATA)
        await upload.commit()
        path = tmp_path / FETCH_DIR / DIGEST
        sealed = path.stat()
        path.write_bytes(DATA[::-1])  # same inode, same size
        later = sealed.st_mtime_ns + 1_000_000_000  # a clock tick later, made explicit
        os.utime(path, ns=(later, later))
        assert await store.fetch_intact(MPACK_ID) is False

    async def test_a_damaged_seal_seals_nothing(self, tmp_path: Path) -> None:
        store = FilesystemObjectStore(tmp_path)
        upload = await store.open_fetch(MPACK_ID)
        await upload.write(DATA)
        await upload.commit()
        (tmp_path / FETCH_DIR / f"{DIGEST}.seal").write_bytes(b"{not json")
        assert await store.fetch_intact(MPACK_ID) is False

    async def test_a_failed_commit_leaves_nothing(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        store = FilesystemObjectStore(tmp_path)
        upload = await store.open_fetch(MPACK_ID)
        await upload.write(DATA)

        def broken_fsync(descriptor: int) -> None:
            raise OSError(5, "Input/output error")

        monkeypatch.setattr(os, "fsync", broken_fsync)
        with pytest.raises(ObjectStoreError) as raised:
            await upload.commit()
        assert isinstance(raised.value.__cause__, OSError)
        assert files_under(tmp_path) == []
        assert await store.fetch_intact(MPACK_ID) is False
