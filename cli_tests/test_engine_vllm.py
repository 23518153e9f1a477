"""The vllm engine: argument building and the structured-output regexes as unit tests (no vllm, no GPU needed),
plus a GPU integration test that skips without CUDA and vllm."""

from __future__ import annotations

import re
import sys
import types

import pytest

from icdreason.engines.base import Prompt, SamplingParams
from icdreason.engines.constrain import diagnosis_regex, trie_regex, vllm_structured_kwargs
from icdreason.engines.vllm_engine import VllmOptions, llm_kwargs, sampling_kwargs, structured_mode
from icdreason.errors import DependencyError, UsageError


def test_llm_kwargs_follow_the_options():
    opts = VllmOptions(tensor_parallel_size=4, gpu_memory_utilization=0.4, max_model_len=4096, dtype="bfloat16",
                       seed=3)
    assert llm_kwargs("/models/deepicd", opts) == {
        "model": "/models/deepicd", "tensor_parallel_size": 4, "gpu_memory_utilization": 0.4, "dtype": "bfloat16",
        "seed": 3, "enable_prefix_caching": True, "enforce_eager": False, "trust_remote_code": False,
        "max_model_len": 4096,
    }
    assert "max_model_len" not in llm_kwargs("m", VllmOptions())
    assert llm_kwargs("m", VllmOptions(quantization="awq", max_num_seqs=64))["max_num_seqs"] == 64


def test_sampling_kwargs_for_training_style_sampling_and_for_greedy():
    assert sampling_kwargs(SamplingParams(n=8, temperature=0.9, max_new_tokens=1024, seed=1)) == {
        "n": 8, "temperature": 0.9, "top_p": 1.0, "max_tokens": 1024, "seed": 1,
    }
    greedy = sampling_kwargs(SamplingParams(n=4, temperature=0.0, top_k=5, top_p=0.5, seed=None), max_tokens=100)
    assert greedy == {"n": 1, "temperature": 0.0, "top_p": 1.0, "max_tokens": 100}
    assert sampling_kwargs(SamplingParams(temperature=0.7, top_k=20))["top_k"] == 20


def test_structured_mode():
    assert structured_mode(VllmOptions(), SamplingParams()) == "format"
    assert structured_mode(VllmOptions(), SamplingParams(constrain=True)) == "billable"
    assert structured_mode(VllmOptions(structured_output="off"), SamplingParams()) == "off"
    assert structured_mode(VllmOptions(structured_output="off"), SamplingParams(constrain=True)) == "billable"


def test_options_are_checked():
    with pytest.raises(UsageError, match="gpu_memory_utilization"):
        VllmOptions(gpu_memory_utilization=1.5)
    with pytest.raises(UsageError, match="structured_output"):
        VllmOptions(structured_output="json")
    with pytest.raises(UsageError, match="unknown option"):
        VllmOptions.from_dict({"device": "cuda"})


def test_without_vllm_or_cuda_one_line_suggests_another_engine(monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "vllm" else real(name, *a))
    from icdreason.engines.vllm_engine import VllmEngine

    with pytest.raises(DependencyError) as err:
        VllmEngine("DeepICD-R1-7B")
    assert "--engine transformers" in str(err.value) and "\n" not in str(err.value)


def test_with_vllm_but_no_cuda_says_so(monkeypatch):
    import importlib.util

    import torch

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: object() if name == "vllm" else real(name, *a))
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    from icdreason.engines.vllm_engine import check_available

    with pytest.raises(DependencyError, match="needs a CUDA GPU"):
        check_available()


def test_vllm_outputs_become_generations():
    from types import SimpleNamespace as NS

    from icdreason.engines.vllm_engine import _max_model_len, _to_generation

    out = NS(prompt_token_ids=[1] * 40, outputs=[NS(text="a</think><diagnosis>I10</diagnosis>", token_ids=[5] * 9,
                                                    finish_reason="stop"),
                                                 NS(text="b", token_ids=[5] * 1024, finish_reason="length")])
    g = _to_generation(out, 0.5, 2)
    assert g.texts == ["a</think><diagnosis>I10</diagnosis>", "b"] and g.tokens_in == 40 and g.tokens_out == 1033
    assert g.extra["finish_reasons"] == ["stop", "length"]
    greedy = _to_generation(NS(prompt_token_ids=[1], outputs=[NS(text="x", token_ids=[5, 6], finish_reason=None)]),
                            0.1, 3)
    assert greedy.texts == ["x"] * 3 and greedy.tokens_out == 6 and greedy.extra["finish_reasons"] == ["stop"] * 3
    assert _max_model_len(NS(llm_engine=NS(model_config=NS(max_model_len=4096)))) == 4096
    assert _max_model_len(NS(llm_engine=NS(vllm_config=NS(model_config=NS(max_model_len=2048))))) == 2048
    assert _max_model_len(NS()) is None


