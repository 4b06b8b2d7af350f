"""The index and store URLs a person types: checked before anything connects, masked when shown.

A typo must not become a silent surprise: an endpoint without a scheme, an
unknown ``s3://`` or SQLite URL parameter (a misspelled ``endpont=`` would
otherwise go to AWS and hang), or a SQLite file that does not exist (it would
otherwise be created empty) are refused with one line that says what to write.
Passwords never appear in what these URLs turn into for people to read.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from urllib.parse import parse_qs, urlsplit, urlunsplit

import attrs

from fetchcore.errors import InvalidRequestError

S3_PARAMETERS = ("endpoint", "region")
"""What an ``s3://BUCKET/PREFIX?…`` URL may say; credentials come from the environment."""

_MASK = "***"


def masked(url: str) -> str:
    """``url`` with its password (if any) replaced by ``***``."""
    try:
        parts = urlsplit(url)
        password = parts.password
    except ValueError:
        return url
    if not password:
        return url
    host = parts.netloc.rsplit("@", 1)[1]
    user = parts.username or ""
    return urlunsplit(parts._replace(netloc=f"{user}:{_MASK}@{host}"))


def scrubbed(message: str, urls: list[str]) -> str:
    """``message`` with each of ``urls`` masked, and each of their passwords hidden
    wherever it follows a ``:`` and precedes an ``@`` (as a driver may echo it)."""
    for url in urls:
        try:
            password = urlsplit(url).password
        except ValueError:
            continue
        if password:
            message = message.replace(url, masked(url))
            message = message.replace(f":{password}@", f":{_MASK}@")
    return message


@attrs.frozen
class S3Location:
    """Where an ``s3://`` store URL points."""

    bucket: str
    prefix: str
    endpoint: str | None
    region: str | None
    """None: botocore's usual sources (AWS_DEFAULT_REGION, the profile)."""


def parse_s3_url(url: str) -> S3Location:
    """The parts of ``s3://BUCKET/PREFIX?endpoint=URL&region=R``.

    Raises:
        InvalidRequestError: no bucket, an unknown parameter, or an endpoint
            without a scheme (``127.0.0.1:8333`` instead of ``http://127.0.0.1:8333``).
    """
    parts = urlsplit(url)
    if parts.scheme != "s3" or not parts.netloc:
        raise InvalidRequestError(
            f"unknown store URL {masked(url)}: use file://PATH or s3://BUCKET/PREFIX"
        )
    query = {key: values[-1] for key, values in parse_qs(parts.query).items()}
    _refuse_unknown_parameters(url, query, S3_PARAMETERS)
    endpoint = query.get("endpoint")
    if endpoint is not None and urlsplit(endpoint).scheme not in ("http", "https"):
        raise InvalidRequestError(
            f"the S3 endpoint {endpoint!r} has no scheme: write http://{endpoint} or https://…"
        )
    return S3Location(parts.netloc, parts.path.lstrip("/"), endpoint, query.get("region"))


def sqlite_database(url: str) -> str | None:
    """The file a SQLite URL names ('' for an in-memory database), or None if not SQLite.

    Raises:
        InvalidRequestError: the URL carries parameters (none is supported).
    """
    scheme, separator, rest = url.partition("://")
    if not separator or not scheme.startswith("sqlite"):
        return None
    database, _, query = rest.partition("?")
    if query:
        _refuse_unknown_parameters(url, parse_qs(query, keep_blank_values=True), ())
    return database.removeprefix("/")


def check_index_url(url: str, *, create: bool) -> None:
    """Refuse an index URL that would surprise: see the module docstring.

    Args:
        url: the index URL.
        create: whether a SQLite file that does not exist may be created.

    Raises:
        InvalidRequestError: an unknown parameter, or a missing SQLite file without ``create``.
    """
    database = sqlite_database(url)
    if not database or database == ":memory:" or create:
        return
    if not Path(database).is_file():
        raise InvalidRequestError(
            f"no SQLite index at {database}: check the path, or pass --create to make a new one"
        )


def _refuse_unknown_parameters(
    url: str, query: Mapping[str, object], known: tuple[str, ...]
) -> None:
    unknown = sorted(set(query) - set(known))
    if unknown:
        allowed = ", ".join(known) if known else "none"
        raise InvalidRequestError(
            f"unknown parameter(s) {', '.join(unknown)} in {masked(url)} (allowed: {allowed})"
        )
