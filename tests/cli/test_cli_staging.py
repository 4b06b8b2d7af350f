"""``fetchcore sweep-staging``: what crashed ingests staged is removed, on a file store and
on S3; a running ingest (younger than the minimum age) is left alone."""

from __future__ import annotations

import asyncio
import json
import uuid
from pathlib import Path

import pytest
from fetchcore.adapters.cli import EXIT_OK, EXIT_USAGE, main
from fetchcore.adapters.filesystem import FilesystemObjectStore

from fetchcore import ObjectStore
from tests.backends import staged_push_leftovers
from tests.cli.test_cli import run
from tests.s3_support import BUCKET, connect, delete_prefix
from tests.seaweed import S3Endpoint

STAGED = bytes(range(256)) * (9 * 1024 * 4)  # 9 MiB: past a multipart part on S3
DEFAULT_STORE = Path(".fetchcore", "store")


async def _crash_mid_push(store: ObjectStore) -> int:
    """Stage a push and walk away from it, as a crashed ingest does; returns what it left."""
    upload = await store.open_push()
    await upload.write(STAGED)
    await asyncio.sleep(0.2)  # let its parts reach the store
    return len(await staged_push_leftovers(store))


def _sweep_json(capsys: pytest.CaptureFixture[str], *argv: str) -> dict[str, object]:
    code, out, err = run(capsys, "sweep-staging", *argv, "--json")
    assert code == EXIT_OK, err
    answer: dict[str, object] = json.loads(out)
    return answer


class TestOnTheDefaultFileStore:
    def test_a_crashed_push_is_swept_once(
        self, workdir: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        store = FilesystemObjectStore(DEFAULT_STORE)
        assert asyncio.run(_crash_mid_push(store)) == 1
        assert _sweep_json(capsys, "--min-age", "0") == {
            "store": f"file://{DEFAULT_STORE}",
            "min_age_s": 0.0,
            "removed": 1,
        }
        assert asyncio.run(staged_push_leftovers(store)) == []
        assert _sweep_json(capsys, "--min-age", "0")["removed"] == 0

    def test_by_default_young_staging_is_left_alone(
        self, workdir: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        store = FilesystemObjectStore(DEFAULT_STORE)
        asyncio.run(_crash_mid_push(store))
        code, out, _ = run(capsys, "sweep-staging")
        assert code == EXIT_OK
        assert out.startswith("0 staged push(es) or incomplete upload(s) removed")
        assert "86,400 s ago" in out
        assert len(asyncio.run(staged_push_leftovers(store))) == 1

    def test_a_negative_minimum_age_is_a_usage_error(
        self, workdir: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        code, _, err = run(capsys, "sweep-staging", "--min-age", "-1")
        assert code == EXIT_USAGE
        assert "min_age_s" in err

    def test_the_help_shows_the_default_age(self, capsys: pytest.CaptureFixture[str]) -> None:
        with pytest.raises(SystemExit):
            main(["sweep-staging", "--help"])
        assert "(default: 86400)" in capsys.readouterr().out


@pytest.mark.s3
def test_a_crashed_push_on_s3_is_swept(
    workdir: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    s3_endpoint: S3Endpoint,
) -> None:
    monkeypatch.setenv("FETCHCORE_S3_ACCESS_KEY", s3_endpoint.access_key_id)
    monkeypatch.setenv("FETCHCORE_S3_SECRET_KEY", s3_endpoint.secret_access_key)
    prefix = f"test-{uuid.uuid4().hex}"
    url = f"s3://{BUCKET}/{prefix}?endpoint={s3_endpoint.url}&region={s3_endpoint.region}"

    async def crash() -> int:
        # Nothing held in memory: the crashed push has begun its staging upload.
        async with connect(
            s3_endpoint, prefix=prefix, create_bucket=True, push_buffer_bytes=0
        ) as store:
            return await _crash_mid_push(store)

    async def leftovers_then_clean_up() -> list[str]:
        async with connect(s3_endpoint, prefix=prefix) as store:
            left = await staged_push_leftovers(store)
            await delete_prefix(store)
            return left

    assert asyncio.run(crash()) == 1  # one incomplete multipart upload under staging/
    try:
        assert _sweep_json(capsys, "--store", url, "--min-age", "0")["removed"] == 1
    finally:
        assert asyncio.run(leftovers_then_clean_up()) == []
