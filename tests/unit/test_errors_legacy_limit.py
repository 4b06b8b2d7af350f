"""LegacyFallbackLimitError: the storm guard's error names what is missing and what to check."""

from __future__ import annotations

from fetchcore import errors
from fetchcore.errors import FetchError, LegacyFallbackLimitError, ObjectUnavailableError
from fetchcore.testing import fake_id

MPACKS = [fake_id(f"mpack-{i}") for i in range(7)]
BLOBS = [fake_id(f"blob-{i}") for i in range(1_001)]


def storm() -> LegacyFallbackLimitError:
    return LegacyFallbackLimitError(BLOBS, [*MPACKS, MPACKS[0]], limit=1_000)


def test_it_is_an_object_unavailable_error_so_existing_handlers_catch_it() -> None:
    error = storm()
    assert isinstance(error, ObjectUnavailableError)
    assert isinstance(error, FetchError)


def test_it_carries_the_blobs_the_unreadable_mpacks_and_the_limit() -> None:
    error = storm()
    assert error.object_ids == tuple(sorted(BLOBS))
    assert error.mpack_ids == tuple(sorted(MPACKS))
    assert error.limit == 1_000


def test_the_message_counts_the_blobs_names_the_limit_and_the_likely_misconfiguration() -> None:
    message = str(storm())
    assert "1,001 blob(s)" in message
    assert "Policy.max_legacy_gets=1,000" in message
    assert "bucket and prefix" in message
    shown = errors._MAX_IDS_IN_MESSAGE
    assert message.count("sha256:") == shown
    assert f"{len(MPACKS)}: " in message
    assert f"and {len(MPACKS) - shown} more" in message
    assert "\n" not in message


def test_with_no_indexed_mpack_the_message_says_so() -> None:
    message = str(LegacyFallbackLimitError(BLOBS[:3], [], limit=2))
    assert "none is indexed" in message
