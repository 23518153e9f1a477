"""`predict --preset deepicd-r1-eval`: the model's generation-config sampling (as vLLM reads it), 1,024 new tokens,
prompts over 2,048 tokens skipped and flagged; flags given on the command line win."""

from __future__ import annotations

import json

import pytest
from predict_support import ScriptedEngine, ScriptedOptions, register_scripted
from tiny_model import build_tokenizer

from icdreason.cli import app
from icdreason.engines.base import Prompt
from icdreason.notes import Note
from icdreason.predict import PredictSettings, run_predict, sampling_for
from icdreason.predict_presets import PREDICT_PRESETS, apply_predict_preset, generation_config_sampling
from icdreason.prompts import load_template
from icdreason.prompts.length import PromptLimit, prompt_text_for_count
from icdreason.records import read_predictions

ANSWER = "x</think><diagnosis>I214</diagnosis>"


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    """A model folder with a tokenizer and a generation config that samples (do_sample is ignored, as vLLM does)."""
    directory = tmp_path_factory.mktemp("model")
    build_tokenizer(directory)
    (directory / "config.json").write_text("{}")
    (directory / "generation_config.json").write_text(json.dumps(
        {"do_sample": False, "temperature": 0.6, "top_p": 0.95, "top_k": 20, "repetition_penalty": 1.05}))
    return directory


@pytest.fixture(scope="module")
def kb(retriever_kb):
    from icdreason.kb import KnowledgeBase

    with KnowledgeBase.open(retriever_kb) as base:
        yield base


def test_generation_config_is_read_as_vllm_reads_it(model_dir, tmp_path):
    values, where = generation_config_sampling(str(model_dir))
    assert values == {"temperature": 0.6, "top_p": 0.95, "top_k": 20, "min_p": 0.0, "repetition_penalty": 1.05}
    assert where.endswith("generation_config.json")
    bare = tmp_path / "bare"
    bare.mkdir()
    assert generation_config_sampling(str(bare)) == ({"temperature": 1.0, "top_p": 1.0, "top_k": -1, "min_p": 0.0,
                                                      "repetition_penalty": 1.0},
                                                     f"vLLM's defaults ({bare / 'generation_config.json'} not found)")
    (bare / "generation_config.json").write_text('{"top_k": 0, "max_new_tokens": 32768}')
    assert generation_config_sampling(str(bare))[0]["top_k"] == -1  # 0 is "off"; max_new_tokens is the preset's


def test_the_preset_fills_what_no_flag_set(model_dir):
    preset = PREDICT_PRESETS["deepicd-r1-eval"]
    assert preset.settings == {"max_prompt_tokens": 2048, "long_prompts": "skip", "max_note_chars": 0}
    params, settings, notes = apply_predict_preset("deepicd-r1-eval", params=sampling_for(1, max_new_tokens=512),
                                                   settings=PredictSettings(), explicit=set(), model=str(model_dir))
    assert (params.temperature, params.top_p, params.top_k, params.repetition_penalty) == (0.6, 0.95, 20, 1.05)
    assert (params.n, params.max_new_tokens, params.seed) == (1, 1024, None)
    assert (settings.max_prompt_tokens, settings.max_note_chars, settings.preset) == (2048, 0, "deepicd-r1-eval")
    assert any("sampling from" in n for n in notes) and any("len(tokenizer(text))" in n for n in notes)
    # flags given win: a temperature or top-p means the flags decide the sampling; the rest still comes from the preset
    params, settings, notes = apply_predict_preset(
        "deepicd-r1-eval", params=sampling_for(1, max_new_tokens=512), settings=PredictSettings(max_note_chars=100),
        explicit={"temperature", "max_new_tokens", "max_note_chars"}, model=None)
    assert (params.temperature, params.top_k, params.max_new_tokens) == (0.0, -1, 512)
    assert (settings.max_note_chars, settings.max_prompt_tokens) == (100, 2048)
    assert "not from the model's generation config" in notes[0]