# -- structured output ----------------------------------------------------------------------------------------------

CODES = ["A000", "A001", "A009", "A0100", "A011", "I10", "M5116", "M5117", "Z3A01", "Z3A49"]


def test_the_trie_regex_matches_exactly_the_codes():
    pattern = re.compile(trie_regex(CODES))
    assert all(pattern.fullmatch(c) for c in CODES)
    for near_miss in ["A00", "A01", "A010", "I1", "I100", "M511", "M51160", "Z3A", "B000", ""]:
        assert not pattern.fullmatch(near_miss), near_miss


def test_the_billable_regex_of_a_whole_chapter(kb):
    codes = [c for c in (code.replace(".", "") for code in kb.billable_codes()) if c.startswith("M5")]
    pattern = re.compile(trie_regex(codes))
    billable = set(codes)
    assert all(pattern.fullmatch(c) for c in codes)
    prefixes = {c[:k] for c in codes for k in range(1, len(c))} - billable
    assert not any(pattern.fullmatch(p) for p in prefixes)


def test_the_answer_regex_after_a_think_prefill():
    answer = re.compile(diagnosis_regex("billable", CODES, prefill="<think>"))
    assert answer.fullmatch("BP < 90, back pain radiating</think>\n<diagnosis>M5116</diagnosis>")
    assert not answer.fullmatch("pain</think><diagnosis>M511</diagnosis>")  # a header, not billable
    assert not answer.fullmatch("a<diagnosis>X</diagnosis></think><diagnosis>M5116</diagnosis>")  # no early block
    assert not answer.fullmatch("pain</think><diagnosis>M5116</diagnosis><diagnosis>I10</diagnosis>")
    fmt = re.compile(diagnosis_regex("format", prefill="<think>"))
    assert fmt.fullmatch("x</think><diagnosis>Z3A01</diagnosis>")  # real structure, not only the paper's pattern
    assert not fmt.fullmatch("x</think><diagnosis>M51.16</diagnosis>")
    dotted = re.compile(diagnosis_regex("format", dotted=True))  # no prefill: the answer opens <think> itself
    assert dotted.fullmatch("<think>x</think><diagnosis>M51.16</diagnosis>")
    assert not dotted.fullmatch("x</think><diagnosis>M51.16</diagnosis>")
    with pytest.raises(UsageError):
        diagnosis_regex("billable", [])


def _fake_vllm(monkeypatch, *, new_api: bool):
    module = types.ModuleType("vllm.sampling_params")

    class Params:
        def __init__(self, regex=None):
            self.regex = regex

    setattr(module, "StructuredOutputsParams" if new_api else "GuidedDecodingParams", Params)
    monkeypatch.setitem(sys.modules, "vllm", types.ModuleType("vllm"))
    monkeypatch.setitem(sys.modules, "vllm.sampling_params", module)


def test_structured_kwargs_for_current_vllm(monkeypatch):
    _fake_vllm(monkeypatch, new_api=True)
    (key, value), = vllm_structured_kwargs("A0[01]").items()
    assert key == "structured_outputs" and value.regex == "A0[01]"


def test_structured_kwargs_for_vllm_before_0_12(monkeypatch):
    _fake_vllm(monkeypatch, new_api=False)
    (key, value), = vllm_structured_kwargs("A0[01]").items()
    assert key == "guided_decoding" and value.regex == "A0[01]"


# -- on a GPU -------------------------------------------------------------------------------------------------------

@pytest.mark.gpu
def test_vllm_generates_well_formed_diagnoses_on_a_gpu(tmp_path, kb):
    pytest.importorskip("vllm")
    from tiny_model import build_tiny_model

    from icdreason.engines.vllm_engine import VllmEngine

    directory = build_tiny_model(tmp_path / "tiny", hidden_size=256)  # head_dim 64: what GPU attention kernels take
    opts = VllmOptions(gpu_memory_utilization=0.2, max_model_len=1024, enforce_eager=True)
    with VllmEngine(str(directory), opts, kb=kb) as eng:
        prompts = [Prompt(note_id=str(i), note="chest pain", prefill="<think>",
                          messages=[{"role": "user", "content": f"chest pain {i}"}]) for i in range(4)]
        gens = eng.generate(prompts, SamplingParams(n=2, temperature=0.9, max_new_tokens=64, constrain=True))
    for g in gens:
        assert g.error is None and len(g.texts) == 2 and g.tokens_in > 0
        for text, reason in zip(g.texts, g.extra["finish_reasons"]):
            if reason == "stop":
                code = re.search(r"<diagnosis>(\w+)</diagnosis>", text).group(1)
                assert kb.index.is_billable(code)
