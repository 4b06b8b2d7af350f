"""Index round trips of a fetch: SQL statements for 1,000 vs 25,000 blobs (constant, not per blob).

    python -m benchmarks.round_trips --stack production

Counts every statement the SQL index sends while serve_fetch runs (SQLAlchemy's
``before_cursor_execute`` event), and times the index lookups of the fetch.
"""

from __future__ import annotations

import argparse
import asyncio
from typing import Any

from fetchcore.adapters.recording import RecordingIndexRepo
from fetchcore.adapters.sql import SqlIndexRepo

from benchmarks.common import REPO, ingest_repository, write_results
from benchmarks.stacks import STACKS, open_stack
from fetchcore import serve_fetch


async def measure(stack: str, blob_count: int) -> dict[str, Any]:
    async with open_stack(stack) as (index, store):
        if not isinstance(index, SqlIndexRepo):
            raise SystemExit(f"the {stack} stack has no SQL index to count statements of")
        repository = await ingest_repository(index, store, blob_count=blob_count, legacy_keys=False)
        recording = RecordingIndexRepo(index)
        with index.statements() as statements:
            result = await serve_fetch(recording, store, repo_id=REPO, want=[repository.head])
    return {
        "blobs": result.blob_count,
        "sql_statements": len(statements),
        "statement_kinds": sorted({statement.split(None, 1)[0] for statement in statements}),
        "index_calls": [call.method for call in recording.calls],
    }


async def measure_all(stack: str, sizes: list[int]) -> list[dict[str, Any]]:
    runs = []
    for size in sizes:
        runs.append(await measure(stack, size))
        print(
            f"{stack}: fetch of {runs[-1]['blobs']:,} blobs -> {runs[-1]['sql_statements']} SQL "
            f"statements, {len(runs[-1]['index_calls'])} index calls",
            flush=True,
        )
    return runs


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--stack", choices=sorted(STACKS), default="production")
    parser.add_argument("--blobs", type=int, nargs="+", default=[1_000, 25_000])
    args = parser.parse_args()
    runs = asyncio.run(measure_all(args.stack, args.blobs))
    write_results(f"round_trips_{args.stack}", {"stack": args.stack, "runs": runs})


if __name__ == "__main__":
    main()
