"""The command line on the embedded default (SQLite + a directory): output and exit codes."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import pytest
from fetchcore.adapters.cli import (
    EXIT_FAILED,
    EXIT_NOT_INDEXED,
    EXIT_OK,
    EXIT_UNKNOWN_COMMIT,
    EXIT_USAGE,
    main,
    missing_extra_hint,
)

from fetchcore.testing import blob_entry, blob_id, commit_entry, fake_id, snapshot_entry
from fetchcore.wire import decode_fetch, encode_push

REPO = "cli/repo"


def write_push(path: Path, label: str, files: dict[str, bytes], parents: Sequence[str] = ()) -> str:
    commit_id, snapshot_id = fake_id(f"commit-{label}"), fake_id(f"snap-{label}")
    path.write_bytes(
        encode_push(
            commits=[commit_entry(commit_id, snapshot_id, parents)],
            snapshots=[snapshot_entry(snapshot_id, {p: blob_id(c) for p, c in files.items()})],
            blobs=[blob_entry(c, encoding="zstd") for c in files.values()],
            branch_heads={"main": commit_id},
        )
    )
    return commit_id


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


class TestIngestAndFetch:
    def test_a_push_is_ingested_then_fetched_to_a_file(
        self, workdir: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        commit = write_push(workdir / "push.mpack", "a", {"a.txt": b"hello", "b.txt": b"world"})
        code, out, _ = run(capsys, "ingest", "push.mpack", "--repo", REPO)
        assert code == EXIT_OK
        assert "1 commit(s), 1 snapshot(s), 2 blob(s)" in out
        assert (workdir / ".fetchcore" / "index.sqlite").exists()

        code, out, _ = run(capsys, "fetch", "--repo", REPO, "--want", commit, "--out", "f.mpack")
        assert code == EXIT_OK
        assert "2 blob(s)" in out
        assert "1 request(s)" in out
        fetched = decode_fetch((workdir / "f.mpack").read_bytes())
        assert {b["content"] for b in fetched["blobs"]} == {b"hello", b"world"}

    def test_ingesting_twice_succeeds_with_the_same_mpack_and_commits(
        self, workdir: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        write_push(workdir / "push.mpack", "a", {"a.txt": b"hello"})
        first = run(capsys, "ingest", "push.mpack", "--repo", REPO)
        second = run(capsys, "ingest", "push.mpack", "--repo", REPO)
        assert first[0] == second[0] == EXIT_OK
        assert first[1] == second[1]

    def test_the_index_and_store_can_be_named_by_environment(
        self, workdir: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setenv("FETCHCORE_INDEX", f"sqlite+aiosqlite:///{workdir / 'elsewhere.db'}")
        monkeypatch.setenv("FETCHCORE_STORE", f"file://{workdir / 'elsewhere'}")
        write_push(workdir / "push.mpack", "a", {"a.txt": b"hello"})
        assert run(capsys, "--create", "ingest", "push.mpack", "--repo", REPO)[0] == EXIT_OK
        assert (workdir / "elsewhere.db").exists()
        assert (workdir / "elsewhere").is_dir()
        assert not (workdir / ".fetchcore").exists()


class TestPlan:
    def test_the_plan_names_sources_and_reads(
        self, workdir: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        commit = write_push(workdir / "push.mpack", "a", {"a.txt": b"hello"})
        run(capsys, "ingest", "push.mpack", "--repo", REPO)
        code, out, _ = run(capsys, "plan", "--repo", REPO, "--want", commit)
        assert code == EXIT_OK
        assert "content cache          0 blob(s)" in out
        assert "push mpacks            1 blob(s)  1 mpack(s), 1 request(s)" in out
        assert "whole:" in out


class TestErrors:
    def test_an_unknown_commit_exits_4(
        self, workdir: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        code, _, err = run(capsys, "fetch", "--repo", REPO, "--want", fake_id("nobody"))
        assert code == EXIT_UNKNOWN_COMMIT
        assert err.startswith("fetchcore: error: unknown commit")
        assert err.count("\n") == 1

    def test_not_indexed_yet_exits_3(
        self, workdir: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        write_push(workdir / "base.mpack", "a", {"a.txt": b"hello"})
        run(capsys, "ingest", "base.mpack", "--repo", REPO)
        # A hub that recorded a commit whose blob is not located anywhere yet.
        import asyncio

        from fetchcore.adapters.cli import default_index_url, open_index

        from fetchcore import Commit, IndexBatch, Snapshot

        async def record_unindexed() -> None:
            async with open_index(default_index_url()) as index:
                snapshot = Snapshot(fake_id("s-late"), {"late.txt": blob_id(b"late")})
                commit = Commit(fake_id("c-late"), snapshot.snapshot_id)
                await index.record(REPO, IndexBatch(commits=[commit], snapshots=[snapshot]))

        asyncio.run(record_unindexed())
        code, _, err = run(capsys, "fetch", "--repo", REPO, "--want", fake_id("c-late"))
        assert code == EXIT_NOT_INDEXED
        assert "not indexed yet" in err

    def test_a_malformed_push_exits_1_naming_the_entry(
        self, workdir: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        (workdir / "bad.mpack").write_bytes(encode_push(blobs=[{"object_id": "x", "content": b""}]))
        code, _, err = run(capsys, "ingest", "bad.mpack", "--repo", REPO)
        assert code == EXIT_FAILED
        assert "blobs[0].object_id" in err

    def test_a_missing_file_is_a_usage_error(
        self, workdir: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        code, _, err = run(capsys, "ingest", "nowhere.mpack", "--repo", REPO)
        assert code == EXIT_USAGE
        assert "cannot read nowhere.mpack" in err

    def test_missing_arguments_exit_2(
        self, workdir: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        with pytest.raises(SystemExit) as raised:
            main(["fetch", "--repo", REPO])
        assert raised.value.code == EXIT_USAGE

    def test_an_unknown_store_url_is_a_usage_error(
        self, workdir: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        code, _, err = run(capsys, "--store", "ftp://x", "plan", "--repo", REPO, "--want", "c")
        assert code == EXIT_USAGE
        assert "unknown store URL" in err

    def test_an_unreachable_index_exits_1(
        self, workdir: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        url = "postgresql+asyncpg://postgres@127.0.0.1:9/none"
        code, _, err = run(capsys, "--index", url, "plan", "--repo", REPO, "--want", "c")
        assert code == EXIT_FAILED
        assert err.startswith("fetchcore: error:")


class TestDemo:
    def test_the_demo_compares_fetchcore_with_one_get_per_blob(
        self, workdir: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        code, out, _ = run(capsys, "demo", "--blobs", "200", "--pushes", "2", "--blob-size", "512")
        assert code == EXIT_OK
        assert "A full fetch of 200 blobs from 2 push mpacks" in out
        fetchcore_row = next(line for line in out.splitlines() if line.startswith("fetchcore "))
        baseline_row = next(
            line for line in out.splitlines() if line.startswith("one GET per blob")
        )
        assert fetchcore_row.split()[1] == "2"  # one request per push mpack
        assert baseline_row.split()[7] == "200"  # one request per blob
        assert (workdir / ".fetchcore" / "demo" / "index.sqlite").exists()
        assert os.listdir(workdir / ".fetchcore" / "demo" / "store")


class TestABaseInstall:
    """Without the ``sql`` / ``s3`` extras the command says what to install, in one line."""

    @staticmethod
    def run_without(
        module: str, arguments: list[str], cwd: Path
    ) -> subprocess.CompletedProcess[str]:
        # A None entry in sys.modules makes ``import module`` fail as if it were not installed.
        program = (
            f"import sys; sys.modules[{module!r}] = None\n"
            "from fetchcore.adapters.cli import main\n"
            f"sys.exit(main({arguments!r}))\n"
        )
        return subprocess.run(
            [sys.executable, "-c", program], cwd=cwd, capture_output=True, text=True, timeout=120
        )

    def test_without_the_sql_extra_it_prints_one_line_naming_the_extra(self, workdir: Path) -> None:
        ran = self.run_without("sqlalchemy", ["fetch", "--repo", REPO, "--want", "x"], workdir)
        assert ran.returncode == EXIT_FAILED
        assert ran.stderr.strip().splitlines() == [
            "fetchcore: error: this needs the 'sql' extra (sqlalchemy is not installed): "
            "pip install 'fetchcore[sql]'"
        ]
        assert "Traceback" not in ran.stderr

    def test_without_the_s3_extra_it_names_that_extra(self, workdir: Path) -> None:
        arguments = ["--store", "s3://bucket/prefix", "fetch", "--repo", REPO, "--want", "x"]
        ran = self.run_without("aiobotocore", arguments, workdir)
        assert ran.returncode == EXIT_FAILED
        assert "pip install 'fetchcore[s3]'" in ran.stderr
        assert len(ran.stderr.strip().splitlines()) == 1

    def test_without_the_cli_extra_ingest_and_fetch_work_without_bars(self, workdir: Path) -> None:
        commit = write_push(workdir / "push.mpack", "a", {"a.txt": b"hello"})
        ingested = self.run_without("rich", ["ingest", "push.mpack", "--repo", REPO], workdir)
        assert ingested.returncode == EXIT_OK, ingested.stderr
        fetched = self.run_without("rich", ["fetch", "--repo", REPO, "--want", commit], workdir)
        assert fetched.returncode == EXIT_OK, fetched.stderr
        assert "Traceback" not in fetched.stderr

    def test_another_missing_module_is_not_mistaken_for_an_extra(self) -> None:
        assert missing_extra_hint(ModuleNotFoundError("x", name="numpy")) is None
        assert "fetchcore[sql]" in (
            missing_extra_hint(ModuleNotFoundError("x", name="sqlalchemy.ext.asyncio")) or ""
        )
