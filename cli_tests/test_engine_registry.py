"""Engines are found through the ``icdreason.engines`` entry-point group: the built-ins and a third party's alike."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import tomllib
from importlib.metadata import entry_points
from pathlib import Path

import pytest

from icdreason.engines.registry import ENGINES, ENTRY_POINT_GROUP, available_engines, engine_class
from icdreason.errors import UsageError

ROOT = Path(__file__).resolve().parents[1]


def test_built_in_engines_are_the_entry_points_pyproject_lists():
    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["entry-points"][ENTRY_POINT_GROUP]
    installed = {ep.name: ep.value for ep in entry_points(group=ENTRY_POINT_GROUP) if ep.name in declared}
    assert declared == installed == {
        "retriever": "icdreason.engines.retriever:RetrieverEngine",
        "transformers": "icdreason.engines.hf:TransformersEngine",
        "openai": "icdreason.engines.openai_engine:OpenAIEngine",
        "vllm": "icdreason.engines.vllm_engine:VllmEngine",
    }
    assert {"retriever", "transformers", "openai", "vllm"} <= set(available_engines())
    assert engine_class("retriever").__name__ == "RetrieverEngine"
    assert dict(ENGINES)["openai"] == "icdreason.engines.openai_engine:OpenAIEngine"


def test_unknown_engine_names_the_registered_ones():
    with pytest.raises(UsageError, match=r"unknown engine 'gpt': choose one of .*openai, retriever, transformers"):
        engine_class("gpt")


def _third_party_package(site: Path) -> None:
    """A package that is not icdreason, registering the engine `echo` through its own distribution metadata."""
    (site / "echo_engine").mkdir()
    (site / "echo_engine" / "__init__.py").write_text(textwrap.dedent('''
        from icdreason.engines.base import Engine, Generation

        class EchoEngine(Engine):
            """Answers every note with the code its first word names."""

            name = "echo"

            def generate(self, prompts, params):
                return [Generation(texts=[f"{p.note.split()[0]}</think><diagnosis>{p.note.split()[0]}</diagnosis>"]
                                   * params.n) for p in prompts]
        '''))
    dist = site / "echo_engine-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: echo-engine\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[icdreason.engines]\necho = echo_engine:EchoEngine\n")


def test_a_third_party_engine_runs_without_editing_icdreason(tmp_path, kb_file):
    site = tmp_path / "site"
    site.mkdir()
    _third_party_package(site)
    notes = tmp_path / "notes.jsonl"
    notes.write_text(json.dumps({"id": "n1", "text": "I21.4 crushing chest pain"}) + "\n")
    out = tmp_path / "preds.jsonl"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")])}
    result = subprocess.run(
        [sys.executable, "-m", "icdreason", "predict", str(notes), "--engine", "echo", "--model", "echo-1",
         "--out", str(out), "--quiet"],
        capture_output=True, text=True, env=env, timeout=120,
    )
    assert result.returncode == 0, result.stderr
    (record,) = [json.loads(line) for line in out.read_text().splitlines()]
    assert (record["engine"], record["model"], record["code"], record["status"]) == ("echo", "echo-1", "I21.4",
                                                                                     "billable")
    assert record["format_ok"] is True
