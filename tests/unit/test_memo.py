"""FetchMemo: bounded, least recently used out first, entries expire."""

from __future__ import annotations

import hashlib

import pytest

from fetchcore import FetchMemo, InvalidRequestError
from fetchcore.fetch_id import ContentDigest
from fetchcore.memo import FetchKey, Resolution


def key(
    label: str, *, have: tuple[str, ...] = (), encodings: tuple[str, ...] = ("identity",)
) -> FetchKey:
    return FetchKey.of("alice/songs", [label], have, encodings)


def resolution(endpoints: bytes = b"") -> Resolution:
    return Resolution(ContentDigest(hashlib.sha256(b"x")), 1, 1, 1, endpoints)


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class TestKeys:
    def test_a_remembered_key_is_found_and_others_are_not(self) -> None:
        memo = FetchMemo()
        kept = resolution()
        memo.remember(key("a"), kept)
        assert memo.get(key("a")) is kept
        assert memo.get(key("b")) is None
        assert memo.get(key("a", have=("c",))) is None
        assert memo.get(key("a", encodings=("identity", "zstd"))) is None

    def test_the_order_of_ids_does_not_matter(self) -> None:
        memo = FetchMemo()
        memo.remember(FetchKey.of("r", ["a", "b"], ["c", "d"], ["identity", "zstd"]), resolution())
        assert memo.get(FetchKey.of("r", ["b", "a"], ["d", "c"], ["zstd", "identity"])) is not None


class TestBounds:
    def test_the_least_recently_used_entry_goes_first(self) -> None:
        memo = FetchMemo(max_entries=2)
        memo.remember(key("a"), resolution())
        memo.remember(key("b"), resolution())
        memo.get(key("a"))
        memo.remember(key("c"), resolution())
        assert [memo.get(key(label)) is None for label in "abc"] == [False, True, False]
        assert len(memo) == 2

    def test_the_byte_bound_evicts_and_an_entry_over_it_is_not_kept(self) -> None:
        one = resolution(b"x" * 1000).cost_bytes(key("a"))
        memo = FetchMemo(max_bytes=2 * one)
        for label in "abc":
            memo.remember(key(label), resolution(b"x" * 1000))
        assert [memo.get(key(label)) is None for label in "abc"] == [True, False, False]
        assert memo.size_bytes == 2 * one
        memo.remember(key("d"), resolution(b"x" * (3 * one)))
        assert memo.get(key("d")) is None
        assert memo.size_bytes == 2 * one

    def test_remembering_a_key_again_replaces_its_entry(self) -> None:
        memo = FetchMemo()
        memo.remember(key("a"), resolution(b"old"))
        newer = resolution(b"newer")
        memo.remember(key("a"), newer)
        assert memo.get(key("a")) is newer
        assert memo.size_bytes == newer.cost_bytes(key("a"))

    def test_an_entry_expires_after_its_ttl_and_not_at_it(self) -> None:
        clock = FakeClock()
        memo = FetchMemo(ttl_s=10.0, clock=clock)
        memo.remember(key("a"), resolution())
        clock.now = 10.0
        assert memo.get(key("a")) is not None
        clock.now = 10.5
        assert memo.get(key("a")) is None
        assert (len(memo), memo.size_bytes) == (0, 0)

    @pytest.mark.parametrize(
        "bad",
        [
            {"max_entries": 0},
            {"max_bytes": 0},
            {"ttl_s": 0.0},
            {"ttl_s": True},
            {"ttl_s": float("inf")},
            {"ttl_s": float("nan")},
        ],
    )
    def test_bounds_must_be_positive_and_finite(self, bad: dict[str, float]) -> None:
        with pytest.raises(InvalidRequestError):
            FetchMemo(**bad)  # type: ignore[arg-type]


class TestForgetting:
    def test_forget_drops_one_repository_only(self) -> None:
        memo = FetchMemo()
        memo.remember(FetchKey.of("r1", ["a"], [], ["identity"]), resolution())
        memo.remember(FetchKey.of("r1", ["b"], [], ["identity"]), resolution())
        memo.remember(FetchKey.of("r2", ["a"], [], ["identity"]), resolution())
        assert memo.forget("r1") == 2
        assert len(memo) == 1
        assert memo.get(FetchKey.of("r2", ["a"], [], ["identity"])) is not None

    def test_discard_and_clear(self) -> None:
        memo = FetchMemo()
        memo.remember(key("a"), resolution())
        memo.remember(key("b"), resolution())
        memo.discard(key("a"))
        assert memo.get(key("a")) is None
        memo.clear()
        assert (len(memo), memo.size_bytes) == (0, 0)
