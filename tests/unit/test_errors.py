"""Error messages stay one short line whatever the client sent; full lists are attributes."""

from __future__ import annotations

import pytest

from fetchcore.errors import (
    FetchError,
    FetchNotIndexedError,
    FetchTooLargeError,
    InvalidMPackError,
    ObjectUnavailableError,
    UnknownCommitError,
)

HOSTILE_IDS = ["x" * 1_000_000, "line\nbreak", "\x1b[2J\x1b[31mred", "tab\there", "\r\u2028"]


def every_error_naming(ids: list[str]) -> list[FetchError]:
    return [
        UnknownCommitError(ids),
        FetchNotIndexedError(ids),
        ObjectUnavailableError(ids),
        InvalidMPackError("commits", "missing", missing_ids=ids),
        InvalidMPackError("commits", "a cycle", ids=ids),
    ]


@pytest.mark.parametrize("error", every_error_naming(HOSTILE_IDS), ids=type)
def test_a_message_is_one_short_line_without_control_characters(error: FetchError) -> None:
    message = str(error)
    assert len(message) < 400
    assert not any(ord(char) < 0x20 or char in "\x7f\u2028" for char in message)


@pytest.mark.parametrize("error", every_error_naming(HOSTILE_IDS), ids=type)
def test_a_message_counts_what_it_does_not_show(error: FetchError) -> None:
    assert "5: " in str(error)
    assert "and 2 more" in str(error)


def test_the_full_ids_stay_on_the_attributes() -> None:
    assert UnknownCommitError(HOSTILE_IDS).commit_ids == tuple(sorted(HOSTILE_IDS))
    assert ObjectUnavailableError(HOSTILE_IDS).object_ids == tuple(sorted(HOSTILE_IDS))


def test_a_few_short_ids_are_shown_in_full() -> None:
    assert str(UnknownCommitError(["a", "b"])) == "unknown commit(s): 'a', 'b'"


def test_a_fetch_over_its_decoded_limit_says_which_limit() -> None:
    error = FetchTooLargeError(1000)
    assert isinstance(error, FetchError)
    assert error.limit == 1000
    assert "1000" in str(error)


def test_a_thousand_ids_show_three_and_a_count() -> None:
    message = str(ObjectUnavailableError(f"sha256:{i:064x}" for i in range(1000)))
    assert message.count("sha256:") == 3
    assert "1000: " in message
    assert "and 997 more" in message
