"""Log records: one INFO per fetch and per ingest with structured fields, DEBUG per read."""

from __future__ import annotations

import logging

import pytest

from fetchcore import ObjectStoreError
from fetchcore.observe import LoggingObserver
from tests.unit.observe.sequences import (
    MPACKS,
    RANGE_BYTES,
    FakeClock,
    emit_failed_fetch,
    emit_ingest,
    emit_served_fetch,
)


def _records(caplog: pytest.LogCaptureFixture, logger: str, level: int) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == logger and r.levelno == level]


def _secret_free(record: logging.LogRecord) -> bool:
    text = record.getMessage() + " ".join(str(value) for value in vars(record).values())
    return not any(s in text for s in ("X-Amz-Signature", "deadbeefcafe", "AKIAEXAMPLE"))


class TestFetchRecords:
    def test_a_served_fetch_writes_one_info_record_with_its_figures_as_fields(
        self, caplog: pytest.LogCaptureFixture
    ) -> None:
        with caplog.at_level(logging.INFO, logger="fetchcore"):
            emit_served_fetch(LoggingObserver(), FakeClock())
        assert [r.levelname for r in caplog.records] == ["INFO"]
        (record,) = _records(caplog, "fetchcore.fetch", logging.INFO)
        fields = vars(record)
        assert fields["event"] == "fetch_finished"
        assert fields["repo_id"] == "repo-1"
        assert fields["outcome"] == "ok"
        assert (fields["commit_count"], fields["snapshot_count"], fields["blob_count"]) == (
            3,
            3,
            25_000,
        )
        assert (fields["bytes_read"], fields["requests"], fields["cache_hits"]) == (
            4 * RANGE_BYTES,
            5,
            7,
        )
        assert fields["duration_s"] == pytest.approx(0.785)
        assert fields["reused"] is False
        assert record.getMessage().startswith("fetch ok: repo repo-1, 3 commits, 3 snapshots")

    def test_at_debug_each_read_and_each_retry_has_its_record(
        self, caplog: pytest.LogCaptureFixture
    ) -> None:
        with caplog.at_level(logging.DEBUG, logger="fetchcore"):
            emit_served_fetch(LoggingObserver(), FakeClock())
        reads = _records(caplog, "fetchcore.read", logging.DEBUG)
        assert [vars(r)["event"] for r in reads] == ["read_finished", "retry_scheduled"] + [
            "read_finished"
        ] * 4
        assert [(vars(r)["source_id"], vars(r).get("outcome")) for r in reads[:2]] == [
            (MPACKS[0], "timeout"),
            (MPACKS[0], None),
        ]
        phases = [vars(r)["phase"] for r in _records(caplog, "fetchcore.fetch", logging.DEBUG)[1:]]
        assert phases == ["resolve", "lookup", "plan", "read", "upload"]

    def test_nothing_is_written_below_the_configured_level(
        self, caplog: pytest.LogCaptureFixture
    ) -> None:
        with caplog.at_level(logging.WARNING, logger="fetchcore"):
            emit_served_fetch(LoggingObserver(), FakeClock())
        assert caplog.records == []

    def test_a_failed_fetch_is_a_warning_with_its_error_class_and_no_signature(
        self, caplog: pytest.LogCaptureFixture
    ) -> None:
        with caplog.at_level(logging.DEBUG, logger="fetchcore"), pytest.raises(ObjectStoreError):
            emit_failed_fetch(LoggingObserver(), FakeClock())
        (fallback, finished) = _records(caplog, "fetchcore.fetch", logging.WARNING)
        assert vars(fallback)["event"] == "legacy_fallback"
        assert vars(fallback)["object_count"] == 2
        assert vars(finished)["outcome"] == "error"
        assert vars(finished)["error_type"] == "ObjectStoreError"
        assert "?REDACTED" in finished.getMessage()
        assert all(_secret_free(record) for record in caplog.records)


class TestIngestRecords:
    def test_an_ingest_writes_one_info_record_with_its_figures_as_fields(
        self, caplog: pytest.LogCaptureFixture
    ) -> None:
        with caplog.at_level(logging.INFO, logger="fetchcore"):
            emit_ingest(LoggingObserver(), FakeClock(), mpack_bytes=9_000)
        (record,) = caplog.records
        assert (record.name, record.levelno) == ("fetchcore.ingest", logging.INFO)
        fields = vars(record)
        assert (fields["event"], fields["repo_id"], fields["outcome"]) == (
            "ingest_finished",
            "repo-1",
            "ok",
        )
        assert (fields["blob_count"], fields["bytes_written"], fields["uploaded"]) == (
            10,
            9_000,
            True,
        )
        assert fields["duration_s"] == pytest.approx(0.05)
