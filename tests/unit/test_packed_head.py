"""The document head: kept packed while small, packed again as it is written when large."""

from __future__ import annotations

import pytest

import fetchcore.fetch as fetch_module
from fetchcore import Commit, Snapshot, wire
from fetchcore.testing import blob_id, fake_id

COMMITS = [Commit(fake_id("c0"), fake_id("s0"), ())]


def snapshot(entries: int) -> Snapshot:
    return Snapshot(fake_id("s0"), {f"f{i}": blob_id(str(i).encode()) for i in range(entries)})


class TestPackedHead:
    def test_a_head_at_the_limit_is_kept_and_one_over_it_is_not(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setattr(fetch_module, "KEPT_HEAD_ENTRIES", 10)
        at_limit = fetch_module._PackedHead.of(COMMITS, [snapshot(9)])
        over = fetch_module._PackedHead.of(COMMITS, [snapshot(10)])
        assert at_limit.kept is not None
        assert over.kept is None

    def test_kept_or_packed_again_the_pieces_are_the_same_bytes(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        kept = fetch_module._PackedHead.of(COMMITS, [snapshot(50)])
        monkeypatch.setattr(fetch_module, "KEPT_HEAD_ENTRIES", 0)
        again = fetch_module._PackedHead.of(COMMITS, [snapshot(50)])
        assert kept.kept is not None
        assert again.kept is None
        joined = [b"".join(pieces) for pieces in kept.pieces()]
        assert [b"".join(pieces) for pieces in again.pieces()] == joined
        assert joined == [
            b"".join(wire.pack_commits(COMMITS)),
            b"".join(wire.pack_snapshots([snapshot(50)])),
        ]
