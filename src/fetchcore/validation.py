"""Checks of caller-supplied arguments, shared by the entry points and the adapters.

Each raises :class:`InvalidRequestError` (a FetchError and a ValueError) before
any I/O, so a bad argument never reaches a store or a database.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from fetchcore.errors import InvalidRequestError, quote

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
MAX_REPO_ID_LENGTH = 256
"""Longest repo id, in characters, on every backend (PostgreSQL's index rows cap it)."""


def has_control_characters(text: str) -> bool:
    """Whether ``text`` holds a C0 control character or DEL (NUL included)."""
    return _CONTROL.search(text) is not None


def _is_utf8(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate
        return False
    return True


def check_repo_id(repo_id: str) -> str:
    """Return ``repo_id`` if it is a valid repository id: a non-empty string of valid
    UTF-8 without control characters, at most :data:`MAX_REPO_ID_LENGTH` characters.

    Every entry point calls this before any read or write, so every backend
    accepts exactly the same ids.
    """
    valid = (
        isinstance(repo_id, str)
        and 0 < len(repo_id) <= MAX_REPO_ID_LENGTH
        and not has_control_characters(repo_id)
        and _is_utf8(repo_id)
    )
    if not valid:
        raise InvalidRequestError(
            f"repo_id must be 1 to {MAX_REPO_ID_LENGTH} characters of valid UTF-8 without"
            f" control characters, not {quote(repo_id)}"
        )
    return repo_id


def check_ids(name: str, values: Iterable[str], *, allow_empty: bool) -> tuple[str, ...]:
    """``values`` deduplicated, if it is a collection of non-empty strings.

    A bare string is refused (``want="abc"`` is a mistake, not three commits).
    """
    if isinstance(values, str | bytes | bytearray | memoryview):
        raise InvalidRequestError(f"{name} must be a collection of ids, not a single string")
    try:
        checked = tuple(dict.fromkeys(values))
    except TypeError:  # not iterable, or holding unhashable values
        raise InvalidRequestError(
            f"{name} must be a collection of ids, not {type(values).__name__}"
        ) from None
    if not all(isinstance(value, str) and value and _is_utf8(value) for value in checked):
        raise InvalidRequestError(f"{name} must hold non-empty strings of valid UTF-8")
    if not checked and not allow_empty:
        raise InvalidRequestError(f"{name} must not be empty")
    return checked


def check_range(start: int, end: int) -> None:
    """Refuse a byte range that is not ``0 <= start <= end`` (both ints)."""
    valid = type(start) is int and type(end) is int and 0 <= start <= end
    if not valid:
        raise InvalidRequestError(f"bad byte range [{start!r}, {end!r})")
