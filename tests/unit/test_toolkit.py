"""The adapter writer's toolkit: every helper is importable from where the docs say it is."""

from __future__ import annotations

import importlib

import pytest

import fetchcore
import fetchcore.toolkit

# name -> the module that defines it (the toolkit re-exports it unchanged)
HOMES = {
    "commits_to_send": "fetchcore.graph",
    "ancestors_or_self": "fetchcore.graph",
    "parents_first": "fetchcore.graph",
    "canonical": "fetchcore.ids",
    "check_mpack_id": "fetchcore.ids",
    "content_id": "fetchcore.ids",
    "is_object_id": "fetchcore.ids",
    "is_mpack_id": "fetchcore.ids",
    "check_range": "fetchcore.validation",
    "check_repo_id": "fetchcore.validation",
    "check_record": "fetchcore.model",
    "IndexBatch": "fetchcore.model",
    "FetchIndex": "fetchcore.ports",
    "IngestIndex": "fetchcore.ports",
    "FetchStore": "fetchcore.ports",
    "RangedReads": "fetchcore.ports",
    "PushStore": "fetchcore.ports",
    "FetchUpload": "fetchcore.ports",
    "PushUpload": "fetchcore.ports",
    "StagedPushes": "fetchcore.ports",
    "allows_concurrent_calls": "fetchcore.ports",
    "ObjectStoreError": "fetchcore.errors",
    "IndexRepoError": "fetchcore.errors",
}

WRAPPERS = ["ObjectStoreWrapper", "IndexRepoWrapper"]


@pytest.mark.parametrize("name", sorted(HOMES))
def test_each_helper_is_the_same_object_in_the_toolkit_and_its_home(name: str) -> None:
    home = importlib.import_module(HOMES[name])
    assert getattr(fetchcore.toolkit, name) is getattr(home, name)
    assert name in fetchcore.toolkit.__all__


def test_the_toolkit_exports_exactly_what_it_names() -> None:
    for name in fetchcore.toolkit.__all__:
        assert hasattr(fetchcore.toolkit, name), name


def test_the_toolkit_documents_every_helper_it_exports() -> None:
    doc = fetchcore.toolkit.__doc__ or ""
    undocumented = [n for n in HOMES if n != "IndexBatch" and n not in doc]
    assert undocumented == []


@pytest.mark.parametrize("name", WRAPPERS)
def test_the_port_wrappers_are_public_where_the_toolkit_says(name: str) -> None:
    from fetchcore.adapters import wrapping

    assert callable(getattr(wrapping, name))
    assert f"fetchcore.adapters.wrapping.{name}" in (fetchcore.toolkit.__doc__ or "")


@pytest.mark.parametrize(
    "name",
    [
        "FetchIndex",
        "IngestIndex",
        "FetchStore",
        "RangedReads",
        "PushStore",
        "FetchUpload",
        "PushUpload",
        "StagedPushes",
    ],
)
def test_the_port_halves_are_exported_from_the_package(name: str) -> None:
    assert getattr(fetchcore, name) is getattr(fetchcore.toolkit, name)
    assert name in fetchcore.__all__
