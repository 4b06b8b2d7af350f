"""Draw the fetch benchmark: time vs blob count, log-log, one line per method.

    python -m benchmarks.plot --stack production

Reads benchmarks/results/fetch_<stack>.json, writes benchmarks/results/fetch_<stack>.png.
"""

from __future__ import annotations

import argparse
import json

import matplotlib

matplotlib.use("Agg")  # no screen needed
import matplotlib.pyplot as plt

from benchmarks.common import RESULTS

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
    print(plot(parser.parse_args().stack))


if __name__ == "__main__":
    main()