def test_prompts_over_the_limit_are_skipped_with_a_record_or_flagged(kb, model_dir, tmp_path):
    limit = PromptLimit(60, str(model_dir))
    template = load_template()
    short = Note("short", "Chief Complaint: chest pain", "short.txt")
    long = Note("long", "Chief Complaint: chest pain. " + "fever cough " * 200, "long.txt")
    counted = limit.count(template.render("long", long.text))
    expected = len(limit.tokenizer(prompt_text_for_count(template.render("long", long.text)))["input_ids"])
    assert counted == expected > 400
    assert prompt_text_for_count(Prompt("i", "n", [{"role": "user", "content": "a"}], "<think>")) == "a <think>"
    # the bundled prompt alone is over 60 tokens: use a tiny template so that the short note fits
    mini = tmp_path / "mini.csv"
    mini.write_text("role,content\nuser,{note}\nassistant,<think>\n")
    for policy in ("skip", "flag"):
        engine = ScriptedEngine("scripted-model", ScriptedOptions(responses={"short": [ANSWER], "long": [ANSWER]}), kb)
        out = tmp_path / f"{policy}.jsonl"
        settings = PredictSettings(max_prompt_tokens=60, long_prompts=policy, prompt_tokenizer=str(model_dir),
                                   max_note_chars=0)
        summary = run_predict([short, long], engine=engine, kb=kb, out=str(out), params=sampling_for(1),
                              settings=settings, template=load_template(mini))
        records = {r["id"]: r for r in read_predictions(out)}
        assert records["short"]["code"] == "I21.4" and records["short"]["flags"] == []
        assert records["long"]["parameters"]["max_prompt_tokens"] == 60
        if policy == "skip":
            assert records["long"]["code"] is None and records["long"]["flags"] == ["prompt_too_long"]
            assert records["long"]["error"].startswith("prompt has ") and "over the 60 allowed" in records["long"]["error"]
            assert records["long"]["tokens_in"] == 0  # never given to the engine
            assert summary.flags["prompt_too_long"] == 1
        else:
            assert records["long"]["code"] == "I21.4" and records["long"]["flags"] == ["prompt_over_limit"]


def test_predict_preset_through_the_cli(runner, retriever_kb, model_dir, tmp_path, monkeypatch):
    register_scripted()
    monkeypatch.setenv("ICDREASON_KB", str(retriever_kb))
    notes = tmp_path / "notes"
    notes.mkdir()
    (notes / "short.txt").write_text("Chief Complaint: chest pain")
    (notes / "long.txt").write_text("Chief Complaint: chest pain. " + "fever cough " * 2000)
    out = tmp_path / "o.jsonl"
    responses = '{"short": ["' + ANSWER + '"], "long": ["' + ANSWER + '"]}'
    base = ["predict", str(notes), "--engine", "scripted", "--model", str(model_dir), "--preset", "deepicd-r1-eval",
            "-E", f"responses={responses}", "-q", "--prompt-template", "deepicd_r1"]
    result = runner.invoke(app, [*base, "--out", str(out)])
    assert result.exit_code == 0, result.stderr
    assert "preset deepicd-r1-eval: sampling from" in " ".join(result.stderr.split())
    records = {r["id"]: r for r in read_predictions(out)}
    params = records["short"]["parameters"]
    assert (params["temperature"], params["top_p"], params["top_k"], params["repetition_penalty"]) == (0.6, 0.95, 20,
                                                                                                       1.05)
    assert (params["max_new_tokens"], params["seed"], params["max_note_chars"]) == (1024, None, 0)
    assert (params["preset"], params["max_prompt_tokens"], params["long_prompts"]) == ("deepicd-r1-eval", 2048, "skip")
    assert records["short"]["code"] == "I21.4"
    assert records["long"]["flags"] == ["prompt_too_long"] and records["long"]["code"] is None
    # a flag wins over the preset
    out2 = tmp_path / "o2.jsonl"
    result = runner.invoke(app, [*base, "--out", str(out2), "--temperature", "0", "--long-prompts", "flag",
                                 "--max-new-tokens", "64"])
    assert result.exit_code == 0, result.stderr
    records = {r["id"]: r for r in read_predictions(out2)}
    assert (records["short"]["parameters"]["temperature"], records["short"]["parameters"]["max_new_tokens"]) == (0.0,
                                                                                                                 64)
    assert records["long"]["flags"] == ["prompt_over_limit"] and records["long"]["code"] == "I21.4"


