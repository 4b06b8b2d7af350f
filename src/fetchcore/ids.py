"""Content ids: parsing, canonical form and verification.

An object id is ``sha256:`` + 64 lowercase hex digits, or the bare 64 digits;
both name the same object. Inside fetchcore (the index, the planner) every
object id is in canonical form, ``sha256:<hex>``; whatever leaves fetchcore uses
the id as the manifest wrote it. An mpack id is always ``sha256:<hex>`` of the
mpack's bytes.
"""

from __future__ import annotations

import hashlib
import re

from fetchcore.errors import InvalidRequestError

PREFIX = "sha256:"
_DIGEST = re.compile(r"[0-9a-f]{64}")
_PREFIXED = re.compile(r"sha256:[0-9a-f]{64}")


def digest_of(object_id: str) -> str | None:
    """The 64-digit hex digest an object id names, or None if it is not a content id."""
    digest = object_id.removeprefix(PREFIX)
    return digest if _DIGEST.fullmatch(digest) else None


def is_object_id(object_id: object) -> bool:
    """Whether ``object_id`` is a well-formed content id (either spelling)."""
    return isinstance(object_id, str) and digest_of(object_id) is not None


def canonical(object_id: str) -> str:
    """The canonical spelling ``sha256:<hex>`` of an object id.

    Raises:
        InvalidRequestError: the id is not a well-formed content id.
    """
    if not isinstance(object_id, str):
        raise InvalidRequestError(f"not a content id: {object_id!r:.100}")
    if _PREFIXED.fullmatch(object_id):
        return object_id
    if _DIGEST.fullmatch(object_id):
        return PREFIX + object_id
    raise InvalidRequestError(f"not a content id: {object_id!r:.100}")


def is_mpack_id(mpack_id: object) -> bool:
    """Whether ``mpack_id`` is ``sha256:<hex>``."""
    return isinstance(mpack_id, str) and _PREFIXED.fullmatch(mpack_id) is not None


def check_mpack_id(mpack_id: str) -> str:
    """Return ``mpack_id`` if it is ``sha256:<hex>``.

    Raises:
        InvalidRequestError: it is not.
    """
    if not is_mpack_id(mpack_id):
        raise InvalidRequestError(f"not an mpack id: {mpack_id!r:.100}")
    return mpack_id


def content_id(data: bytes | bytearray | memoryview) -> str:
    """The canonical content id of ``data``: ``sha256:`` + its hex digest."""
    return PREFIX + hashlib.sha256(data).hexdigest()


def matches(object_id: str, content: bytes | bytearray | memoryview) -> bool:
    """Whether ``content`` hashes to the digest that ``object_id`` names."""
    # A hexdigest is always 64 lowercase hex digits, so equality alone proves the
    # id well formed: no separate validation on this hot path.
    return object_id.removeprefix(PREFIX) == hashlib.sha256(content).hexdigest()
