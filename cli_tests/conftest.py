"""Shared fixtures: every test gets its own icdreason home; one knowledge base is built per test session."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def built_kb(tmp_path_factory) -> Path:
    """A knowledge base built once per session from the bundled April-2026 release (read it, don't modify it)."""
    from icdreason.kb import build_kb

    path = tmp_path_factory.mktemp("kb") / "icd10cm.duckdb"
    build_kb(path)
    return path


@pytest.fixture(autouse=True)
def icdreason_home(tmp_path, monkeypatch) -> Path:
    """Point the tool's home at a temporary folder so no test touches the user's files."""
    home = tmp_path / "icdreason-home"
    monkeypatch.setenv("ICDREASON_HOME", str(home))
    monkeypatch.delenv("ICDREASON_KB", raising=False)
    monkeypatch.delenv("ICDREASON_DEBUG", raising=False)
    monkeypatch.setenv("COLUMNS", "200")
    monkeypatch.setenv("NO_COLOR", "1")
    monkeypatch.setenv("TERM", "dumb")
    return home


@pytest.fixture
def kb_file(built_kb, tmp_path, monkeypatch) -> Path:
    """A private, writable copy of the session knowledge base, also exported as ICDREASON_KB."""
    path = tmp_path / "kb.duckdb"
    shutil.copy(built_kb, path)
    monkeypatch.setenv("ICDREASON_KB", str(path))
    return path


@pytest.fixture
def kb(kb_file):
    """An open KnowledgeBase on the private copy."""
    from icdreason.kb import KnowledgeBase

    with KnowledgeBase.open(kb_file) as base:
        yield base


@pytest.fixture
def runner():
    """Typer's CliRunner, with stdout and stderr kept apart."""
    from typer.testing import CliRunner

    return CliRunner()


def has_cuda() -> bool:
    try:
        import torch

        return torch.cuda.is_available()
    except Exception:
        return False


def pytest_collection_modifyitems(config, items):
    if has_cuda():
        return
    skip = pytest.mark.skip(reason="needs CUDA (gpu marker)")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)