def test_an_unknown_preset_or_policy_is_one_line(runner, retriever_kb, tmp_path, monkeypatch):
    monkeypatch.setenv("ICDREASON_KB", str(retriever_kb))
    note = tmp_path / "n.txt"
    note.write_text("Chief Complaint: chest pain")
    result = runner.invoke(app, ["predict", str(note), "--preset", "fast"])
    assert result.exit_code == 2 and "unknown predict preset 'fast' (known: deepicd-r1-eval)" in result.stderr
    result = runner.invoke(app, ["predict", str(note), "--long-prompts", "drop"])
    assert result.exit_code == 2 and "long_prompts must be one of skip, flag, not 'drop'" in result.stderr


def test_generation_config_sampling_reaches_the_engines():
    from fake_openai_server import FakeServer

    from icdreason.engines.base import SamplingParams
    from icdreason.engines.openai_engine import OpenAIEngine, OpenAIOptions
    from icdreason.engines.vllm_engine import sampling_kwargs

    sampled = SamplingParams(temperature=0.6, top_p=0.95, top_k=20, min_p=0.05, repetition_penalty=1.05)
    assert sampling_kwargs(sampled) == {"n": 1, "temperature": 0.6, "top_p": 0.95, "max_tokens": 1024, "top_k": 20,
                                        "min_p": 0.05, "repetition_penalty": 1.05, "seed": 0}
    greedy = sampling_kwargs(SamplingParams(min_p=0.05, repetition_penalty=1.05, seed=None))
    assert "min_p" not in greedy and greedy["repetition_penalty"] == 1.05
    assert "repetition_penalty" not in sampling_kwargs(SamplingParams())
    with FakeServer() as server:
        engine = OpenAIEngine("m", OpenAIOptions(base_url=[server.url], timeout=5.0))
        engine.generate([Prompt("n", "note", [{"role": "user", "content": "note"}], "<think>")], sampled)
    body = server.requests[0]["body"]
    assert (body["temperature"], body["top_p"], body["top_k"], body["min_p"], body["repetition_penalty"]) == (
        0.6, 0.95, 20, 0.05, 1.05)


def test_the_ray_runner_applies_the_same_limit(kb, model_dir, tmp_path):
    from icdreason.cluster.predict import predict_on_ray

    mini = tmp_path / "mini.csv"
    mini.write_text("role,content\nuser,{note}\nassistant,<think>\n")
    notes = [Note("short", "Chief Complaint: chest pain", "short.txt"),
             Note("long", "Chief Complaint: chest pain. " + "fever cough " * 200, "long.txt")]
    engine = ScriptedEngine("scripted-model", ScriptedOptions(responses={"short": [ANSWER], "long": [ANSWER]}), kb)
    out = tmp_path / "ray.jsonl"
    settings = PredictSettings(max_prompt_tokens=60, prompt_tokenizer=str(model_dir), max_note_chars=0)
    run_predict(notes, engine=engine, kb=kb, out=str(out), params=sampling_for(1), settings=settings,
                template=load_template(mini), runner=predict_on_ray)  # any engine: its stream() generates here
    records = {r["id"]: r for r in read_predictions(out)}
    assert records["short"]["code"] == "I21.4"
    assert records["long"]["flags"] == ["prompt_too_long"] and records["long"]["error"].startswith("prompt has ")


def test_a_tokenizer_that_cannot_be_loaded_is_one_line(kb, monkeypatch, tmp_path):
    from icdreason.errors import EngineError, UsageError
    from icdreason.predict import prompt_limit

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    limit = PromptLimit(10, str(tmp_path / "no-such-model"))
    with pytest.raises(EngineError) as err:
        limit.count(Prompt("n", "x", [{"role": "user", "content": "x"}]))
    assert "cannot load the tokenizer of" in str(err.value) and "--prompt-tokenizer" in str(err.value)
    assert "\n" not in str(err.value)
    retriever = type("NoModel", (), {"model": None})()
    with pytest.raises(UsageError, match="max_prompt_tokens needs a tokenizer"):
        prompt_limit(PredictSettings(max_prompt_tokens=5), retriever)
    assert prompt_limit(PredictSettings(), retriever) is None
