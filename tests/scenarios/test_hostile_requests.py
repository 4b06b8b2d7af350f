"""want/have of the wrong type are a FetchError (InvalidRequestError), on the memory stack."""

from __future__ import annotations

from typing import Any

import pytest
from fetchcore.adapters.memory import MemoryIndexRepo, MemoryObjectStore

from fetchcore import InvalidRequestError, UnknownCommitError, preview_fetch, serve_fetch

NOT_COLLECTIONS = {"None": None, "int": 42, "object": object(), "bytes": b"c1", "str": "c1"}


@pytest.mark.parametrize("value", NOT_COLLECTIONS.values(), ids=NOT_COLLECTIONS.keys())
@pytest.mark.parametrize("name", ["want", "have"])
async def test_want_or_have_that_is_not_a_collection_is_an_invalid_request(
    name: str, value: Any
) -> None:
    arguments = {"want": ["c1"], "have": [], name: value}
    with pytest.raises(InvalidRequestError, match=name):
        await serve_fetch(MemoryIndexRepo(), MemoryObjectStore(), repo_id="r", **arguments)
    with pytest.raises(InvalidRequestError, match=name):
        await preview_fetch(MemoryIndexRepo(), repo_id="r", **arguments)


async def test_an_unknown_commit_error_is_one_short_line_whatever_the_ids() -> None:
    hostile = ["x" * 1_000_000, "two\nlines", "\x1b[2Jclear", *(f"c{i}" for i in range(1000))]
    with pytest.raises(UnknownCommitError) as raised:
        await serve_fetch(MemoryIndexRepo(), MemoryObjectStore(), repo_id="r", want=hostile)
    message = str(raised.value)
    assert len(message) < 400
    assert not any(char in message for char in "\n\r\x1b")
    assert set(raised.value.commit_ids) == set(hostile)
