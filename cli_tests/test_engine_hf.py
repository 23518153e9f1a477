"""The transformers engine on a tiny local Qwen2 model: batching with left padding, samples, token accounting,
per-prompt errors, and constrained decoding of the whole answer (reasoning, then a billable code in <diagnosis>)."""

from __future__ import annotations

import pytest

from icdreason.engines.base import Prompt, SamplingParams
from icdreason.engines.constrain import CLOSE_TAG, DiagnosisConstraint, code_strings
from icdreason.errors import UsageError


def scaled_tiny_model(directory, scale: float = 10.0):
    """The shared tiny model with its weight matrices scaled up.

    With the default initialisation a random model just repeats its last token whatever the prompt; scaled weights
    make greedy output depend on the prompt, so a padding or attention-mask bug changes the answers.
    """
    import torch
    from tiny_model import build_tiny_model
    from transformers import AutoModelForCausalLM

    build_tiny_model(directory)
    model = AutoModelForCausalLM.from_pretrained(directory)
    with torch.no_grad():
        for param in model.parameters():
            if param.dim() == 2:
                param.mul_(scale)
    model.save_pretrained(directory)
    return directory


@pytest.fixture(scope="session")
def tiny_dir(tmp_path_factory):
    return scaled_tiny_model(tmp_path_factory.mktemp("tiny-hf"))


@pytest.fixture(scope="module")
def engine(tiny_dir):
    from icdreason.engines.hf import TransformersEngine, TransformersOptions

    with TransformersEngine(str(tiny_dir), TransformersOptions(device="cpu", batch_size=4)) as eng:
        yield eng


@pytest.fixture(scope="module")
def kb_engine(tiny_dir, built_kb):
    """The engine with the session knowledge base, for --constrain."""
    from icdreason.engines.hf import TransformersEngine, TransformersOptions
    from icdreason.kb import KnowledgeBase

    with KnowledgeBase.open(built_kb) as base, TransformersEngine(str(tiny_dir), TransformersOptions(device="cpu"),
                                                                  kb=base) as eng:
        yield eng


def prompt(i: int, text: str, prefill: str = "<think>") -> Prompt:
    messages = [{"role": "system", "content": "Give one ICD-10-CM code."}, {"role": "user", "content": text}]
    return Prompt(note_id=f"n{i}", note=text, messages=messages, prefill=prefill)


NOTES = ["chest pain", "fever cough " * 10, "abdominal pain nausea vomiting " * 4, "fracture femur"]


def test_a_padded_batch_gives_the_same_greedy_answers_as_one_prompt_at_a_time(engine):
    prompts = [prompt(i, t) for i, t in enumerate(NOTES)]
    params = SamplingParams(max_new_tokens=12)
    batch = engine.generate(prompts, params)
    alone = [engine.generate([p], params)[0] for p in prompts]
    assert [g.texts for g in batch] == [g.texts for g in alone]
    assert len({g.texts[0] for g in batch}) > 1  # the answers depend on the prompt
    for p, g in zip(prompts, batch):
        rendered = engine.tokenizer.apply_chat_template(p.messages, tokenize=False, add_generation_prompt=True)
        assert g.tokens_in == len(engine.tokenizer(rendered + "<think>", add_special_tokens=False)["input_ids"])
        assert 1 <= g.tokens_out <= 12
        assert g.error is None and g.seconds > 0
        assert g.extra["finish_reasons"][0] in ("stop", "length")
    assert len({g.tokens_in for g in batch}) == len(NOTES)  # really different lengths, so really padded


def test_n_samples_per_prompt_and_token_accounting(engine):
    gens = engine.generate([prompt(0, "chest pain"), prompt(1, "fever")], SamplingParams(n=3, temperature=1.0,
                                                                                        max_new_tokens=6, seed=1))
    for g in gens:
        assert len(g.texts) == 3 and len(g.extra["finish_reasons"]) == 3
        assert 3 <= g.tokens_out <= 18
    again = engine.generate([prompt(0, "chest pain"), prompt(1, "fever")], SamplingParams(n=3, temperature=1.0,
                                                                                         max_new_tokens=6, seed=1))
    assert [g.texts for g in again] == [g.texts for g in gens]  # seeded


def test_greedy_with_n_samples_repeats_the_one_answer(engine):
    (g,) = engine.generate([prompt(0, "chest pain")], SamplingParams(n=3, max_new_tokens=5))
    assert len(g.texts) == 3 and len(set(g.texts)) == 1


def test_a_prompt_longer_than_the_context_fails_alone(engine):
    too_long = prompt(1, "chest pain " * 3000)
    gens = engine.generate([prompt(0, "fever"), too_long, prompt(2, "cough")], SamplingParams(max_new_tokens=4))
    assert gens[0].error is None and gens[2].error is None
    assert gens[1].texts == [] and "context is 4096" in gens[1].error


