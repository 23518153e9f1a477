"""Model names: aliases, local directories, the Hugging Face cache, and one-line errors when weights are missing."""

from __future__ import annotations

import json
import socket

import pytest

from icdreason.errors import EngineError
from icdreason.models import ALIASES, expand_alias, hub_offline, resolve_model


@pytest.fixture
def empty_hub(tmp_path, monkeypatch):
    """An empty Hugging Face cache, offline: nothing can be found or downloaded."""
    cache = tmp_path / "hf-cache"
    cache.mkdir()
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    return cache


def fake_cached_snapshot(cache, hub_id: str, commit: str = "0" * 40):
    """Lay out a hub cache entry the way huggingface_hub does: refs/main -> snapshots/<commit>/config.json."""
    repo = cache / ("models--" + hub_id.replace("/", "--"))
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(commit)
    snapshot = repo / "snapshots" / commit
    snapshot.mkdir(parents=True)
    (snapshot / "config.json").write_text(json.dumps({"model_type": "qwen2"}))
    return snapshot


def test_aliases_expand_to_the_datexis_hub_ids():
    assert expand_alias("DeepICD-R1-7B") == "DATEXIS/DeepICD-R1-7B"
    assert expand_alias("deepicd-r1-zero-32b") == "DATEXIS/DeepICD-R1-zero-32B"
    assert expand_alias("Qwen/Qwen2.5-7B-Instruct") == "Qwen/Qwen2.5-7B-Instruct"
    assert set(ALIASES.values()) == {"DATEXIS/DeepICD-R1-7B", "DATEXIS/DeepICD-R1-zero-32B"}


def test_a_local_model_directory_is_used_as_it_is(tmp_path):
    (tmp_path / "config.json").write_text("{}")
    resolved = resolve_model(str(tmp_path))
    assert resolved.path == tmp_path.resolve()
    assert resolved.hub_id is None
    assert resolved.display == str(tmp_path.resolve())


def test_a_directory_without_config_is_not_a_model(tmp_path):
    with pytest.raises(EngineError, match="no config.json"):
        resolve_model(str(tmp_path))


def test_a_missing_path_is_named(tmp_path):
    missing = tmp_path / "weights" / "7b"
    with pytest.raises(EngineError) as err:
        resolve_model(str(missing))
    assert str(missing) in str(err.value)
    assert "\n" not in str(err.value)


def test_an_alias_resolves_from_the_hub_cache_offline(empty_hub):
    snapshot = fake_cached_snapshot(empty_hub, "DATEXIS/DeepICD-R1-7B")
    resolved = resolve_model("DeepICD-R1-7B")
    assert resolved.hub_id == "DATEXIS/DeepICD-R1-7B"
    assert resolved.path == snapshot


def test_offline_and_not_cached_names_the_id_and_the_fix(empty_hub):
    assert hub_offline()
    with pytest.raises(EngineError) as err:
        resolve_model("DeepICD-R1-zero-32B")
    message = str(err.value)
    assert "DATEXIS/DeepICD-R1-zero-32B" in message
    assert "HF_HUB_OFFLINE" in message and "hf download" in message
    assert "\n" not in message


def test_an_unreachable_hub_gives_one_line_naming_the_id(tmp_path, monkeypatch):
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{port}")
    with pytest.raises(EngineError) as err:
        resolve_model("DATEXIS/DeepICD-R1-7B")
    assert str(err.value).startswith("cannot download model DATEXIS/DeepICD-R1-7B")
    assert "\n" not in str(err.value)


def test_download_false_only_looks_in_the_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    with pytest.raises(EngineError, match="not in the Hugging Face cache .* downloads are off"):
        resolve_model("some-org/some-model", download=False)


def test_the_transformers_engine_reports_missing_weights_in_one_line(empty_hub):
    from icdreason.engines.hf import TransformersEngine

    with pytest.raises(EngineError, match=r"^model DATEXIS/DeepICD-R1-7B is not in the Hugging Face cache"):
        TransformersEngine("DeepICD-R1-7B")
