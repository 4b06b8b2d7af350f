"""Policy: every tunable has a default, and a value out of range is refused on construction."""

from __future__ import annotations

import pytest

from fetchcore import FetchError, InvalidRequestError, Policy


def test_the_defaults_cache_nothing_and_cap_requests() -> None:
    policy = Policy()
    assert policy.cache_max_bytes == 0
    assert policy.max_in_flight == 16
    assert policy.coalesce_gap_bytes == 1 << 20
    assert policy.max_range_bytes == 16 << 20


@pytest.mark.parametrize(
    "bad",
    [
        {"max_in_flight": 0},
        {"max_in_flight": True},
        {"max_read_amplification": 0.5},
        {"coalesce_gap_bytes": -1},
        {"read_attempts": 0},
        {"deadline_s": 0},
        {"deadline_s": "soon"},
        {"max_id_length": 10},
        {"max_blob_bytes": 1.5e9j},
    ],
)
def test_a_value_out_of_range_is_refused(bad: dict[str, object]) -> None:
    with pytest.raises(InvalidRequestError) as raised:
        Policy(**bad)  # type: ignore[arg-type]
    assert isinstance(raised.value, FetchError)
    assert next(iter(bad)) in str(raised.value)


def test_no_deadline_is_the_default_and_allowed() -> None:
    assert Policy(deadline_s=None).deadline_s is None
