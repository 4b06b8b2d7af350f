"""The README's results table: every SPEC §6 figure, from benchmarks/results/*.json.

python -m benchmarks.table            # print it
python -m benchmarks.table --readme   # and write it into README.md between its markers
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from benchmarks.common import RESULTS

README = Path(__file__).parent.parent / "README.md"
START, END = "<!-- results:start -->", "<!-- results:end -->"
MB = 1_000_000


def load(name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((RESULTS / f"{name}.json").read_text())
    return loaded


def verdict(holds: bool) -> str:
    return "met" if holds else "**missed**"


def _median(row: dict[str, Any]) -> float:
    """The median of a timing (older result files have only the best run)."""
    return float(row.get("median_s", row["best_s"]))


def fetch_rows() -> list[tuple[str, str, str, str]]:
    runs = {run["blobs"]: run for run in load("fetch_production")["runs"]}
    run = runs[25_000]
    fc, seq, par = run["fetchcore"], run["per_object_sequential"], run["per_object_32_in_flight"]
    floor = _median(run["raw_io_floor"])
    rows = [
        (
            "25,000-blob fetch vs one GET per blob, sequential (medians)",
            "≥ 20×",
            f"{_median(seq) / _median(fc):.1f}× ({_median(fc):.2f} s vs {_median(seq):.1f} s)",
            verdict(_median(seq) / _median(fc) >= 20),
        ),
        (
            "… vs one GET per blob, 32 in flight",
            "≥ 10×",
            f"{_median(par) / _median(fc):.1f}× (vs {_median(par):.1f} s)",
            verdict(_median(par) / _median(fc) >= 10),
        ),
        (
            "… fresh, vs the raw I/O floor (GET covering mpacks + PUT the document)",
            "≤ 1.3×",
            f"{_median(fc) / floor:.2f}× (floor {floor:.2f} s)",
            verdict(_median(fc) / floor <= 1.3),
        ),
        (
            "storage requests of that dense fetch",
            "one per covering mpack",
            f"{fc['requests']} for {run['pushes']} mpacks",
            verdict(fc["requests"] == run["pushes"]),
        ),
    ]
    repeated, concurrent = run.get("fetchcore_repeated"), run.get("fetchcore_8_concurrent")
    if repeated is not None and concurrent is not None:
        together = _median(concurrent) / _median(fc)
        rows += [
            (
                "… repeated (the stored document reused, the hub's FetchMemo), vs the floor",
                "≤ 0.05×",
                f"{_median(repeated) / floor:.3f}× ({_median(repeated):.3f} s)",
                verdict(_median(repeated) / floor <= 0.05),
            ),
            (
                "8 identical 25,000-blob fetches at once, vs one",
                "≤ 1.3×, one set of mpack reads",
                f"{together:.2f}×, {concurrent['push_mpack_reads_per_round']:.0f} mpack reads",
                verdict(
                    together <= 1.3
                    and concurrent["push_mpack_reads_per_round"] <= concurrent["one_fetch_requests"]
                ),
            ),
        ]
    return rows


def other_rows() -> list[tuple[str, str, str, str]]:
    sparse, ingest, planner = load("sparse_production"), load("ingest_production"), load("planner")
    trips, memory = load("round_trips_production"), load("memory_peak")
    dense = {row["needed"]: row for row in planner["runs"] if row["layout"] == "dense"}
    statements = {run["sql_statements"] for run in trips["runs"]}
    counts = " and ".join(f"{run['blobs']:,}" for run in trips["runs"])
    return [
        (
            "sparse fetch (1% of a 64 MiB mpack): bytes read / needed",
            "≤ 2×",
            f"{sparse['read_over_needed']:.2f}× in {sparse['range_gets']} ranged GETs",
            verdict(sparse["read_over_needed"] <= 2),
        ),
        (
            "ingest of a 25,000-blob push, PostgreSQL + S3",
            "≤ 2 s",
            f"{ingest['ingest_push']['best_s']:.2f} s (old per-object job: "
            f"{ingest['old_per_object_job']['best_s']:.1f} s)",
            verdict(ingest["ingest_push"]["best_s"] <= 2),
        ),
        (
            "planner, 1,000,000 blobs over 1,000 mpacks",
            "≤ 2 s",
            f"{dense[1_000_000]['seconds']:.2f} s",
            verdict(dense[1_000_000]["seconds"] <= 2),
        ),
        (
            "planner time per blob, 10k → 1M",
            "within 1.5×",
            f"{planner['per_blob_spread']['dense']:.2f}× ({dense[10_000]['us_per_blob']:.2f} → "
            f"{dense[1_000_000]['us_per_blob']:.2f} µs; a bare dict lookup: "
            f"{dense[10_000]['dict_lookup_us_per_blob']:.2f} → "
            f"{dense[1_000_000]['dict_lookup_us_per_blob']:.2f} µs)",
            verdict(planner["per_blob_spread"]["dense"] <= 1.5),
        ),
        (
            "index round trips of a fetch",
            "constant",
            f"{'/'.join(str(s) for s in sorted(statements))} SQL statements for {counts} blobs",
            verdict(len(statements) == 1),
        ),
        _memory_row(memory),
        *ingest_stream_rows(),
    ]


def ingest_stream_rows() -> list[tuple[str, str, str, str]]:
    """The streamed ingest (issue 13), where benchmarks/ingest_stream.py has run."""
    if not (RESULTS / "ingest_stream.json").exists():
        return []
    figures = load("ingest_stream")
    rows = []
    if (large := figures.get("large")) is not None:
        size = f"{large['push_bytes'] / (1 << 30):.1f} GiB"
        streamed, bare = large["streamed_ingest"], large["bare_multipart_put_and_copy"]
        rows += [
            (
                f"peak RSS of a {size} streamed push above the process's baseline",
                "≤ 256 MiB",
                f"{large['peak_rss_over_baseline'] / (1 << 20):.0f} MiB",
                verdict(large["memory_target_met"]),
            ),
            (
                f"{size} streamed push vs a multipart PUT + one server-side copy (medians)",
                "≤ 1.3×",
                f"{large['streamed_over_bare_median']:.2f}× ({streamed['median_s']:.1f} s "
                f"vs {bare['median_s']:.1f} s)",
                verdict(large["time_target_met"]),
            ),
        ]
    if (small := figures.get("small")) is not None:
        streamed, whole = small["streamed"], small["bytes"]
        rows.append(
            (
                f"ingest of a {small['blobs']:,}-blob push streamed in 1 MiB chunks vs as bytes, "
                "PostgreSQL + S3 (medians)",
                "≤ 1×",
                f"{small['streamed_over_bytes_median']:.2f}× ({streamed['median_s']:.2f} s "
                f"vs {whole['median_s']:.2f} s)",
                verdict(small["target_met"]),
            )
        )
    return rows


def _memory_row(memory: dict[str, Any]) -> tuple[str, str, str, str]:
    if "peak_over_baseline" not in memory:  # a result file from before issue 10
        return (
            "peak memory of the 25,000-blob fetch",
            "≤ 3× mpack + 100 MB",
            f"{memory['peak_rss'] / MB:.0f} MB, whole process",
            verdict(memory["within_budget"]),
        )
    return (
        f"peak RSS of a {memory['blobs']:,}-blob fetch above the process's baseline",
        "≤ 256 MiB",
        f"{memory['peak_over_baseline'] / (1 << 20):.0f} MiB "
        f"({memory['fetch_mpack_bytes'] / (1 << 20):,.0f} MiB document)",
        verdict(memory["within_budget"]),
    )


def _scaling_row(run: dict[str, Any]) -> str:
    fetchcore, floor = run["fetchcore"], run["raw_io_floor"]
    return (
        f"| {run['blobs']:,} | {fetchcore['best_s']:.2f} s | {fetchcore['requests']} "
        f"| {run['per_object_sequential']['best_s']:.1f} s "
        f"| {run['per_object_32_in_flight']['best_s']:.1f} s | {floor['best_s']:.2f} s |"
    )


def scaling_table() -> list[str]:
    runs = load("fetch_production")["runs"]
    lines = [
        "| blobs | fetchcore | requests | one GET per blob | 32 in flight | raw I/O floor |",
        "| ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    lines += [_scaling_row(run) for run in sorted(runs, key=lambda r: r["blobs"])]
    return lines


def table() -> str:
    lines = ["| SPEC §6 figure | target | measured | |", "| --- | --- | --- | --- |"]
    lines += [f"| {a} | {b} | {c} | {d} |" for a, b, c, d in fetch_rows() + other_rows()]
    date = load("fetch_production")["date"][:10]
    lines += ["", f"Full fetches on PostgreSQL + S3 ({date}, best of the runs):", ""]
    return "\n".join([*lines, *scaling_table()])


def write_into_readme(text: str) -> None:
    readme = README.read_text()
    before, rest = readme.split(START, 1)
    _, after = rest.split(END, 1)
    README.write_text(f"{before}{START}\n{text}\n{END}{after}")


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--readme", action="store_true", help="write the table into README.md")
    text = table()
    if parser.parse_args().readme:
        write_into_readme(text)
    print(text)


if __name__ == "__main__":
    main()
