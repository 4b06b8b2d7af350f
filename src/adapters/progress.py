"""Progress bars for the command line: a bar on a terminal, nothing when piped.

:func:`terminal_progress` hands the CLI a
:data:`~fetchcore.observe.ProgressCallback` to pass to ``serve_fetch`` (or
``None`` when no bar should be drawn, so the fetch does no progress work at
all). The bar is drawn with rich on ``stream`` (stderr by default), refreshed
only when the throttled callback lets a call through.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TextIO

import attrs
from rich.console import Console
from rich.progress import BarColumn, TaskID, TaskProgressColumn, TextColumn, TimeElapsedColumn
from rich.progress import Progress as RichProgress

from fetchcore.observe import Progress, ProgressCallback, ThrottledProgress

_UNITS = ("B", "kB", "MB", "GB", "TB")


def human_bytes(count: int) -> str:
    """``count`` bytes in decimal units: ``512 B``, ``12.3 MB``."""
    if count < 1000:
        return f"{count} B"
    size = float(count)
    for unit in _UNITS[1:-1]:
        size /= 1000
        if size < 1000:
            return f"{size:.1f} {unit}"
    return f"{size / 1000:.1f} {_UNITS[-1]}"


def describe(progress: Progress) -> str:
    """The text beside the bar: ``1,250/25,000 blobs · 4.0 MB/80.0 MB``, or only the
    bytes when there are no blobs to count (``4.0 MB/80.0 MB``: a push being read)."""
    blobs = f"{progress.blobs_done:,}/{progress.blobs_total:,} blobs"
    if progress.bytes_total <= 0:
        return blobs
    size = f"{human_bytes(progress.bytes_done)}/{human_bytes(progress.bytes_total)}"
    return size if progress.blobs_total == 0 else f"{blobs} · {size}"


def should_draw(stream: TextIO, stdout: TextIO | None = None) -> bool:
    """Draw only when both the output and the bar's stream are terminals.

    Piped or redirected output (``--json | jq``, a CI log) gets no bar, and
    neither does a stream redirected to a file.
    """
    stdout = sys.stdout if stdout is None else stdout
    return stdout.isatty() and stream.isatty()


@attrs.define
class _Bar:
    """One rich bar, moved by :class:`Progress` values."""

    rich: RichProgress
    task: TaskID

    def __call__(self, progress: Progress) -> None:
        self.rich.update(
            self.task,
            completed=progress.fraction * 1000,
            detail=describe(progress),
        )
        self.rich.refresh()


@contextmanager
def terminal_progress(
    label: str, *, stream: TextIO | None = None, enabled: bool | None = None
) -> Iterator[ProgressCallback | None]:
    """A progress callback that draws a bar labelled ``label``, or ``None``.

    Args:
        label: what the bar is for (``"fetch"``).
        stream: where the bar is drawn; default: stderr.
        enabled: draw or not; default: :func:`should_draw`.

    Yields:
        A throttled callback drawing the bar, or ``None`` when not drawing.
    """
    stream = sys.stderr if stream is None else stream
    if not (should_draw(stream) if enabled is None else enabled):
        yield None
        return
    console = Console(file=stream, force_terminal=True)
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        TaskProgressColumn(),
        TextColumn("{task.fields[detail]}"),
        TimeElapsedColumn(),
    )
    with RichProgress(*columns, console=console, auto_refresh=False) as rich:
        task = rich.add_task(label, total=1000, detail="")
        yield ThrottledProgress(_Bar(rich, task))
