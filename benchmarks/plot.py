"""Draw the fetch benchmark: time vs blob count, log-log, one line per method.

    python -m benchmarks.plot --stack production
    python -m benchmarks.plot --sweep

Reads benchmarks/results/fetch_<stack>.json, writes benchmarks/results/fetch_<stack>.png;
with ``--sweep``, fetch_sweep.json (benchmarks.fetch_sweep) to fetch_sweep.png.
"""

from __future__ import annotations

import argparse
import json

import matplotlib

matplotlib.use("Agg")  # no screen needed
import matplotlib.pyplot as plt
from matplotlib.ticker import FuncFormatter

from benchmarks.common import RESULTS

MIB = 1 << 20
TITLES = {"production": "PostgreSQL + S3 (SeaweedFS)", "embedded": "SQLite + a local directory"}
METHODS = [
    ("per_object_sequential", "one GET per blob, sequential", "tab:red", "s"),
    ("per_object_32_in_flight", "one GET per blob, 32 in flight", "tab:orange", "^"),
    ("fetchcore", "fetchcore", "tab:blue", "o"),
    ("raw_io_floor", "raw I/O floor (GET mpacks + PUT output)", "tab:gray", "x"),
]


def plot(stack: str) -> str:
    results = json.loads((RESULTS / f"fetch_{stack}.json").read_text())
    runs = sorted(results["runs"], key=lambda run: run["blobs"])
    blobs = [run["blobs"] for run in runs]
    figure, axes = plt.subplots(figsize=(7, 4.5))
    for key, label, color, marker in METHODS:
        axes.plot(
            blobs, [run[key]["best_s"] for run in runs], marker=marker, color=color, label=label
        )
    axes.set_xscale("log")
    axes.set_yscale("log")
    axes.set_xlabel("blobs in the fetch (4 KiB each, zstd, 4 push mpacks)")
    axes.set_ylabel("seconds (best of the runs)")
    axes.set_title(f"A full fetch on {TITLES.get(stack, stack)} ({results['date'][:10]})")
    axes.grid(True, which="both", alpha=0.3)
    axes.legend()
    figure.tight_layout()
    path = RESULTS / f"fetch_{stack}.png"
    figure.savefig(path, dpi=110)
    return str(path)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--stack", default="production")
    parser.add_argument("--sweep", action="store_true", help="draw fetch_sweep.json instead")
    args = parser.parse_args()
    print(plot_sweep() if args.sweep else plot(args.stack))


if __name__ == "__main__":
    main()


def plot_sweep() -> str:
    """Draw benchmarks/results/fetch_sweep.json: peak RSS and time per GiB against the
    document's size, one line per blob size; returns the PNG's path."""
    results = json.loads((RESULTS / "fetch_sweep.json").read_text())
    figure, (memory, speed) = plt.subplots(1, 2, figsize=(11, 4.5))
    for (name, points), color in zip(
        results["series"].items(), ["tab:blue", "tab:green"], strict=False
    ):
        points = sorted(points, key=lambda point: point["fetch_mpack_bytes"])
        sizes = [point["fetch_mpack_bytes"] / MIB for point in points]
        memory.plot(
            sizes, [p["peak_over_baseline"] / MIB for p in points], "o-", color=color, label=name
        )
        speed.plot(sizes, [p["seconds_per_gib"] for p in points], "o-", color=color, label=name)
        for size, point in zip(sizes, points, strict=True):
            memory.annotate(
                f"{point['blobs']:,}", (size, point["peak_over_baseline"] / MIB), fontsize=7
            )
    memory.axhline(256, color="tab:red", linestyle="--", label="target: 256 MiB")
    for axes, label in (
        (memory, "peak RSS above baseline (MiB)"),
        (speed, "seconds per GiB of document"),
    ):
        axes.set_xscale("log")
        axes.xaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
        axes.set_xlabel("fetch document (MiB; points labelled with blob count)")
        axes.set_ylabel(label)
        axes.grid(True, which="both", alpha=0.3)
        axes.legend()
    figure.suptitle(f"A full fetch against its size, memory stack ({results['date'][:10]})")
    figure.tight_layout()
    path = RESULTS / "fetch_sweep.png"
    figure.savefig(path, dpi=110)
    return str(path)
