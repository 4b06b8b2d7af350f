"""The command line as an operator drives it: --version, --help, --json, log and heads,
URL mistakes refused in one line, no password shown, lifecycle, migrate, the demo on PG + S3."""

from __future__ import annotations

import asyncio
import json
import random
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import fetchcore.adapters.cli as cli_module
import fetchcore.adapters.progress as progress_module
import pytest
import sqlalchemy as sa
from fetchcore.adapters.cli import EXIT_OK, EXIT_UNKNOWN_COMMIT, EXIT_USAGE, main
from fetchcore.adapters.urls import masked, parse_s3_url, scrubbed

from fetchcore import __version__
from fetchcore.ids import content_id
from fetchcore.testing import fake_id
from tests.cli.test_cli import REPO, run, write_push
from tests.pg_support import _admin as admin
from tests.pg_support import _create_database as create_database
from tests.pg_support import server_url
from tests.seaweed import S3Endpoint

PASSWORD = "hunter2-secret"


def run_json(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, dict[str, Any]]:
    code, out, _ = run(capsys, *argv)
    lines = out.splitlines()
    assert len(lines) == 1, out
    parsed: dict[str, Any] = json.loads(lines[0])
    return code, parsed


def history(workdir: Path, capsys: pytest.CaptureFixture[str]) -> tuple[str, str]:
    """Two pushes, one on top of the other, ingested into REPO."""
    first = write_push(workdir / "one.mpack", "one", {"a.txt": b"first"})
    second = write_push(workdir / "two.mpack", "two", {"a.txt": b"second"}, parents=[first])
    for name in ("one.mpack", "two.mpack"):
        assert run(capsys, "ingest", name, "--repo", REPO)[0] == EXIT_OK
    return first, second


