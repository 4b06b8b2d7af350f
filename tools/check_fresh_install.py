"""The release check: build the wheel, install it in a fresh venv, run the README's hub example.

    python tools/check_fresh_install.py [--pg-url URL] [--s3-endpoint URL]

PostgreSQL: the server at ``--pg-url`` (default ``FETCHCORE_PG_URL``, else the
test server at 127.0.0.1:5432); the example runs in a database created for the
check and dropped afterwards. S3: ``--s3-endpoint`` (default
``FETCHCORE_S3_ENDPOINT``, credentials from ``AWS_*``), else a SeaweedFS started
on loopback for the check (needs the repository's test extra). The example runs
from a directory outside the checkout, so only the installed wheel is imported.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import secrets
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_PG_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/test"


def hub_example() -> str:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    blocks = re.findall(r"^```python\n(.*?)^```$", readme, re.S | re.M)
    (example,) = [str(block) for block in blocks if "async def lifespan" in block]
    return example


def run(*arguments: str, **options: object) -> None:
    print("+", " ".join(arguments), flush=True)
    subprocess.run(arguments, check=True, **options)  # type: ignore[call-overload]


def build_and_install(work: Path) -> Path:
    run(sys.executable, "-m", "pip", "wheel", str(ROOT), "--no-deps", "-q", "-w", str(work))
    (wheel,) = work.glob("fetchcore-*.whl")
    run(sys.executable, "-m", "venv", str(work / "venv"))
    python = work / "venv" / "bin" / "python"
    run(str(python), "-m", "pip", "install", "-q", f"{wheel}[sql,s3]")
    return python


async def _admin(server_url: str, statement: str) -> None:
    import asyncpg
    import sqlalchemy as sa

    dsn = sa.make_url(server_url).set(drivername="postgresql")
    connection = await asyncpg.connect(dsn.render_as_string(hide_password=False), timeout=10)
    try:
        await connection.execute(statement)
    finally:
        await connection.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pg-url", default=os.environ.get("FETCHCORE_PG_URL", DEFAULT_PG_URL))
    parser.add_argument("--s3-endpoint", default=os.environ.get("FETCHCORE_S3_ENDPOINT"))
    args = parser.parse_args()
    import sqlalchemy as sa

    database = f"fetchcore_wheelcheck_{secrets.token_hex(4)}"
    environment = dict(os.environ)
    with tempfile.TemporaryDirectory() as scratch:
        work = Path(scratch)
        python = build_and_install(work)
        seaweed = None
        if args.s3_endpoint is None:
            sys.path.insert(0, str(ROOT))
            from tests.seaweed import start_seaweed

            seaweed = start_seaweed(work / "seaweedfs")
            endpoint = seaweed.endpoint
            environment.update(
                AWS_ACCESS_KEY_ID=endpoint.access_key_id,
                AWS_SECRET_ACCESS_KEY=endpoint.secret_access_key,
                AWS_DEFAULT_REGION=endpoint.region,
            )
            args.s3_endpoint = endpoint.url
        asyncio.run(_admin(args.pg_url, f'CREATE DATABASE "{database}"'))
        try:
            environment["FETCHCORE_PG_URL"] = (
                sa.make_url(args.pg_url)
                .set(database=database)
                .render_as_string(hide_password=False)
            )
            environment["FETCHCORE_S3_ENDPOINT"] = args.s3_endpoint
            example = work / "hub_example.py"
            example.write_text(hub_example(), encoding="utf-8")
            run(str(python), str(example), cwd=work, env=environment)
        finally:
            asyncio.run(_admin(args.pg_url, f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)'))
            if seaweed is not None:
                seaweed.stop()
    print("the wheel installs and runs the README's hub example")
    return 0


if __name__ == "__main__":
    sys.exit(main())
