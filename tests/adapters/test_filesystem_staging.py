"""What FilesystemObjectStore's staged pushes promise beyond the shared contract: where
staging lives, a rename (never a copy) on commit, cleanup on a failed rename, and a sweep
by the time a staging file was last written."""

from __future__ import annotations

import os
import re
import time
from pathlib import Path

import pytest
from fetchcore.adapters.filesystem import FilesystemObjectStore

from fetchcore import InvalidRequestError, ObjectStoreError, PushUpload
from fetchcore.ids import content_id
from tests.adapters.test_filesystem import files_under

DATA = b"staged push bytes" * 100_000  # 1.7 MB: more than one flush to the disk
MPACK_ID = content_id(DATA)
DIGEST = MPACK_ID.removeprefix("sha256:")
MPACK_PATH = Path("mpacks", DIGEST[:2], DIGEST)
STAGING_NAME = re.compile(r"[0-9a-f]{32}")
HOUR_S = 3600.0


async def _stage(store: FilesystemObjectStore, data: bytes = DATA) -> tuple[PushUpload, Path]:
    upload = await store.open_push()
    await upload.write(data)
    [staged] = files_under(store.root)
    return upload, staged


class TestStaging:
    async def test_a_push_is_staged_in_the_staging_directory_from_the_start(
        self, tmp_path: Path
    ) -> None:
        store = FilesystemObjectStore(tmp_path)
        upload = await store.open_push()
        [staged] = files_under(tmp_path)
        assert staged.parent == Path("staging")
        assert STAGING_NAME.fullmatch(staged.name)
        await upload.abort()
        assert files_under(tmp_path) == []

    async def test_commit_renames_the_staging_file_onto_the_mpack(self, tmp_path: Path) -> None:
        store = FilesystemObjectStore(tmp_path)
        upload = await store.open_push()
        await upload.write(DATA)
        [staged] = files_under(tmp_path)
        inode = (tmp_path / staged).stat().st_ino
        await upload.commit(MPACK_ID)
        assert files_under(tmp_path) == [MPACK_PATH]
        assert (tmp_path / MPACK_PATH).stat().st_ino == inode  # renamed, not copied
        assert (tmp_path / MPACK_PATH).read_bytes() == DATA

    async def test_commit_replaces_a_stored_copy_atomically(self, tmp_path: Path) -> None:
        store = FilesystemObjectStore(tmp_path)
        await store.put_mpack(MPACK_ID, DATA)
        with (tmp_path / MPACK_PATH).open("rb") as reader:  # a fetch reading the old copy
            upload = await store.open_push()
            await upload.write(DATA)
            await upload.commit(MPACK_ID)
            assert reader.read() == DATA  # the old file stays whole for its reader
        assert files_under(tmp_path) == [MPACK_PATH]
        assert await store.get_mpack(MPACK_ID) == DATA

    async def test_a_failed_rename_removes_the_staging_file(self, tmp_path: Path) -> None:
        store = FilesystemObjectStore(tmp_path)
        (tmp_path / "mpacks").write_bytes(b"")  # a file where the mpacks directory goes
        upload = await store.open_push()
        await upload.write(DATA)
        with pytest.raises(ObjectStoreError) as raised:
            await upload.commit(MPACK_ID)
        assert isinstance(raised.value.__cause__, OSError)
        assert files_under(tmp_path) == [Path("mpacks")]

    async def test_a_malformed_id_is_refused_and_the_staging_removed(self, tmp_path: Path) -> None:
        store = FilesystemObjectStore(tmp_path)
        upload = await store.open_push()
        await upload.write(DATA)
        with pytest.raises(InvalidRequestError):
            await upload.commit("sha256:../../../outside")
        assert files_under(tmp_path) == []
        assert list(tmp_path.parent.glob("outside*")) == []

    async def test_open_push_fails_clearly_when_the_root_is_unusable(self, tmp_path: Path) -> None:
        blocker = tmp_path / "a-file"
        blocker.write_bytes(b"")
        with pytest.raises(ObjectStoreError):
            await FilesystemObjectStore(blocker / "store").open_push()


class TestSweep:
    async def test_staging_untouched_for_longer_than_the_age_is_swept(self, tmp_path: Path) -> None:
        store = FilesystemObjectStore(tmp_path)
        _, old = await _stage(store)
        an_hour_ago = time.time() - HOUR_S - 60
        os.utime(tmp_path / old, (an_hour_ago, an_hour_ago))
        fresh = await store.open_push()
        assert await store.sweep_staging(HOUR_S) == 1
        [left] = files_under(tmp_path)
        assert left != old
        await fresh.abort()

    async def test_a_write_keeps_a_long_ingest_from_being_swept(self, tmp_path: Path) -> None:
        store = FilesystemObjectStore(tmp_path)
        upload, staged = await _stage(store)
        an_hour_ago = time.time() - HOUR_S - 60
        os.utime(tmp_path / staged, (an_hour_ago, an_hour_ago))
        await upload.write(DATA)  # the ingest is still writing: the file is touched
        assert await store.sweep_staging(HOUR_S) == 0
        await upload.commit(content_id(DATA * 2))
        assert await store.get_mpack(content_id(DATA * 2)) == DATA * 2

    async def test_sweep_touches_only_staging_names(self, tmp_path: Path) -> None:
        store = FilesystemObjectStore(tmp_path)
        (tmp_path / "staging").mkdir()
        (tmp_path / "staging" / "notes.txt").write_bytes(b"kept")
        assert await store.sweep_staging(0) == 0
        assert files_under(tmp_path) == [Path("staging", "notes.txt")]

    async def test_sweeping_a_store_never_written_removes_nothing(self, tmp_path: Path) -> None:
        assert await FilesystemObjectStore(tmp_path / "new").sweep_staging(0) == 0
