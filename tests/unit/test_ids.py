"""Content ids: both spellings name one object; anything else is refused."""

from __future__ import annotations

import hashlib

import pytest

from fetchcore import InvalidRequestError, ids

HEX = hashlib.sha256(b"x").hexdigest()


class TestCanonical:
    def test_both_spellings_have_one_canonical_form(self) -> None:
        assert ids.canonical(HEX) == ids.canonical("sha256:" + HEX) == "sha256:" + HEX

    @pytest.mark.parametrize(
        "bad",
        ["", HEX[:-1], HEX + "0", HEX.upper(), "sha256:" + HEX.upper(), "sha1:" + HEX, " " + HEX],
    )
    def test_anything_else_is_refused(self, bad: str) -> None:
        assert not ids.is_object_id(bad)
        with pytest.raises(InvalidRequestError):
            ids.canonical(bad)

    def test_non_strings_are_not_ids(self) -> None:
        assert not ids.is_object_id(None)
        assert not ids.is_object_id(HEX.encode())
        with pytest.raises(InvalidRequestError):
            ids.canonical(HEX.encode())  # type: ignore[arg-type]


class TestMpackIds:
    def test_an_mpack_id_is_the_prefixed_digest_of_its_bytes(self) -> None:
        assert ids.content_id(b"x") == "sha256:" + HEX
        assert ids.check_mpack_id("sha256:" + HEX) == "sha256:" + HEX

    def test_a_bare_digest_is_not_an_mpack_id(self) -> None:
        with pytest.raises(InvalidRequestError):
            ids.check_mpack_id(HEX)


class TestMatches:
    def test_content_matches_its_id_in_either_spelling(self) -> None:
        assert ids.matches(HEX, b"x")
        assert ids.matches("sha256:" + HEX, memoryview(b"x"))

    def test_other_content_does_not_match(self) -> None:
        assert not ids.matches(HEX, b"y")