def test_constrained_codes_are_billable(kb_engine, kb):
    """With the prefill opening <diagnosis>, every sample is a billable code, closed, then end of sequence."""
    prompts = [prompt(i, t, prefill="<think>findings</think><diagnosis>") for i, t in enumerate(NOTES[:3])]
    gens = kb_engine.generate(prompts, SamplingParams(n=4, temperature=1.0, max_new_tokens=12, constrain=True))
    codes = []
    for g in gens:
        assert g.extra["finish_reasons"] == ["stop"] * 4
        for text in g.texts:
            assert text.endswith(CLOSE_TAG)
            codes.append(text[: -len(CLOSE_TAG)])
    assert all(kb.index.is_billable(c) for c in codes), codes
    assert len(set(codes)) > 1  # sampled, not one fixed answer


def test_unconstrained_answers_are_not_codes(engine, kb):
    """The same prompts without the constraint: random text, so the test above is not passing by accident."""
    prompts = [prompt(i, t, prefill="<think>findings</think><diagnosis>") for i, t in enumerate(NOTES[:3])]
    gens = engine.generate(prompts, SamplingParams(n=4, temperature=1.0, max_new_tokens=12))
    heads = [t.split(CLOSE_TAG)[0] for g in gens for t in g.texts]
    assert not all(kb.index.is_billable(h) for h in heads)


def test_constrain_without_a_knowledge_base_is_a_usage_error(tiny_dir):
    from icdreason.engines.hf import TransformersEngine

    eng = TransformersEngine(str(tiny_dir))
    with pytest.raises(UsageError, match="--constrain needs the knowledge base"):
        eng.generate([prompt(0, "x")], SamplingParams(max_new_tokens=2, constrain=True))


def test_bad_options_are_rejected():
    from icdreason.engines.hf import TransformersOptions

    with pytest.raises(UsageError, match="unknown dtype"):
        TransformersOptions(dtype="int3")
    with pytest.raises(UsageError, match="unknown option"):
        TransformersOptions.from_dict({"tensor_parallel_size": 2})


# -- the constraint's state machine, on a hand-made vocabulary -------------------------------------------------------

class WordTokenizer:
    """A tokenizer over a fixed list of strings (greedy longest match), enough for DiagnosisConstraint."""

    def __init__(self, vocab: list[str]):
        self.vocab = vocab
        self.eos_token_id = 0

    def __len__(self) -> int:
        return len(self.vocab)

    def decode(self, ids, **_):
        return "".join(self.vocab[i] for i in ids)

    def encode(self, text: str, add_special_tokens: bool = False) -> list[int]:
        out = []
        while text:
            i = max((i for i, s in enumerate(self.vocab) if s and text.startswith(s)), key=lambda i: len(self.vocab[i]))
            out.append(i)
            text = text[len(self.vocab[i]):]
        return out


VOCAB = ["<eos>", "<", "diag", "nosis", ">", "<diagnosis>", "</diagnosis>", "M", "5", "1", "6", "51", "M5",
         "<diagnosis>Q", ">x", ">M", "nosis>", "nosis>zz", "a", " ", "</think>", "\n", "<think>", ".", "A", "0"]
ID = {s: i for i, s in enumerate(VOCAB)}


def feed(processor, tokens: list[str], scores=None):
    """Feed ``tokens`` one step at a time (after a one-token prompt); the scores of the next step."""
    import torch

    base = torch.zeros(1, len(VOCAB)) if scores is None else scores
    ids = [ID["a"]]
    out = processor(torch.tensor([ids]), base.clone())
    for t in tokens:
        ids.append(ID[t])
        out = processor(torch.tensor([ids]), base.clone())
    return out


def allowed_after(processor, tokens: list[str]) -> set[str]:
    """What the step after ``tokens`` allows."""
    import torch

    finite = torch.isfinite(feed(processor, tokens)[0]).nonzero().flatten().tolist()
    return {VOCAB[i] for i in finite}


@pytest.fixture
def constraint():
    return DiagnosisConstraint(WordTokenizer(VOCAB), code_strings(["M51.16", "M51.17", "A01.00"]))


def test_inside_the_tag_only_code_prefixes_then_the_closing_tag_then_eos(constraint):
    inside = "<think>x</think><diagnosis>"
    assert allowed_after(constraint.processor(inside), []) == {"M", "M5", "A"}
    assert allowed_after(constraint.processor(inside), ["M5"]) == {"1"}
    assert allowed_after(constraint.processor(inside), ["M", "51", "1"]) == {"6"}
    assert allowed_after(constraint.processor(inside), ["M5", "1", "1", "6"]) == {"</diagnosis>"}
    assert allowed_after(constraint.processor(inside), ["M5", "1", "1", "6", "</diagnosis>"]) == {"<eos>"}