class TestVersionAndHelp:
    def test_version_prints_the_package_version(self, capsys: pytest.CaptureFixture[str]) -> None:
        with pytest.raises(SystemExit) as exited:
            main(["--version"])
        assert exited.value.code == 0
        assert capsys.readouterr().out.strip() == f"fetchcore {__version__}"

    def test_help_shows_defaults_and_the_environment_variables_read(
        self, workdir: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        with pytest.raises(SystemExit):
            main(["--help"])
        out = " ".join(capsys.readouterr().out.split())  # as one line, whatever the wrapping
        for variable in (
            "FETCHCORE_INDEX",
            "FETCHCORE_STORE",
            "FETCHCORE_S3_ACCESS_KEY",
            "FETCHCORE_S3_SECRET_KEY",
        ):
            assert variable in out
        assert "(default: sqlite+aiosqlite:///.fetchcore/index.sqlite)" in out
        assert "(default: file://.fetchcore/store)" in out

    def test_a_subcommand_help_shows_its_defaults(self, capsys: pytest.CaptureFixture[str]) -> None:
        with pytest.raises(SystemExit):
            main(["orphans", "--help"])
        assert "(default: 86400)" in capsys.readouterr().out

    def test_help_masks_a_password_in_the_environment(
        self, workdir: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setenv("FETCHCORE_INDEX", f"postgresql+asyncpg://hub:{PASSWORD}@db.local/hub")
        with pytest.raises(SystemExit):
            main(["--help"])
        out = capsys.readouterr().out
        assert PASSWORD not in out
        assert "postgresql+asyncpg://hub:***@db.local/hub" in out


class TestJson:
    def test_ingest_reports_the_commits_and_heads_it_recorded(
        self, workdir: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        commit = write_push(workdir / "push.mpack", "a", {"a.txt": b"hello", "b.txt": b"world"})
        code, data = run_json(capsys, "ingest", "push.mpack", "--repo", REPO, "--json")
        assert code == EXIT_OK
        timings = data.pop("timings")
        # A small push read in pieces is joined (whole_push_bytes), then parsed whole.
        phases = {"receive", "parse", "verify", "connect", "store", "record", "total"}
        assert set(timings) == phases
        assert data == {
            "repo": REPO,
            "mpack_id": content_id((workdir / "push.mpack").read_bytes()),
            "uploaded": True,
            "bytes": (workdir / "push.mpack").stat().st_size,
            "commit_count": 1,
            "snapshot_count": 1,
            "blob_count": 2,
            "commit_ids": [commit],
            "branch_heads": {"main": commit},
        }

    def test_ingest_as_text_lists_the_commits_and_heads(
        self, workdir: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        commit = write_push(workdir / "push.mpack", "a", {"a.txt": b"hello"})
        _, out, _ = run(capsys, "ingest", "push.mpack", "--repo", REPO)
        assert f"commit  {commit}" in out.splitlines()
        assert f"head    main -> {commit}" in out.splitlines()

    def test_ingest_streams_the_file_and_draws_its_progress_on_a_terminal(
        self, workdir: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
    ) -> None:
        contents = {f"{i}.wav": random.Random(i).randbytes(100_000) for i in range(30)}
        write_push(workdir / "push.mpack", "a", contents)
        size = (workdir / "push.mpack").stat().st_size
        monkeypatch.setattr(progress_module, "should_draw", lambda stream: True)
        monkeypatch.setattr(cli_module, "INGEST_CHUNK_BYTES", 256 * 1024)  # read in 12 pieces
        code, out, err = run(capsys, "ingest", "push.mpack", "--repo", REPO)
        assert code == EXIT_OK
        assert "30 blob(s)" in out
        assert f"262.1 kB/{size / 1e6:.1f} MB" in err  # after the first piece
        assert f"{size / 1e6:.1f} MB/{size / 1e6:.1f} MB" in err
        assert "100%" in err

    def test_fetch_draws_no_progress_bar_when_piped(
        self, workdir: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        _, second = history(workdir, capsys)
        code, out, err = run(capsys, "fetch", "--repo", REPO, "--want", second)
        assert code == EXIT_OK
        assert out.startswith("fetch mpack")
        assert err == ""

    def test_fetch_draws_a_progress_bar_on_a_terminal(
        self, workdir: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
    ) -> None:
        _, second = history(workdir, capsys)
        monkeypatch.setattr(progress_module, "should_draw", lambda stream: True)
        code, out, err = run(capsys, "fetch", "--repo", REPO, "--want", second)
        assert code == EXIT_OK
        assert out.startswith("fetch mpack")
        assert "2/2 blobs" in err
        assert "100%" in err

    def test_fetch_reports_counts_and_stats(
        self, workdir: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        _, second = history(workdir, capsys)
        code, data = run_json(capsys, "fetch", "--repo", REPO, "--want", second, "--json")
        assert code == EXIT_OK
        assert (data["commit_count"], data["snapshot_count"], data["blob_count"]) == (2, 2, 2)
        assert data["stats"]["requests"] == 2
        assert data["stats"]["cache_hits"] == 0
        timings = data["stats"]["timings"]
        assert set(timings) == {"resolve", "lookup", "plan", "read", "upload", "total"}
        phases = sum(timings.values()) - timings["total"]
        assert phases <= timings["total"] + 1e-5  # each figure is rounded to a microsecond
        assert data["mpack_url"].startswith("file://")  # a directory store hands out its file
        assert Path(data["mpack_url"].removeprefix("file://")).is_file()
        assert data["out"] is None
        assert data["mpack_id"].startswith("sha256:")

    def test_plan_reports_the_reads(
        self, workdir: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        _, second = history(workdir, capsys)
        code, data = run_json(capsys, "plan", "--repo", REPO, "--want", second, "--json")
        assert code == EXIT_OK
        assert data["blob_count"] == 2
        assert data["request_count"] == 2
        assert data["not_indexed_blobs"] == 0
        assert sorted(read["blobs"] for read in data["reads"]) == [1, 1]

    def test_an_error_is_json_with_its_type_and_exit_code(
        self, workdir: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        code, out, err = run(capsys, "log", "--repo", REPO, "--json")
        assert code == EXIT_OK
        code, out, err = run(capsys, "fetch", "--repo", REPO, "--want", fake_id("no"), "--json")
        assert code == EXIT_UNKNOWN_COMMIT
        error = json.loads(out)["error"]
        assert error["type"] == "UnknownCommitError"
        assert error["exit_code"] == EXIT_UNKNOWN_COMMIT
        assert error["message"] in err


class TestLogAndHeads:
    def test_log_lists_commits_newest_first_with_their_parents(
        self, workdir: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        first, second = history(workdir, capsys)
        code, data = run_json(capsys, "log", "--repo", REPO, "--json")
        assert code == EXIT_OK
        assert data["commits"] == [
            {
                "commit_id": second,
                "snapshot_id": fake_id("snap-two"),
                "parent_ids": [first],
                "branches": ["main"],
            },
            {
                "commit_id": first,
                "snapshot_id": fake_id("snap-one"),
                "parent_ids": [],
                "branches": [],
            },
        ]
        _, out, _ = run(capsys, "log", "--repo", REPO)
        assert out.splitlines() == [
            f"{second}  parents: {first}  (main)",
            f"{first}  parents: none",
        ]

    def test_log_of_an_unknown_repository_says_it_has_no_commits(
        self, workdir: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        code, out, _ = run(capsys, "log", "--repo", "nobody/here")
        assert (code, out) == (EXIT_OK, "nobody/here has no commits\n")

    def test_heads_lists_the_branch_heads(
        self, workdir: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        _, second = history(workdir, capsys)
        code, data = run_json(capsys, "heads", "--repo", REPO, "--json")
        assert (code, data) == (EXIT_OK, {"repo": REPO, "branch_heads": {"main": second}})
        assert run(capsys, "heads", "--repo", REPO)[1] == f"main  {second}\n"

    def test_a_logged_commit_can_be_fetched(
        self, workdir: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        history(workdir, capsys)
        _, data = run_json(capsys, "log", "--repo", REPO, "--json")
        newest = data["commits"][0]["commit_id"]
        assert run(capsys, "fetch", "--repo", REPO, "--want", newest)[0] == EXIT_OK


class TestUrlMistakes:
    """Each is refused in one line with exit 2, before anything connects."""

    @pytest.mark.parametrize(
        ("store", "says"),
        [
            ("s3://bucket/p?endpoint=127.0.0.1:8333", "has no scheme: write http://127.0.0.1:8333"),
            ("s3://bucket/p?endpont=http://127.0.0.1:1", "unknown parameter(s) endpont"),
            ("s3://bucket/p?region=x&secret=y", "unknown parameter(s) secret"),
            ("ftp://bucket", "unknown store URL"),
        ],
    )
    def test_a_bad_store_url(
        self, workdir: Path, capsys: pytest.CaptureFixture[str], store: str, says: str
    ) -> None:
        code, out, err = run(capsys, "--store", store, "heads", "--repo", REPO)
        assert code == EXIT_USAGE
        assert says in err
        assert err.count("\n") == 1
        assert out == ""

    def test_an_unknown_sqlite_parameter(
        self, workdir: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        url = f"sqlite+aiosqlite:///{workdir / 'x.db'}?moed=ro"
        code, _, err = run(capsys, "--create", "--index", url, "heads", "--repo", REPO)
        assert code == EXIT_USAGE
        assert "unknown parameter(s) moed" in err

    def test_a_sqlite_file_that_does_not_exist_is_not_created(
        self, workdir: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        url = f"sqlite+aiosqlite:///{workdir / 'typo.db'}"
        code, _, err = run(capsys, "--index", url, "heads", "--repo", REPO)
        assert code == EXIT_USAGE
        assert f"no SQLite index at {workdir / 'typo.db'}" in err
        assert "--create" in err
        assert not (workdir / "typo.db").exists()

    def test_the_stack_options_may_follow_the_command(
        self, workdir: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        url = f"sqlite+aiosqlite:///{workdir / 'after.db'}"
        assert run(capsys, "heads", "--repo", REPO, "--index", url)[0] == EXIT_USAGE
        code, _, _ = run(capsys, "heads", "--repo", REPO, "--index", url, "--create")
        assert code == EXIT_OK
        assert (workdir / "after.db").is_file()
        assert not (workdir / ".fetchcore" / "index.sqlite").exists()

    def test_create_makes_a_new_sqlite_index(
        self, workdir: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        url = f"sqlite+aiosqlite:///{workdir / 'new.db'}"
        code, _, _ = run(capsys, "--create", "--index", url, "heads", "--repo", REPO)
        assert code == EXIT_OK
        assert (workdir / "new.db").is_file()
        assert run(capsys, "--index", url, "heads", "--repo", REPO)[0] == EXIT_OK

    def test_a_password_in_a_failing_index_url_is_never_printed(
        self, workdir: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        url = f"postgresql+asyncpg://hub:{PASSWORD}@127.0.0.1:1/hub"
        code, out, err = run(capsys, "--index", url, "heads", "--repo", REPO, "--json")
        assert code != EXIT_OK
        assert PASSWORD not in out + err
        assert "hub:" not in err  # no user, host or URL at all: the message names the database kind
        assert "on postgresql" in err


class TestMigrate:
    def test_migrate_creates_the_tables_of_a_new_sqlite_index(
        self, workdir: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        url = f"sqlite+aiosqlite:///{workdir / 'fresh.db'}"
        code, data = run_json(capsys, "--create", "migrate", url, "--json")
        assert code == EXIT_OK
        assert data["index"] == url
        assert data["revision"]
        tables = sa.inspect(sa.create_engine(f"sqlite:///{workdir / 'fresh.db'}")).get_table_names()
        assert "fetchcore_commits" in tables
        assert run(capsys, "--index", url, "heads", "--repo", REPO)[0] == EXIT_OK

    def test_migrate_refuses_a_missing_sqlite_file_without_create(
        self, workdir: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        code, _, err = run(capsys, "migrate", f"sqlite+aiosqlite:///{workdir / 'typo.db'}")
        assert code == EXIT_USAGE
        assert "no SQLite index" in err

    @pytest.mark.postgres
    def test_migrate_a_new_postgres_database_showing_no_password(
        self, workdir: Path, capsys: pytest.CaptureFixture[str], postgres_scratch: str
    ) -> None:
        code, out, err = run(capsys, "migrate", postgres_scratch)
        assert code == EXIT_OK, err
        assert PASSWORD not in out + err
        assert ":***@" in out
        assert run(capsys, "migrate", postgres_scratch)[0] == EXIT_OK  # again: nothing to do


class TestLifecycle:
    def test_a_deleted_repository_leaves_orphans_that_are_listed_then_deleted(
        self, workdir: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        history(workdir, capsys)
        code, data = run_json(capsys, "delete-repo", "--repo", REPO, "--json")
        assert code == EXIT_OK
        assert data == {
            "repo": REPO,
            "commits": 2,
            "snapshots": 2,
            "branch_heads": 1,
            "objects": 2,
            "released_objects": 2,
        }
        assert run(capsys, "log", "--repo", REPO)[1] == f"{REPO} has no commits\n"

        pushes = sorted(content_id((workdir / n).read_bytes()) for n in ("one.mpack", "two.mpack"))
        code, listed = run_json(capsys, "orphans", "--min-age", "0", "--json")
        assert code == EXIT_OK
        assert listed["deleted"] is False
        assert [m["mpack_id"] for m in listed["mpacks"]] == pushes

        code, out, _ = run(capsys, "orphans", "--min-age", "0", "--delete")
        assert code == EXIT_OK
        assert "2 push mpack(s)" in out
        assert "deleted" in out
        assert run_json(capsys, "orphans", "--min-age", "0", "--json")[1]["mpacks"] == []

    def test_by_default_a_fresh_upload_is_not_an_orphan(
        self, workdir: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        history(workdir, capsys)
        run(capsys, "delete-repo", "--repo", REPO)
        _, out, _ = run(capsys, "orphans", "--delete")
        assert out.splitlines() == ["0 push mpack(s), 0.0 MB, deleted"]

    def test_a_negative_minimum_age_is_a_usage_error(
        self, workdir: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        code, _, err = run(capsys, "orphans", "--min-age", "-1")
        assert code == EXIT_USAGE
        assert "min_age_s" in err


@pytest.fixture
def postgres_scratch() -> Iterator[str]:
    """A new, empty PostgreSQL database whose URL carries a password (trust auth ignores it)."""
    server = server_url()
    name = f"fetchcore_cli_{uuid.uuid4().hex[:12]}"
    asyncio.run(create_database(server, name))
    try:
        yield server.set(database=name, password=PASSWORD).render_as_string(hide_password=False)
    finally:
        asyncio.run(admin(server, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.mark.postgres
@pytest.mark.s3
def test_the_demo_runs_on_postgres_and_s3_creating_schema_and_bucket_and_runs_again(
    workdir: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    postgres_scratch: str,
    s3_endpoint: S3Endpoint,
) -> None:
    monkeypatch.setenv("FETCHCORE_S3_ACCESS_KEY", s3_endpoint.access_key_id)
    monkeypatch.setenv("FETCHCORE_S3_SECRET_KEY", s3_endpoint.secret_access_key)
    bucket = f"fetchcore-demo-{uuid.uuid4().hex[:12]}"
    store = f"s3://{bucket}/demo?endpoint={s3_endpoint.url}&region={s3_endpoint.region}"
    argv = ["--index", postgres_scratch, "--store", store, "demo", "--blobs", "60", "--pushes", "2"]

    code, first = run_json(capsys, *argv, "--json")
    assert code == EXIT_OK, first
    assert first["blob_count"] == 60
    assert first["fetch_reused"] is False
    assert first["index"] == sa.make_url(postgres_scratch).render_as_string(hide_password=True)

    code, out, err = run(capsys, *argv)
    assert code == EXIT_OK
    assert "A full fetch of 60 blobs from 2 push mpacks" in out
    assert PASSWORD not in out + err


class TestMasking:
    def test_a_url_shows_its_user_but_not_its_password(self) -> None:
        url = f"postgresql+asyncpg://hub:{PASSWORD}@db.local:5432/hub?ssl=require"
        assert masked(url) == "postgresql+asyncpg://hub:***@db.local:5432/hub?ssl=require"

    def test_a_url_without_a_password_is_shown_as_it_is(self) -> None:
        for url in ("postgresql+asyncpg://hub@db.local/hub", "s3://bucket/p", "file://x"):
            assert masked(url) == url

    def test_a_message_loses_the_password_but_keeps_everything_else(self) -> None:
        url = "postgresql+asyncpg://hub:a@db.local/hub"
        message = f"cannot connect to {url}; the server said: bad password for hub:a@db.local"
        assert scrubbed(message, [url]) == (
            "cannot connect to postgresql+asyncpg://hub:***@db.local/hub; "
            "the server said: bad password for hub:***@db.local"
        )


class TestS3Urls:
    def test_a_region_is_left_to_botocore_unless_the_url_names_one(self) -> None:
        assert parse_s3_url("s3://bucket/prefix/").region is None
        assert parse_s3_url("s3://bucket/prefix/?region=eu-west-3").region == "eu-west-3"
