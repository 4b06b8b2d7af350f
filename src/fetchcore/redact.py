"""Keeping secrets out of logs and telemetry.

A presigned URL is a bearer credential until it expires: its query string
(``X-Amz-Signature``, ``X-Amz-Credential``, ``Signature``, tokens) grants
access, and so does a password in a URL's user part. These helpers drop the
query string and the password of every URL, keeping what an operator needs to
tell requests apart: the scheme, the host and the path.
"""

from __future__ import annotations

import re
from urllib.parse import SplitResult, urlsplit, urlunsplit

REDACTED = "REDACTED"

# A URL inside free text: a scheme, "://", then anything up to whitespace or a quote.
_URL_IN_TEXT = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^\s'\"<>]+")


def _without_password(parts: SplitResult) -> str:
    netloc = parts.netloc
    if "@" not in netloc:
        return netloc
    user_info, _, host = netloc.rpartition("@")
    user = user_info.split(":", 1)[0]
    return f"{user}:{REDACTED}@{host}" if ":" in user_info else netloc


def redact_url(url: str) -> str:
    """``url`` without its query string, fragment or password.

    Args:
        url: any URL, e.g. a presigned S3 URL or a database URL.

    Returns:
        The URL with ``?...`` replaced by ``?REDACTED`` (when there was one), the
        fragment dropped, and ``user:password@`` turned into ``user:REDACTED@``.
    """
    try:
        parts = urlsplit(url)
    except ValueError:
        return REDACTED
    query = REDACTED if parts.query else ""
    return urlunsplit((parts.scheme, _without_password(parts), parts.path, query, ""))


def redact_urls(text: str) -> str:
    """``text`` with every URL in it redacted by :func:`redact_url`."""
    return _URL_IN_TEXT.sub(lambda match: redact_url(match.group(0)), text)
