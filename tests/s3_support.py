"""The S3 server of the test session, and S3 stores for single tests.

One SeaweedFS process serves the whole session (``s3_endpoint``): it starts
once, on loopback, in its own temporary directory, and is stopped by its pid
when the session ends. ``FETCHCORE_S3_ENDPOINT`` (with
``FETCHCORE_S3_ACCESS_KEY``, ``FETCHCORE_S3_SECRET_KEY`` and
``FETCHCORE_S3_REGION`` where needed) points the tests at another server
instead. A server that cannot start, or does not answer, fails every S3 test
with the reason: it is never a skip.

Each test gets a store under a key prefix of its own in the session bucket
(``FETCHCORE_S3_BUCKET``, default ``fetchcore-tests``); whatever it wrote is
deleted afterwards.
"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import TYPE_CHECKING, Any

import pytest
from fetchcore.adapters.s3 import S3ObjectStore

from tests.seaweed import LOOPBACK, S3Endpoint, SeaweedError, s3_answers, start_seaweed

if TYPE_CHECKING:
    from types_aiobotocore_s3.type_defs import ObjectIdentifierTypeDef

BUCKET = os.environ.get("FETCHCORE_S3_BUCKET", "fetchcore-tests")
_DELETE_BATCH = 1000


@pytest.fixture(scope="session")
def s3_endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Endpoint]:
    """The S3 server of this session: FETCHCORE_S3_ENDPOINT, or a SeaweedFS started here."""
    external = os.environ.get("FETCHCORE_S3_ENDPOINT")
    if external:
        yield _external_endpoint(external)
        return
    try:
        server = start_seaweed(tmp_path_factory.mktemp("seaweedfs"))
    except SeaweedError as error:
        pytest.fail(f"the S3 tests need SeaweedFS, and it could not start: {error}", pytrace=False)
    try:
        yield server.endpoint
    finally:
        server.stop()


def _external_endpoint(url: str) -> S3Endpoint:
    if not s3_answers(url, timeout_s=5.0):
        pytest.fail(f"FETCHCORE_S3_ENDPOINT={url} does not answer", pytrace=False)
    return S3Endpoint(
        url=url,
        access_key_id=os.environ.get("FETCHCORE_S3_ACCESS_KEY", "fetchcore"),
        secret_access_key=os.environ.get("FETCHCORE_S3_SECRET_KEY", "fetchcore-secret"),
        region=os.environ.get("FETCHCORE_S3_REGION", "us-east-1"),
    )


def connect(endpoint: S3Endpoint, **options: Any) -> AbstractAsyncContextManager[S3ObjectStore]:
    """``S3ObjectStore.connect`` on ``endpoint`` with its credentials; ``options`` override."""
    arguments: dict[str, Any] = {
        "bucket": BUCKET,
        "endpoint_url": endpoint.url,
        "access_key_id": endpoint.access_key_id,
        "secret_access_key": endpoint.secret_access_key,
        "region": endpoint.region,
        **options,
    }
    return S3ObjectStore.connect(**arguments)


@asynccontextmanager
async def s3_test_store(
    request: pytest.FixtureRequest, **options: Any
) -> AsyncIterator[S3ObjectStore]:
    """A store under a fresh prefix of the session bucket, emptied when the test ends.

    Args:
        request: the test's fixture request (the session server comes from it).
        **options: more keyword arguments of ``S3ObjectStore.connect``.
    """
    endpoint: S3Endpoint = request.getfixturevalue("s3_endpoint")
    prefix = f"test-{uuid.uuid4().hex}/"
    async with connect(endpoint, prefix=prefix, create_bucket=True, **options) as store:
        try:
            yield store
        finally:
            await delete_prefix(store)


async def delete_prefix(store: S3ObjectStore) -> None:
    """Delete every object and pending multipart upload under the store's prefix."""
    keys = await list_keys(store)
    for start in range(0, len(keys), _DELETE_BATCH):
        batch: list[ObjectIdentifierTypeDef] = [
            {"Key": key} for key in keys[start : start + _DELETE_BATCH]
        ]
        await store.client.delete_objects(Bucket=store.bucket, Delete={"Objects": batch})
    for key, upload_id in await list_uploads(store):
        await store.client.abort_multipart_upload(Bucket=store.bucket, Key=key, UploadId=upload_id)


async def list_keys(store: S3ObjectStore) -> list[str]:
    """Every key under the store's prefix."""
    paginator = store.client.get_paginator("list_objects_v2")
    keys: list[str] = []
    async for page in paginator.paginate(Bucket=store.bucket, Prefix=store.prefix):
        keys.extend(item["Key"] for item in page.get("Contents", []) if "Key" in item)
    return keys


async def list_uploads(store: S3ObjectStore) -> list[tuple[str, str]]:
    """(key, upload id) of every unfinished multipart upload under the store's prefix."""
    answer = await store.client.list_multipart_uploads(Bucket=store.bucket, Prefix=store.prefix)
    return [
        (upload["Key"], upload["UploadId"])
        for upload in answer.get("Uploads", [])
        if "Key" in upload and "UploadId" in upload
    ]


def closed_loopback_port() -> int:
    """A loopback port that nothing listens on (it was free a moment ago)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((LOOPBACK, 0))
        port: int = probe.getsockname()[1]
    return port


@asynccontextmanager
async def unreachable_s3_store(**options: Any) -> AsyncIterator[S3ObjectStore]:
    """A store whose endpoint refuses every connection (quick timeouts, one attempt)."""
    endpoint = S3Endpoint(f"http://{LOOPBACK}:{closed_loopback_port()}", "unused", "unused")
    settings = {
        "max_attempts": 1,
        "connect_timeout_s": 1.0,
        "read_timeout_s": 1.0,
        "check_bucket": False,  # the point is a store whose every request fails
        **options,
    }
    async with connect(endpoint, **settings) as store:
        yield store
