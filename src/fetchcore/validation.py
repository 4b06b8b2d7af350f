"""Checks of caller-supplied arguments, shared by the entry points and the adapters.

Each raises :class:`InvalidRequestError` (a FetchError and a ValueError) before
any I/O, so a bad argument never reaches a store or a database.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from fetchcore.errors import InvalidRequestError

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def has_control_characters(text: str) -> bool:
    """Whether ``text`` holds a C0 control character or DEL (NUL included)."""
    return _CONTROL.search(text) is not None


def check_repo_id(repo_id: str) -> str:
    """Return ``repo_id`` if it is a non-empty string without control characters."""
    if not isinstance(repo_id, str) or not repo_id or has_control_characters(repo_id):
        raise InvalidRequestError(
            f"repo_id must be a non-empty string without control characters, not {repo_id!r:.80}"
        )
    return repo_id


def check_ids(name: str, values: Iterable[str], *, allow_empty: bool) -> tuple[str, ...]:
    """``values`` deduplicated, if it is a collection of non-empty strings.

    A bare string is refused (``want="abc"`` is a mistake, not three commits).
    """
    if isinstance(values, str | bytes):
        raise InvalidRequestError(f"{name} must be a collection of ids, not a single string")
    checked = tuple(dict.fromkeys(values))
    if not all(isinstance(value, str) and value for value in checked):
        raise InvalidRequestError(f"{name} must hold non-empty strings")
    if not checked and not allow_empty:
        raise InvalidRequestError(f"{name} must not be empty")
    return checked


def check_range(start: int, end: int) -> None:
    """Refuse a byte range that is not ``0 <= start <= end`` (both ints)."""
    valid = type(start) is int and type(end) is int and 0 <= start <= end
    if not valid:
        raise InvalidRequestError(f"bad byte range [{start!r}, {end!r})")
