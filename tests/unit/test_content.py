"""Blob decoding: verified, bounded, and never anything but ContentError on failure."""

from __future__ import annotations

import tracemalloc

import pytest
import zstandard

from fetchcore.content import ContentError, DecodeBudget, DecodeBudgetError, decode, decode_verified
from fetchcore.testing import blob_id

MiB = 1 << 20
GiB = 1 << 30


class TestIdentity:
    def test_content_that_matches_its_id_is_returned(self) -> None:
        assert decode_verified(blob_id(b"abc"), b"abc", "identity", 10) == b"abc"

    def test_content_that_does_not_match_is_refused(self) -> None:
        with pytest.raises(ContentError, match="does not match"):
            decode_verified(blob_id(b"abc"), b"abd", "identity", 10)

    def test_content_over_the_limit_is_refused(self) -> None:
        with pytest.raises(ContentError, match="over the limit"):
            decode(b"abcd", "identity", 3)

    def test_an_unknown_encoding_is_refused(self) -> None:
        with pytest.raises(ContentError, match="unknown encoding"):
            decode(b"abc", "gzip", 10)


class TestZstd:
    def test_a_sized_frame_decodes(self) -> None:
        frame = zstandard.ZstdCompressor().compress(b"hello" * 100)
        assert decode_verified(blob_id(b"hello" * 100), frame, "zstd", 1000) == b"hello" * 100

    def test_an_unsized_frame_decodes(self) -> None:
        frame = zstandard.ZstdCompressor(write_content_size=False).compress(b"hello" * 100)
        assert decode(frame, "zstd", 1000) == b"hello" * 100

    def test_a_frame_declaring_too_much_is_refused_before_allocating(self) -> None:
        frame = zstandard.ZstdCompressor().compress(bytes(64 * MiB))
        tracemalloc.start()
        try:
            with pytest.raises(ContentError, match="declares"):
                decode(frame, "zstd", MiB)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert peak < MiB

    def test_an_unsized_frame_producing_too_much_is_cut_off(self) -> None:
        frame = zstandard.ZstdCompressor(write_content_size=False).compress(bytes(64 * MiB))
        tracemalloc.start()
        try:
            with pytest.raises(ContentError, match="produces more"):
                decode(frame, "zstd", 2 * MiB)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert peak < 8 * MiB

    @pytest.mark.parametrize(
        "garbage", [b"", b"\x00" * 10, b"not zstd at all", b"\x28\xb5\x2f\xfd"]
    )
    def test_garbage_is_refused(self, garbage: bytes) -> None:
        with pytest.raises(ContentError):
            decode(garbage, "zstd", MiB)

    def test_a_damaged_frame_is_refused(self) -> None:
        frame = bytearray(zstandard.ZstdCompressor().compress(b"hello world " * 50))
        frame[len(frame) // 2] ^= 0xFF
        with pytest.raises(ContentError):
            decode_verified(blob_id(b"hello world " * 50), bytes(frame), "zstd", MiB)


class TestExactlyOneFrame:
    FRAME = zstandard.ZstdCompressor().compress(b"hello" * 100)

    @pytest.mark.parametrize(
        "stored",
        [FRAME + FRAME, FRAME + b"garbage", FRAME + b"\x00", FRAME[:-1]],
        ids=["second-frame", "garbage", "one-byte", "truncated"],
    )
    def test_anything_but_exactly_one_frame_is_refused(self, stored: bytes) -> None:
        with pytest.raises(ContentError):
            decode_verified(blob_id(b"hello" * 100), stored, "zstd", MiB)

    def test_a_frame_with_a_checksum_decodes(self) -> None:
        data = bytes(300_000) + b"tail" * 50_000
        frame = zstandard.ZstdCompressor(write_checksum=True, level=19).compress(data)
        assert decode(frame, "zstd", MiB) == data

    def test_a_frame_declaring_exactly_the_limit_is_accepted(self) -> None:
        frame = zstandard.ZstdCompressor().compress(b"x" * 1000)
        assert decode(frame, "zstd", 1000) == b"x" * 1000
        with pytest.raises(ContentError, match="declares"):
            decode(frame, "zstd", 999)


class TestDecodeBudget:
    def test_blobs_are_decoded_until_the_total_would_pass_the_limit(self) -> None:
        budget = DecodeBudget(250)
        frame = zstandard.ZstdCompressor().compress(b"x" * 100)
        budget.decode_verified(blob_id(b"x" * 100), frame, "zstd", MiB)
        budget.decode_verified(blob_id(b"x" * 100), frame, "zstd", MiB)
        with pytest.raises(DecodeBudgetError):
            budget.decode_verified(blob_id(b"x" * 100), frame, "zstd", MiB)

    def test_a_total_of_exactly_the_limit_is_accepted(self) -> None:
        budget = DecodeBudget(200)
        for _ in range(2):
            budget.decode_verified(blob_id(b"y" * 100), b"y" * 100, "identity", MiB)
        assert budget.left == 0

    def test_an_unsized_frame_is_cut_off_at_the_budget(self) -> None:
        frame = zstandard.ZstdCompressor(write_content_size=False).compress(bytes(64 * MiB))
        object_id = blob_id(bytes(64 * MiB))
        tracemalloc.start()
        try:
            with pytest.raises(DecodeBudgetError):
                DecodeBudget(2 * MiB).decode_verified(object_id, frame, "zstd", GiB)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert peak < 8 * MiB

    def test_a_blob_over_its_own_limit_is_the_blobs_fault_not_the_budgets(self) -> None:
        with pytest.raises(ContentError) as raised:
            DecodeBudget(10).decode_verified(blob_id(b"z" * 100), b"z" * 100, "identity", 50)
        assert not isinstance(raised.value, DecodeBudgetError)

    def test_content_that_needs_no_decoding_is_charged_up_to_exactly_the_limit(self) -> None:
        budget = DecodeBudget(100)
        budget.charge(60)
        budget.charge(40)
        with pytest.raises(DecodeBudgetError):
            budget.charge(1)


def with_declared_size(frame: bytes, declared: int) -> bytes:
    """``frame`` (single-segment, 2-byte size field) with its header declaring ``declared``."""
    assert frame[4] >> 5 == 0b011  # single segment, 2-byte content size field (size - 256)
    return frame[:5] + (declared - 256).to_bytes(2, "little") + frame[7:]


class TestDeclaredSize:
    FRAME = zstandard.ZstdCompressor().compress(b"x" * 1000)

    def test_the_untouched_frame_decodes(self) -> None:
        assert decode(with_declared_size(self.FRAME, 1000), "zstd", MiB) == b"x" * 1000

    @pytest.mark.parametrize("declared", [999, 1001])
    def test_a_frame_producing_other_than_it_declares_is_refused(self, declared: int) -> None:
        with pytest.raises(ContentError):
            decode(with_declared_size(self.FRAME, declared), "zstd", MiB)
