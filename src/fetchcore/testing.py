"""Builders of push documents and synthetic histories, for tests, benchmarks and the demo.

Everything here is deterministic for a given seed, so a benchmark or a failing
test can be reproduced exactly.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from typing import Any

import attrs
import zstandard

from fetchcore import ids, wire


def blob_id(content: bytes, *, bare: bool = False) -> str:
    """The object id of ``content``: ``sha256:<hex>`` (or the bare hex)."""
    object_id = ids.content_id(content)
    return object_id.removeprefix(ids.PREFIX) if bare else object_id


def blob_entry(
    content: bytes, *, encoding: str = "identity", object_id: str | None = None
) -> dict[str, Any]:
    """A push-mpack blob entry holding ``content`` stored with ``encoding``."""
    entry: dict[str, Any] = {"object_id": object_id or blob_id(content)}
    if encoding == "zstd":
        entry["encoding"] = "zstd"
        entry["content"] = zstandard.ZstdCompressor().compress(content)
    else:
        entry["content"] = content
    return entry


def commit_entry(
    commit_id: str, snapshot_id: str, parents: Sequence[str] = (), **fields: Any
) -> dict[str, Any]:
    """A commit dict with ``parent_ids`` and any extra fields."""
    return {
        "commit_id": commit_id,
        "snapshot_id": snapshot_id,
        "parent_ids": list(parents),
        **fields,
    }


def snapshot_entry(snapshot_id: str, manifest: Mapping[str, str], **fields: Any) -> dict[str, Any]:
    """A snapshot dict with its manifest (path -> object id) and any extra fields."""
    return {"snapshot_id": snapshot_id, "manifest": dict(manifest), **fields}


def fake_id(seed: str) -> str:
    """A well-formed content id derived from a label (for commits, snapshots, ghost mpacks)."""
    return blob_id(seed.encode())


def synthetic_content(rng: random.Random, size: int, index: int) -> bytes:
    """``size`` bytes, unique per ``index``, about half random (so zstd gains about 2x)."""
    header = index.to_bytes(8, "big")
    random_part = rng.randbytes(max(0, size // 2 - len(header)))
    return (header + random_part).ljust(size, b"\0")[:size]


@attrs.frozen
class SyntheticPush:
    """One push of a synthetic history: its document and what it adds."""

    data: bytes
    commit_id: str
    snapshot_id: str
    blobs: Mapping[str, bytes]


def synthetic_history(
    *,
    blob_count: int = 25_000,
    pushes: int = 4,
    blob_size: int = 4096,
    encoding: str = "zstd",
    seed: int = 0,
    branch: str = "main",
) -> list[SyntheticPush]:
    """A linear history whose last commit's snapshot holds ``blob_count`` blobs.

    Push ``i`` adds one commit and about ``blob_count / pushes`` new blobs; each
    snapshot's manifest holds every blob so far, so a full fetch of the last
    commit needs every blob, spread over all the push mpacks.
    """
    rng = random.Random(seed)
    manifest: dict[str, str] = {}
    history: list[SyntheticPush] = []
    parent: list[str] = []
    bounds = [blob_count * i // pushes for i in range(pushes + 1)]
    for push_index in range(pushes):
        added = {}
        for index in range(bounds[push_index], bounds[push_index + 1]):
            content = synthetic_content(rng, blob_size, index)
            added[blob_id(content)] = content
            manifest[f"files/{index:07d}.dat"] = blob_id(content)
        snapshot_id = fake_id(f"snapshot-{seed}-{push_index}")
        commit_id = fake_id(f"commit-{seed}-{push_index}")
        data = wire.encode_push(
            commits=[commit_entry(commit_id, snapshot_id, parent, message=f"push {push_index}")],
            snapshots=[snapshot_entry(snapshot_id, manifest)],
            blobs=[blob_entry(content, encoding=encoding) for content in added.values()],
            branch_heads={branch: commit_id},
        )
        history.append(SyntheticPush(data, commit_id, snapshot_id, added))
        parent = [commit_id]
    return history
