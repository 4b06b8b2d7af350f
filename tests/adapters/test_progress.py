"""The command line's progress bar: drawn on a terminal, nothing when piped."""

from __future__ import annotations

import io

from fetchcore.adapters.progress import describe, human_bytes, should_draw, terminal_progress

from fetchcore.observe import Progress


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_on_a_terminal_the_bar_shows_blobs_and_bytes_done() -> None:
    screen = _Terminal()
    with terminal_progress("fetch", stream=screen, enabled=True) as progress:
        assert progress is not None
        progress(Progress(12_500, 25_000, 40_000_000, 80_000_000))
        progress(Progress(25_000, 25_000, 80_000_000, 80_000_000))
    drawn = screen.getvalue()
    assert "fetch" in drawn
    assert "12,500/25,000 blobs · 40.0 MB/80.0 MB" in drawn
    assert "25,000/25,000 blobs · 80.0 MB/80.0 MB" in drawn
    assert "100%" in drawn


def test_when_not_drawing_there_is_no_callback_and_nothing_is_written() -> None:
    screen = _Terminal()
    with terminal_progress("fetch", stream=screen, enabled=False) as progress:
        assert progress is None
    assert screen.getvalue() == ""


def test_by_default_a_piped_stream_gets_no_bar() -> None:
    piped = io.StringIO()
    with terminal_progress("fetch", stream=piped) as progress:
        assert progress is None
    assert piped.getvalue() == ""


def test_a_bar_is_drawn_only_when_output_and_stream_are_both_terminals() -> None:
    assert should_draw(_Terminal(), stdout=_Terminal())
    assert not should_draw(_Terminal(), stdout=io.StringIO())
    assert not should_draw(io.StringIO(), stdout=_Terminal())


def test_the_text_beside_the_bar_counts_blobs_and_bytes() -> None:
    assert describe(Progress(1_250, 25_000)) == "1,250/25,000 blobs"
    assert describe(Progress(1, 2, 999, 1_000)) == "1/2 blobs · 999 B/1.0 kB"


def test_bytes_are_shown_in_decimal_units() -> None:
    assert [human_bytes(n) for n in (0, 999, 1_000, 12_345_678, 5 * 10**15)] == [
        "0 B",
        "999 B",
        "1.0 kB",
        "12.3 MB",
        "5000.0 TB",
    ]
