"""A tiny, randomly initialised Qwen2 causal LM and a tokenizer built locally, saved with ``save_pretrained``.

Stands in for DeepICD-R1-7B in tests and benchmarks: same architecture family, same chat template style, a few tens of
thousands of parameters, no download. Output is random text until a test trains it.
"""

from __future__ import annotations

from pathlib import Path

CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "<|im_start|>{{ message['role'] }}\n{{ message['content'] }}<|im_end|>\n"
    "{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)

SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<pad>"]
# Tag pieces are single tokens so that a tiny model can learn the format quickly.
TAG_TOKENS = ["<think>", "</think>", "<diagnosis>", "</diagnosis>"]

_CORPUS = """
chief complaint chest pain shortness of breath fever cough abdominal pain nausea vomiting headache back pain
history of present illness patient presents with year old male female admitted for evaluation of
past medical history hypertension diabetes mellitus hyperlipidemia coronary artery disease asthma copd
medications allergies no known drug allergies physical exam vital signs temperature blood pressure heart rate
assessment plan the patient has findings consistent with diagnosis code reasoning because therefore
myocardial infarction pneumonia sepsis urinary tract infection heart failure fracture femur stroke
the a an of in on with without and or not no denies negative for ruled out likely suggests
""" + " ".join(
    f"{letter}{d1}{d2}" for letter in "ABCDEFGHIJKLMNOPQRSTUVWXYZ" for d1 in "0123456789" for d2 in "0123456789"
)


def build_tokenizer(directory: Path):
    """Train a small byte-level BPE tokenizer on a clinical word list and every category code; save and return it."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(unk_token=None))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=1200,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator([_CORPUS] * 3, trainer=trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        eos_token="<|im_end|>",
        pad_token="<pad>",
        bos_token=None,
        unk_token=None,
        additional_special_tokens=["<|im_start|>", "<|endoftext|>"],
    )
    fast.add_tokens(TAG_TOKENS)
    fast.chat_template = CHAT_TEMPLATE
    fast.padding_side = "left"
    fast.save_pretrained(directory)
    return fast


def build_tiny_model(directory: Path, *, hidden_size: int = 32, layers: int = 2, seed: int = 0) -> Path:
    """Save a tiny random Qwen2ForCausalLM and its tokenizer to ``directory``; returns the directory."""
    import torch
    from transformers import GenerationConfig, Qwen2Config, Qwen2ForCausalLM

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    tokenizer = build_tokenizer(directory)
    torch.manual_seed(seed)
    config = Qwen2Config(
        vocab_size=len(tokenizer),
        hidden_size=hidden_size,
        intermediate_size=hidden_size * 2,
        num_hidden_layers=layers,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=4096,
        tie_word_embeddings=True,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=None,
    )
    model = Qwen2ForCausalLM(config)
    model.generation_config = GenerationConfig(
        eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id, do_sample=False
    )
    model.save_pretrained(directory)
    return directory
