"""Content decoded in pieces agrees with content.decode (same digest, or refused), in
bounded memory."""

from __future__ import annotations

import hashlib
import tracemalloc

import pytest
import zstandard
from hypothesis import given, settings
from hypothesis import strategies as st

from fetchcore.content import ContentError, OverLimitError, decode
from fetchcore.content_stream import ContentStream


def decoded_whole(stored: bytes, encoding: str, max_bytes: int) -> tuple[str, int] | str:
    try:
        content = decode(stored, encoding, max_bytes)
    except ContentError:  # over the limit too (which check comes first may differ)
        return "refused"
    return hashlib.sha256(content).hexdigest(), len(content)


def decoded_in_pieces(
    stored: bytes, encoding: str, max_bytes: int, size: int
) -> tuple[str, int] | str:
    try:
        stream = ContentStream(encoding, len(stored), max_bytes)
        for start in range(0, len(stored), size):
            stream.feed(stored[start : start + size])
        digest, decoded, _ = stream.finish()
    except ContentError:  # over the limit too (which check comes first may differ)
        return "refused"
    return digest, decoded


def frame(content: bytes, *, sized: bool = True, checksum: bool = True) -> bytes:
    compressor = zstandard.ZstdCompressor(write_content_size=sized, write_checksum=checksum)
    return compressor.compress(content)


contents = st.binary(max_size=2000) | st.builds(lambda n: b"ab" * n, st.integers(0, 200_000))


class TestAgreement:
    @settings(max_examples=200)
    @given(
        contents,
        st.booleans(),
        st.booleans(),
        st.sampled_from(["none", "truncate", "append", "second frame", "flip"]),
        st.integers(1, 5000),
        st.integers(0, 500_000),
    )
    def test_zstd_content_decodes_or_fails_as_it_does_whole(
        self,
        content: bytes,
        sized: bool,
        checksum: bool,
        damage: str,
        size: int,
        max_bytes: int,
    ) -> None:
        stored = frame(content, sized=sized, checksum=checksum)
        if damage == "truncate":
            stored = stored[: len(stored) // 2]
        elif damage == "append":
            stored += b"\x00"
        elif damage == "second frame":
            stored += frame(b"more")
        elif damage == "flip":
            middle = len(stored) // 2
            stored = stored[:middle] + bytes([stored[middle] ^ 0x40]) + stored[middle + 1 :]
        expected = decoded_whole(stored, "zstd", max_bytes)
        assert decoded_in_pieces(stored, "zstd", max_bytes, size) == expected

    @given(st.binary(max_size=3000), st.integers(1, 500), st.integers(0, 4000))
    def test_identity_content_is_hashed_as_it_is(
        self, content: bytes, size: int, max_bytes: int
    ) -> None:
        expected = decoded_whole(content, "identity", max_bytes)
        assert decoded_in_pieces(content, "identity", max_bytes, size) == expected


class TestBoundedMemory:
    def test_a_frame_that_declares_nothing_is_cut_off_at_the_limit(self) -> None:
        bomb = frame(bytes(64 << 20), sized=False)  # 64 MiB of zeros in a few KiB
        stream = ContentStream("zstd", len(bomb), 1 << 20)
        tracemalloc.start()
        try:
            with pytest.raises(OverLimitError):
                stream.feed(bomb)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert peak < 4 << 20

    def test_content_is_kept_only_while_it_fits(self) -> None:
        small, large = b"x" * 100, b"y" * 10_000
        for content, kept in ((small, small), (large, None)):
            stream = ContentStream("zstd", len(stored := frame(content)), 1 << 20, keep_up_to=1000)
            stream.feed(stored)
            assert stream.finish()[2] == kept
