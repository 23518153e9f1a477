"""Rendering a :class:`~icdreason.engines.base.Prompt` with a tokenizer's chat template, shared by the local engines.

The assistant turn is opened by the template (``add_generation_prompt=True``) and the prefill is appended as text, so
the model continues inside it: the same string that ``continue_final_message=True`` produces for a final assistant
message, and what the transformers, vLLM and the OpenAI engine's ``/v1/completions`` fallback all send.
"""

from __future__ import annotations

from ..errors import EngineError
from .base import Prompt


def check_chat_template(tokenizer, model: str) -> None:
    """Raise a one-line :class:`EngineError` when the tokenizer cannot render chat messages."""
    if not getattr(tokenizer, "chat_template", None):
        raise EngineError(
            f"the tokenizer of {model} has no chat template: use an instruction-tuned model (or add a chat_template "
            f"to its tokenizer_config.json)"
        )


def render(tokenizer, prompt: Prompt) -> str:
    """The full prompt text: chat template with the assistant turn opened, then the prefill."""
    text = tokenizer.apply_chat_template(prompt.messages, tokenize=False, add_generation_prompt=True)
    return text + (prompt.prefill or "")


def encode(tokenizer, text: str) -> list[int]:
    """Token ids of a rendered prompt (the template already holds any BOS token, so none is added)."""
    return list(tokenizer(text, add_special_tokens=False)["input_ids"])


def eos_ids(tokenizer, generation_config=None) -> set[int]:
    """Every id that ends an answer: the generation config's eos ids (Qwen lists two) and the tokenizer's."""
    ids: set[int] = set()
    configured = getattr(generation_config, "eos_token_id", None)
    if isinstance(configured, int):
        ids.add(configured)
    elif configured:
        ids.update(int(i) for i in configured)
    if tokenizer.eos_token_id is not None:
        ids.add(int(tokenizer.eos_token_id))
    return ids
