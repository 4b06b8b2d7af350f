"""Commits, snapshots and batches: shape checks and verbatim round trips."""

from __future__ import annotations

from typing import Any

import pytest

from fetchcore import Commit, IndexBatch, InvalidMPackError, InvalidRequestError, Location, Snapshot
from fetchcore.testing import blob_id


class TestCommitFromWire:
    def test_every_field_travels_through_verbatim(self) -> None:
        wire = {
            "commit_id": "c",
            "snapshot_id": "s",
            "parent_ids": ["p"],
            "author": "a",
            "x": {"y": [1]},
        }
        commit = Commit.from_wire(wire)
        assert (commit.commit_id, commit.snapshot_id, commit.parent_ids) == ("c", "s", ("p",))
        assert commit.to_wire() == wire

    def test_the_two_parent_fields_are_read_when_parent_ids_is_absent(self) -> None:
        commit = Commit.from_wire(
            {
                "commit_id": "c",
                "snapshot_id": "s",
                "parent_commit_id": "p1",
                "parent2_commit_id": "p2",
            }
        )
        assert commit.parent_ids == ("p1", "p2")

    def test_null_parents_mean_none(self) -> None:
        wire = {
            "commit_id": "c",
            "snapshot_id": "s",
            "parent_commit_id": None,
            "parent2_commit_id": None,
        }
        assert Commit.from_wire(wire).parent_ids == ()

    def test_repeated_parents_are_kept_once(self) -> None:
        wire = {"commit_id": "c", "snapshot_id": "s", "parent_ids": ["p", "p"]}
        assert Commit.from_wire(wire).parent_ids == ("p",)

    def test_a_commit_built_in_code_has_a_wire_form(self) -> None:
        assert Commit("c", "s", ["p"]).to_wire() == {
            "commit_id": "c",
            "snapshot_id": "s",
            "parent_ids": ["p"],
        }

    @pytest.mark.parametrize(
        ("wire", "entry"),
        [
            ([], "commit"),
            ({"snapshot_id": "s"}, "commit.commit_id"),
            ({"commit_id": "", "snapshot_id": "s"}, "commit.commit_id"),
            ({"commit_id": 5, "snapshot_id": "s"}, "commit.commit_id"),
            ({"commit_id": "c"}, "commit.snapshot_id"),
            ({"commit_id": "c", "snapshot_id": "s", "parent_ids": "p"}, "commit.parent_ids"),
            ({"commit_id": "c", "snapshot_id": "s", "parent_ids": [None]}, "commit.parent_ids[0]"),
            (
                {"commit_id": "c", "snapshot_id": "s", "parent_commit_id": 3},
                "commit.parent_commit_id",
            ),
            ({"commit_id": "c" * 300, "snapshot_id": "s"}, "commit.commit_id"),
            ({"commit_id": "c\x00d", "snapshot_id": "s"}, "commit.commit_id"),
            ({"commit_id": "c", "snapshot_id": "s\n"}, "commit.snapshot_id"),
        ],
    )
    def test_a_malformed_commit_names_its_entry(self, wire: Any, entry: str) -> None:
        with pytest.raises(InvalidMPackError) as raised:
            Commit.from_wire(wire)
        assert raised.value.entry == entry

    def test_deep_nesting_is_refused(self) -> None:
        deep: Any = "leaf"
        for _ in range(40):
            deep = [deep]
        with pytest.raises(InvalidMPackError, match="nested deeper"):
            Commit.from_wire({"commit_id": "c", "snapshot_id": "s", "extra": deep})


class TestSnapshotFromWire:
    def test_manifest_and_fields_travel_through_verbatim(self) -> None:
        manifest = {"a.txt": blob_id(b"a"), "b.txt": blob_id(b"b", bare=True)}
        wire = {"snapshot_id": "s", "manifest": manifest, "entry_count": 2}
        snapshot = Snapshot.from_wire(wire)
        assert snapshot.manifest == manifest
        assert sorted(snapshot.object_ids) == sorted(manifest.values())
        assert snapshot.to_wire() == wire

    @pytest.mark.parametrize(
        ("wire", "entry"),
        [
            ({"manifest": {}}, "snapshot.snapshot_id"),
            ({"snapshot_id": "s"}, "snapshot.manifest"),
            ({"snapshot_id": "s", "manifest": []}, "snapshot.manifest"),
            ({"snapshot_id": "s", "manifest": {"f": "not-an-id"}}, "snapshot.manifest['f']"),
            ({"snapshot_id": "s", "manifest": {"f": 7}}, "snapshot.manifest['f']"),
        ],
    )
    def test_a_malformed_snapshot_names_its_entry(self, wire: Any, entry: str) -> None:
        with pytest.raises(InvalidMPackError) as raised:
            Snapshot.from_wire(wire)
        assert raised.value.entry == entry


class TestLocation:
    def test_the_span_is_known_only_with_offset_and_length(self) -> None:
        assert Location("m", 10, 5).span == (10, 15)
        assert Location("m").span is None
        assert Location("m", 10).span is None


class TestIndexBatch:
    def test_object_ids_are_canonicalized(self) -> None:
        content = b"x"
        batch = IndexBatch(
            locations=[(blob_id(content, bare=True), Location("m"))],
            cached=[(blob_id(content, bare=True), content)],
        )
        assert batch.locations == ((blob_id(content), Location("m")),)
        assert batch.cached == ((blob_id(content), content),)

    def test_a_malformed_object_id_is_refused(self) -> None:
        with pytest.raises(InvalidRequestError):
            IndexBatch(locations=[("nope", Location("m"))])

    def test_object_ids_cover_locations_cache_and_manifests(self) -> None:
        batch = IndexBatch(
            snapshots=[Snapshot("s", {"f": blob_id(b"1", bare=True)})],
            locations=[(blob_id(b"2"), Location("m"))],
            cached=[(blob_id(b"3"), b"3")],
        )
        assert batch.object_ids() == {blob_id(b"1"), blob_id(b"2"), blob_id(b"3")}


class TestIndexBatchCheck:
    MPACK = "sha256:" + "0" * 64

    @pytest.mark.parametrize(
        "location",
        [
            Location("not an mpack id", 0, 1),
            Location(MPACK, -1, 1),
            Location(MPACK, 0, -1),
            Location(MPACK, True, 1),
            Location(MPACK, 0.5, 1),  # type: ignore[arg-type]
            Location(MPACK, 0, 1, "gzip"),
            Location(MPACK, 0, 1, "identity", -5),
        ],
    )
    def test_a_malformed_location_is_named(self, location: Location) -> None:
        batch = IndexBatch(locations=[(blob_id(b"x"), location)])
        with pytest.raises(InvalidRequestError, match="malformed location"):
            batch.check()

    def test_cached_content_must_be_bytes(self) -> None:
        batch = IndexBatch(cached=[(blob_id(b"x"), "x")])
        with pytest.raises(InvalidRequestError, match="cached content"):
            batch.check()

    def test_a_well_formed_batch_passes(self) -> None:
        IndexBatch(
            commits=[Commit("c", "s")],
            snapshots=[Snapshot("s", {})],
            locations=[(blob_id(b"x"), Location(self.MPACK, 0, 1, "zstd", 10))],
            cached=[(blob_id(b"x"), b"x")],
            branch_heads={"main": "c"},
        ).check()

    def test_a_non_string_id_is_an_invalid_request(self) -> None:
        with pytest.raises(InvalidRequestError):
            IndexBatch(locations=[(5, Location(self.MPACK))])  # type: ignore[list-item]
