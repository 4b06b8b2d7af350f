"""Policy: every tunable has a default, and a value out of range is refused on construction."""

from __future__ import annotations

import math

import attrs
import pytest

from fetchcore import FetchError, InvalidRequestError, Policy
from fetchcore.policy import MAX_PRESIGN_TTL_S


def fields_typed(annotation: str) -> list[str]:
    return [f.name for f in attrs.fields(Policy) if str(f.type) == annotation]


INTEGER_FIELDS = fields_typed("int")
FLOAT_FIELDS = fields_typed("float")
OPTIONAL_FLOAT_FIELDS = fields_typed("float | None")
FLAG_FIELDS = fields_typed("bool")


def policy_with(name: str, value: object) -> Policy:
    return Policy(**{name: value})  # type: ignore[arg-type]


def refused(**fields: object) -> InvalidRequestError:
    with pytest.raises(InvalidRequestError) as raised:
        Policy(**fields)  # type: ignore[arg-type]
    assert isinstance(raised.value, FetchError)
    assert next(iter(fields)) in str(raised.value)
    return raised.value


def test_the_defaults_cache_nothing_and_cap_requests() -> None:
    policy = Policy()
    assert policy.cache_max_bytes == 0
    assert policy.max_in_flight == 16
    assert policy.coalesce_gap_bytes == 1 << 20
    assert policy.max_range_bytes == 16 << 20
    assert policy.max_legacy_gets == 1_000


def test_every_field_is_typed_as_an_integer_a_float_or_a_flag() -> None:
    typed = INTEGER_FIELDS + FLOAT_FIELDS + OPTIONAL_FLOAT_FIELDS + FLAG_FIELDS
    assert sorted(typed) == sorted(f.name for f in attrs.fields(Policy))
    assert FLAG_FIELDS == ["verify_each_blob"]
    assert "max_in_flight" in INTEGER_FIELDS
    assert "retry_backoff_s" in FLOAT_FIELDS
    assert OPTIONAL_FLOAT_FIELDS == ["deadline_s"]


@pytest.mark.parametrize(
    "bad",
    [
        {"max_in_flight": 0},
        {"max_read_amplification": 0.5},
        {"coalesce_gap_bytes": -1},
        {"read_attempts": 0},
        {"deadline_s": 0},
        {"deadline_s": "soon"},
        {"max_id_length": 10},
        {"max_blob_bytes": 1.5e9j},
        {"max_legacy_gets": -1},
    ],
)
def test_a_value_out_of_range_is_refused(bad: dict[str, object]) -> None:
    refused(**bad)


class TestIntegerFields:
    @pytest.mark.parametrize("name", INTEGER_FIELDS)
    def test_a_float_is_refused_even_when_whole(self, name: str) -> None:
        error = refused(**{name: float(getattr(Policy(), name))})
        assert "an integer" in str(error)

    @pytest.mark.parametrize("name", INTEGER_FIELDS)
    def test_a_fractional_float_is_refused(self, name: str) -> None:
        refused(**{name: getattr(Policy(), name) + 0.5})

    @pytest.mark.parametrize("name", INTEGER_FIELDS)
    @pytest.mark.parametrize("flag", [True, False])
    def test_a_bool_is_refused(self, name: str, flag: bool) -> None:
        refused(**{name: flag})

    @pytest.mark.parametrize("name", INTEGER_FIELDS)
    def test_the_default_is_an_int(self, name: str) -> None:
        value = getattr(Policy(), name)
        assert isinstance(value, int)
        assert not isinstance(value, bool)


class TestFloatFields:
    @pytest.mark.parametrize("name", FLOAT_FIELDS + OPTIONAL_FLOAT_FIELDS)
    @pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
    def test_nan_and_infinities_are_refused(self, name: str, value: float) -> None:
        error = refused(**{name: value})
        assert "finite" in str(error)

    @pytest.mark.parametrize("name", FLOAT_FIELDS + OPTIONAL_FLOAT_FIELDS)
    def test_a_bool_is_refused(self, name: str) -> None:
        refused(**{name: True})

    @pytest.mark.parametrize("name", FLOAT_FIELDS)
    def test_an_int_is_accepted(self, name: str) -> None:
        assert getattr(policy_with(name, 5), name) == 5


class TestLimits:
    """Exactly the limit is accepted; one step past it is refused."""

    @pytest.mark.parametrize(
        ("name", "lowest"),
        [
            ("max_in_flight", 1),
            ("coalesce_gap_bytes", 0),
            ("max_range_bytes", 1),
            ("request_cost_bytes", 0),
            ("presign_ttl_s", 1),
            ("read_attempts", 1),
            ("max_legacy_gets", 0),
            ("max_blob_bytes", 0),
            ("cache_max_bytes", 0),
            ("max_document_bytes", 1),
            ("max_entries", 1),
            ("max_manifest_entries", 1),
            ("max_id_length", 71),
            ("max_depth", 1),
        ],
    )
    def test_the_lowest_integer_is_accepted_and_one_below_refused(
        self, name: str, lowest: int
    ) -> None:
        assert getattr(policy_with(name, lowest), name) == lowest
        refused(**{name: lowest - 1})

    @pytest.mark.parametrize(
        ("name", "lowest"),
        [
            ("max_read_amplification", 1.0),
            ("retry_backoff_s", 0.0),
            ("request_timeout_s", 0.001),
            ("deadline_s", 0.001),
        ],
    )
    def test_the_lowest_float_is_accepted_and_just_below_refused(
        self, name: str, lowest: float
    ) -> None:
        assert getattr(policy_with(name, lowest), name) == lowest
        refused(**{name: math.nextafter(lowest, -math.inf)})

    def test_a_presign_ttl_of_seven_days_is_accepted_and_one_second_more_refused(self) -> None:
        assert MAX_PRESIGN_TTL_S == 604_800
        assert Policy(presign_ttl_s=604_800).presign_ttl_s == 604_800
        error = refused(presign_ttl_s=604_801)
        assert "<= 604800" in str(error)


def test_a_fetch_has_a_deadline_by_default_and_may_ask_for_none() -> None:
    assert Policy().deadline_s == 300.0
    assert Policy(deadline_s=None).deadline_s is None


@pytest.mark.parametrize("value", [0, 1, "yes", None])
def test_a_flag_takes_a_bool_only(value: object) -> None:
    refused(verify_each_blob=value)


def test_blobs_of_an_intact_mpack_are_not_hashed_one_by_one_by_default() -> None:
    assert Policy().verify_each_blob is False
    assert Policy(verify_each_blob=True).verify_each_blob is True
