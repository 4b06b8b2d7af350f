"""Peak memory and time of a full fetch against its size, on the memory stack.

    python -m benchmarks.fetch_sweep                       # the default sweep, a few minutes
    python -m benchmarks.fetch_sweep --small 1000 10000 --large 16

Each point runs in a fresh child process (``benchmarks.memory_peak``'s in-process
measurement: ingest into the in-memory adapters, reset the peak RSS, serve one
full fetch into an upload that discards its bytes), so no point inherits another's
heap. Two series: many small blobs (2 KiB: 1k ... 1M blobs, up to 2 GiB) and few
large ones (4 MiB: up to 512 blobs, 2 GiB). Writes
benchmarks/results/fetch_sweep.json and draws benchmarks/results/fetch_sweep.png.

Target (issue 10): peak RSS above the baseline <= 256 MiB whatever the size;
time per byte of a 2 GiB fetch within 1.3x of the 25,000-blob fetch's.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
from typing import Any

from benchmarks.common import write_results
from benchmarks.memory_peak import MiB, in_process
from benchmarks.plot import plot_sweep

SMALL_BLOB = 2 * 1024
LARGE_BLOB = 4 * MiB
DEFAULT_SMALL = [1_000, 10_000, 100_000, 1_000_000]
DEFAULT_LARGE = [16, 64, 256, 512]


def measure_point(blobs: int, blob_size: int) -> dict[str, Any]:
    """One fetch of ``blobs`` blobs of ``blob_size`` bytes, in a child process."""
    completed = subprocess.run(
        [sys.executable, "-m", "benchmarks.fetch_sweep", "--point", str(blobs), str(blob_size)],
        capture_output=True,
        text=True,
        check=True,
    )
    figures: dict[str, Any] = json.loads(completed.stdout.strip().splitlines()[-1])
    return figures


def sweep(small: list[int], large: list[int]) -> dict[str, Any]:
    series: dict[str, list[dict[str, Any]]] = {"2 KiB blobs": [], "4 MiB blobs": []}
    for name, counts, size in (
        ("2 KiB blobs", small, SMALL_BLOB),
        ("4 MiB blobs", large, LARGE_BLOB),
    ):
        for count in counts:
            point = measure_point(count, size)
            series[name].append(point)
            print(
                f"{name}: {count:>9,} blobs, {point['fetch_mpack_bytes'] / MiB:7.0f} MiB document: "
                f"peak {point['peak_over_baseline'] / MiB:5.0f} MiB above baseline, "
                f"{point['seconds']:6.2f} s ({point['seconds_per_gib']:.1f} s/GiB)",
                flush=True,
            )
    return {"stack": "memory", "series": series}


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--small", type=int, nargs="*", default=DEFAULT_SMALL)
    parser.add_argument("--large", type=int, nargs="*", default=DEFAULT_LARGE)
    parser.add_argument(
        "--point", nargs=2, type=int, metavar=("BLOBS", "SIZE"), help=argparse.SUPPRESS
    )
    args = parser.parse_args()
    if args.point:
        print(json.dumps(asyncio.run(in_process(*args.point))))
        return
    write_results("fetch_sweep", sweep(args.small, args.large))
    print(plot_sweep())


if __name__ == "__main__":
    main()