def test_either_form_accepts_dotted_and_undotted_codes():
    both = DiagnosisConstraint(WordTokenizer(VOCAB), code_strings(["M51.16", "A01.00"], form="either"))
    inside = "<think>x</think><diagnosis>"
    assert allowed_after(both.processor(inside), ["M5", "1"]) == {"1", "."}
    assert allowed_after(both.processor(inside), ["M5", "1", ".", "1", "6"]) == {"</diagnosis>"}
    assert allowed_after(both.processor(inside), ["M5", "1", "1", "6"]) == {"</diagnosis>"}
    assert code_strings(["M5116"], form="either") == ["M51.16", "M5116"]


def test_the_reasoning_cannot_write_tags_and_its_wish_to_stop_closes_it(constraint):
    import torch

    reasoning = allowed_after(constraint.processor("<think>"), ["a", " "])
    # no "<" and no end-of-sequence inside the reasoning; the way out is the first token of "</think>\n<diagnosis>"
    assert reasoning == {"nosis", "diag", ">", "M", "5", "1", "6", "51", "M5", ">x", ">M", "nosis>", "nosis>zz", "a",
                         " ", "\n", ".", "A", "0", "</think>"}
    # the model puts most weight on end-of-sequence: that weight goes to closing the reasoning
    scores = torch.zeros(1, len(VOCAB))
    scores[0, ID["<eos>"]] = 10.0
    out = feed(constraint.processor("<think>"), ["a"], scores)
    assert VOCAB[int(out[0].argmax())] == "</think>"
    assert float(out[0, ID["</think>"]]) == pytest.approx(float(torch.logsumexp(
        torch.tensor([10.0] + [0.0] * 6), 0)))  # eos + the six tokens holding "<"
    # once chosen, the rest of the transition is forced, then a code
    assert allowed_after(constraint.processor("<think>"), ["a", "</think>"]) == {"\n"}
    assert allowed_after(constraint.processor("<think>"), ["a", "</think>", "\n"]) == {"<diagnosis>"}
    assert allowed_after(constraint.processor("<think>"), ["a", "</think>", "\n", "<diagnosis>"]) == {"M", "M5", "A"}


def test_a_prefill_without_think_makes_the_answer_open_it(constraint):
    assert allowed_after(constraint.processor(""), []) == {"<think>"}
    assert "a" in allowed_after(constraint.processor(""), ["<think>"])


def test_the_closing_structure_is_reserved_within_the_budget(constraint):
    # reserve: 3 transition tokens + 5 code characters (M5116) + 1 closing token = 9
    assert constraint.reserve == 9
    assert allowed_after(constraint.processor("<think>", max_new_tokens=11), ["a"]) != {"</think>"}
    assert allowed_after(constraint.processor("<think>", max_new_tokens=11), ["a", "a"]) == {"</think>"}


def test_dotted_codes_are_a_choice(constraint):
    assert code_strings(["M5116", "a01.00"], dotted=True) == ["A01.00", "M51.16"]
    assert code_strings(["M51.16"]) == ["M5116"]
    with pytest.raises(UsageError, match="code_format must be one of either, undotted, dotted"):
        code_strings(["M51.16"], form="dots")


# -- end to end through the CLI -------------------------------------------------------------------------------------

def test_predict_cli_with_the_transformers_engine_and_constrain(tiny_dir, kb_file, tmp_path, runner):
    import json

    from icdreason.cli import app

    notes = tmp_path / "notes"
    notes.mkdir()
    (notes / "back.txt").write_text("Chief complaint: low back pain radiating to the left leg.")
    (notes / "cough.txt").write_text("Chief complaint: fever and productive cough for three days.")
    out = tmp_path / "out.jsonl"
    result = runner.invoke(app, ["predict", str(notes), "--engine", "transformers", "--model", str(tiny_dir),
                                 "--device", "cpu", "--n", "3", "--max-new-tokens", "10", "--constrain",
                                 "--prefill", "<think>x</think><diagnosis>", "--out", str(out), "-q"])
    assert result.exit_code == 0, result.stderr
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert sorted(r["id"] for r in records) == ["back", "cough"]
    from icdreason.kb import KnowledgeBase

    with KnowledgeBase.open(kb_file) as base:
        for r in records:
            assert r["engine"] == "transformers" and r["uses_llm"] is True and r["error"] is None
            assert r["status"] == "billable" and r["tokens_in"] > 0 and r["tokens_out"] > 0
            assert r["top_k"] and all(base.index.is_billable(c["code"]) for c in r["top_k"])
