"""The README's code runs as written, and every name it points to exists.

Each ```python block of README.md runs as a script of its own (``python -``),
with the services of the test session in the environment variables the README
documents: ``FETCHCORE_PG_URL`` (a fresh database on the test server) and
``FETCHCORE_S3_ENDPOINT`` (the session's S3 server), S3 credentials in botocore's
``AWS_*`` variables. The Alembic recipe is also run against PostgreSQL through
Alembic's autogenerate comparison.
"""

from __future__ import annotations

import asyncio
import importlib
import os
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import attrs
import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from fetchcore.adapters.sql import upgrade_schema
from fetchcore.adapters.sql.schema import metadata as fetchcore_metadata
from sqlalchemy.ext.asyncio import create_async_engine

from tests.pg_support import scratch_database
from tests.seaweed import S3Endpoint

README = Path(__file__).resolve().parents[1] / "README.md"
_BLOCK = re.compile(r"^```python\n(.*?)^```$", re.S | re.M)
_DOTTED_NAME = re.compile(r"`(fetchcore(?:\.[A-Za-z_]\w*)+)`")
_TOOLKIT_NAME = re.compile(r"`toolkit\.([A-Za-z_]\w*)`")


@attrs.frozen
class Block:
    line: int
    code: str


def python_blocks(text: str) -> list[Block]:
    """Every ```python block of ``text``, with the line it starts on."""
    return [Block(text.count("\n", 0, m.start()) + 1, m.group(1)) for m in _BLOCK.finditer(text)]


BLOCKS = python_blocks(README.read_text(encoding="utf-8"))


def test_the_collector_finds_the_hub_example_and_the_alembic_recipe() -> None:
    assert len(BLOCKS) >= 2
    assert any("async def lifespan" in block.code for block in BLOCKS)
    assert any("def include_object" in block.code for block in BLOCKS)


def test_the_collector_reads_blocks_as_written() -> None:
    text = "intro\n```python\nx = 1\n\ny = 2\n```\n```sh\nls\n```\n```python\nz = 3\n```\n"
    assert python_blocks(text) == [Block(2, "x = 1\n\ny = 2\n"), Block(10, "z = 3\n")]


@pytest.mark.postgres
@pytest.mark.s3
@pytest.mark.parametrize("block", BLOCKS, ids=[f"line-{block.line}" for block in BLOCKS])
async def test_each_python_block_runs_as_written(
    block: Block, s3_endpoint: S3Endpoint, tmp_path: Path
) -> None:
    async with scratch_database() as pg_url:
        environment = {
            **os.environ,
            "FETCHCORE_PG_URL": pg_url,
            "FETCHCORE_S3_ENDPOINT": s3_endpoint.url,
            "AWS_ACCESS_KEY_ID": s3_endpoint.access_key_id,
            "AWS_SECRET_ACCESS_KEY": s3_endpoint.secret_access_key,
            "AWS_DEFAULT_REGION": s3_endpoint.region,
        }
        ran = await asyncio.to_thread(
            subprocess.run,
            [sys.executable, "-"],
            input=block.code,
            cwd=tmp_path,
            env=environment,
            capture_output=True,
            text=True,
            timeout=120,
        )
    assert ran.returncode == 0, f"README.md line {block.line}:\n{ran.stderr[-3000:]}"


def _resolves(dotted: str) -> bool:
    """Whether ``dotted`` names a module, or an attribute of one, that exists."""
    parts = dotted.split(".")
    for split in range(len(parts), 0, -1):
        try:
            found: Any = importlib.import_module(".".join(parts[:split]))
        except ModuleNotFoundError:
            continue
        for attribute in parts[split:]:
            if not hasattr(found, attribute):
                return False
            found = getattr(found, attribute)
        return True
    return False


def test_every_fetchcore_name_the_readme_points_to_exists() -> None:
    text = README.read_text(encoding="utf-8")
    names = set(_DOTTED_NAME.findall(text)) | {
        f"fetchcore.toolkit.{name}" for name in _TOOLKIT_NAME.findall(text)
    }
    assert len(names) > 10
    assert sorted(name for name in names if not _resolves(name)) == []


# ── the Alembic include_object recipe ────────────────────────────────────────


def readme_include_object() -> Callable[..., bool]:
    (recipe,) = [block for block in BLOCKS if "def include_object" in block.code]
    namespace: dict[str, Any] = {}
    exec(compile(recipe.code, f"README.md:{recipe.line}", "exec"), namespace)
    include_object: Callable[..., bool] = namespace["include_object"]
    return include_object


def hub_models() -> sa.MetaData:
    """A hub's own models: one table with an index, already in the database."""
    models = sa.MetaData()
    sa.Table(
        "hub_repos",
        models,
        sa.Column("repo_id", sa.Text, primary_key=True),
        sa.Column("owner", sa.Text, index=True),
    )
    return models


async def autogenerate_diff(
    url: str, models: sa.MetaData, include_object: Callable[..., bool] | None
) -> list[Any]:
    """What ``alembic revision --autogenerate`` of the hub would propose."""
    options = {"include_object": include_object} if include_object else {}
    engine = create_async_engine(url)
    try:
        async with engine.connect() as conn:
            return await conn.run_sync(
                lambda sync: compare_metadata(
                    MigrationContext.configure(sync, opts=options), models
                )
            )
    finally:
        await engine.dispose()


@pytest.mark.postgres
class TestTheAlembicRecipe:
    async def test_autogenerate_leaves_the_fetchcore_tables_alone(self) -> None:
        async with scratch_database() as url:
            await upgrade_schema(url)
            models = hub_models()
            engine = create_async_engine(url)
            async with engine.begin() as conn:
                await conn.run_sync(models.create_all)
            await engine.dispose()

            unfiltered = await autogenerate_diff(url, models, None)
            filtered = await autogenerate_diff(url, models, readme_include_object())

        dropped = {diff[1].name for diff in unfiltered if diff[0] == "remove_table"}
        assert dropped == {*fetchcore_metadata.tables, "fetchcore_alembic_version"}
        assert filtered == []

    async def test_the_hubs_own_changes_are_still_proposed(self) -> None:
        async with scratch_database() as url:
            await upgrade_schema(url)
            models = hub_models()
            sa.Table("hub_stars", models, sa.Column("repo_id", sa.Text, primary_key=True))
            filtered = await autogenerate_diff(url, models, readme_include_object())
        added = sorted(diff[1].name for diff in filtered if diff[0] == "add_table")
        assert added == ["hub_repos", "hub_stars"]
