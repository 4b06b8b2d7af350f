"""Fixtures of the command-line tests."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Run in an empty directory, so the embedded default lands in tmp_path/.fetchcore."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("FETCHCORE_INDEX", raising=False)
    monkeypatch.delenv("FETCHCORE_STORE", raising=False)
    return tmp_path
