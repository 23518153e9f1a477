"""Shared fixtures: every test gets its own icdreason home; one knowledge base is built per test session and shared
by the tests that read it (``kb_file``, ``kb``); a test that changes it takes a private copy (``writable_kb``)."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def pristine_kb(tmp_path_factory) -> Path:
    """The knowledge base built once per session from the bundled April-2026 release; never opened by a test."""
    from icdreason.kb import build_kb

    path = tmp_path_factory.mktemp("kb-build") / "icd10cm.duckdb"
    build_kb(path)
    return path


@pytest.fixture(scope="session")
def built_kb(pristine_kb, tmp_path_factory) -> Path:
    """The session knowledge base shared by every test that only reads it (one ~30 MB file instead of a copy per
    test; read it, don't modify it). It must come out of the session as it went in."""
    path = tmp_path_factory.mktemp("kb") / "icd10cm.duckdb"
    shutil.copy(pristine_kb, path)
    before = _fingerprint(path)
    yield path
    assert _fingerprint(path) == before, "a test wrote to the shared knowledge base (use writable_kb)"


def _fingerprint(path: Path) -> tuple:
    """What changes when DuckDB writes to a file: its modification time and size, and a write-ahead log beside it."""
    st = path.stat()
    return st.st_mtime_ns, st.st_size, path.with_name(path.name + ".wal").exists()


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
def kb_file(built_kb, pristine_kb, monkeypatch) -> Path:
    """The session knowledge base, read-only by contract, also exported as ICDREASON_KB. A test that writes to it
    fails here, naming :func:`writable_kb`, and the shared file is restored so that later tests read what they
    expect."""
    before = _fingerprint(built_kb)
    monkeypatch.setenv("ICDREASON_KB", str(built_kb))
    yield built_kb
    if _fingerprint(built_kb) != before:
        built_kb.with_name(built_kb.name + ".wal").unlink(missing_ok=True)
        shutil.copy(pristine_kb, built_kb)
        os.utime(built_kb, ns=before[:1] * 2)
        pytest.fail("this test wrote to the shared knowledge base: give it the writable_kb fixture")


@pytest.fixture
def writable_kb(pristine_kb, tmp_path, monkeypatch) -> Path:
    """A private copy of the session knowledge base for a test that changes it (scrape, import, migrations), also
    exported as ICDREASON_KB."""
    path = tmp_path / "kb.duckdb"
    shutil.copy(pristine_kb, path)
    monkeypatch.setenv("ICDREASON_KB", str(path))
    return path


@pytest.fixture(scope="session")
def retriever_kb(built_kb, tmp_path_factory) -> Path:
    """A copy of the session knowledge base with the retriever index cached next to it (built once per session,
    shared by every predict test module)."""
    from icdreason.engines.retriever import RetrieverIndex
    from icdreason.kb import KnowledgeBase

    path = tmp_path_factory.mktemp("predict-kb") / "icd10cm.duckdb"
    shutil.copy(built_kb, path)
    with KnowledgeBase.open(path) as kb:
        RetrieverIndex.for_kb(kb)
    return path


@pytest.fixture
def use_kb(retriever_kb, monkeypatch) -> Path:
    """Point ICDREASON_KB at the prepared knowledge base for one test."""
    monkeypatch.setenv("ICDREASON_KB", str(retriever_kb))
    return retriever_kb


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

# -- training checks: a model folder and data files as far as `train --dry-run` looks at them ---------------------
@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    """A model folder as far as the checks go (config.json); nothing here loads weights."""
    folder = tmp_path_factory.mktemp("tiny") / "model"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"model_type": "qwen2"}))
    return folder


@pytest.fixture(scope="module")
def sft_file(tmp_path_factory) -> Path:
    from train_helpers import write_sft_parquet

    return write_sft_parquet(tmp_path_factory.mktemp("data") / "sft.parquet", rows=16)


@pytest.fixture(scope="module")
def rl_file(tmp_path_factory) -> Path:
    from train_helpers import write_rl_parquet

    return write_rl_parquet(tmp_path_factory.mktemp("data") / "rl.parquet", rows=8)


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
