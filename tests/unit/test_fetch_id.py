"""The fetch id: a content id of what a fetch sends, computed before any read."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import attrs
import pytest

from fetchcore import Commit, Snapshot, ids, wire
from fetchcore.fetch_id import content_digest, fetch_id
from fetchcore.testing import blob_id, fake_id

A, B = blob_id(b"a"), blob_id(b"b")
BASE: dict[str, Any] = {
    "commits": [
        Commit(fake_id("c0"), fake_id("s0"), ()),
        Commit(fake_id("c1"), fake_id("s1"), (fake_id("c0"),)),
    ],
    "snapshots": [Snapshot(fake_id("s0"), {"a": A}), Snapshot(fake_id("s1"), {"a": A, "b": B})],
    "branch_heads": {"main": fake_id("c1")},
    "blob_ids": [A, B],
    "accept_encodings": ["identity"],
}


def id_of(**changes: Any) -> str:
    arguments = {**BASE, **changes}
    return fetch_id(**arguments)


def test_the_same_content_gives_the_same_id() -> None:
    assert id_of() == id_of(commits=list(BASE["commits"]), blob_ids=tuple(BASE["blob_ids"]))


def test_the_id_is_a_well_formed_sha256_id() -> None:
    assert ids.is_mpack_id(id_of())


CHANGES: dict[str, Callable[[], dict[str, Any]]] = {
    "a commit's message": lambda: {
        "commits": [BASE["commits"][0], attrs.evolve(BASE["commits"][1], fields={"m": "x"})]
    },
    "a commit's parents": lambda: {
        "commits": [BASE["commits"][0], attrs.evolve(BASE["commits"][1], parent_ids=())]
    },
    "one commit fewer": lambda: {"commits": BASE["commits"][1:]},
    "a snapshot's manifest": lambda: {
        "snapshots": [BASE["snapshots"][0], Snapshot(fake_id("s1"), {"a": A, "c": B})]
    },
    "a branch head": lambda: {"branch_heads": {"main": fake_id("c0")}},
    "another branch": lambda: {"branch_heads": {**BASE["branch_heads"], "dev": fake_id("c0")}},
    "a blob id": lambda: {"blob_ids": [A, blob_id(b"c")]},
    "a blob id spelled bare": lambda: {"blob_ids": [A, blob_id(b"b", bare=True)]},
    "one blob fewer": lambda: {"blob_ids": [A]},
    "accepting zstd": lambda: {"accept_encodings": ["identity", "zstd"]},
}


@pytest.mark.parametrize("change", sorted(CHANGES))
def test_any_difference_in_content_gives_another_id(change: str) -> None:
    assert id_of(**CHANGES[change]()) != id_of()


def test_the_order_of_snapshots_blob_ids_and_encodings_does_not_matter() -> None:
    reordered = id_of(
        snapshots=BASE["snapshots"][::-1],
        blob_ids=BASE["blob_ids"][::-1],
        accept_encodings=["zstd", "identity"],
    )
    assert reordered == id_of(accept_encodings=["identity", "zstd"])


def test_the_order_of_branch_heads_does_not_matter() -> None:
    heads = {"main": fake_id("c1"), "dev": fake_id("c0")}
    assert id_of(branch_heads=heads) == id_of(branch_heads=dict(reversed(heads.items())))


class TestContentDigest:
    def test_finished_with_the_heads_it_is_the_fetch_id(self) -> None:
        digest = content_digest(
            wire.pack_commits(BASE["commits"]),
            wire.pack_snapshots(BASE["snapshots"]),
            BASE["blob_ids"],
            BASE["accept_encodings"],
        )
        assert digest.fetch_id(BASE["branch_heads"]) == id_of()

    def test_finishing_leaves_the_digest_as_it_was(self) -> None:
        digest = content_digest(
            wire.pack_commits(BASE["commits"]),
            wire.pack_snapshots(BASE["snapshots"]),
            [],
            ["identity"],
        )
        moved = {"main": fake_id("c0")}
        first = digest.fetch_id(BASE["branch_heads"])
        assert digest.fetch_id(moved) != first
        assert digest.fetch_id(BASE["branch_heads"]) == first
