"""A prompt-length limit in tokens, counted as the DeepICD-R1 authors' evaluation counts them.

Their ``src/evaluate.py`` leaves out prompts over 2,048 tokens, counting the tokens of the message texts joined by
single spaces (system, user and the assistant prefill; no chat template) with the model's tokenizer and its default
special tokens. :class:`PromptLimit` counts the same way and, by policy, either skips such a prompt (its record says
why, flag ``prompt_too_long``) or lets it through with the flag ``prompt_over_limit``.

The tokenizer is loaded lazily with transformers (only its files: no weights are read).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from ..engines.base import Prompt
from ..errors import DependencyError, EngineError, UsageError, install_hint

__all__ = ["LONG_PROMPT_POLICIES", "PromptLimit", "prompt_text_for_count"]

#: What happens to a prompt over the limit.
LONG_PROMPT_POLICIES = ("skip", "flag")


def prompt_text_for_count(prompt: Prompt) -> str:
    """The text the authors' length filter tokenizes: every message's content, then the prefill, joined by spaces."""
    parts = [m.get("content", "") for m in prompt.messages]
    if prompt.prefill:
        parts.append(prompt.prefill)
    return " ".join(parts)


class PromptLimit:
    """Counts prompt tokens with ``tokenizer`` (a loaded tokenizer, or a hub id / directory loaded on first use)."""

    def __init__(self, max_tokens: int, tokenizer: Any, *, policy: str = "skip"):
        if max_tokens < 1:
            raise UsageError(f"max_prompt_tokens must be at least 1 for a limit, not {max_tokens}")
        if policy not in LONG_PROMPT_POLICIES:
            raise UsageError(f"long_prompts must be one of {', '.join(LONG_PROMPT_POLICIES)}, not {policy!r}")
        self.max_tokens = max_tokens
        self.policy = policy
        self._tokenizer = tokenizer

    @property
    def tokenizer(self) -> Any:
        if isinstance(self._tokenizer, str):
            self._tokenizer = _load_tokenizer(self._tokenizer)
        return self._tokenizer

    def count(self, prompt: Prompt) -> int:
        """Tokens of the prompt's message texts (with the tokenizer's default special tokens)."""
        return len(self.tokenizer(prompt_text_for_count(prompt))["input_ids"])

    def apply(self, note, prompt: Prompt, flags: list[str]) -> tuple[Any, Prompt | None, list[str]]:
        """(note, prompt, flags) after the check: under ``skip`` an over-long prompt comes back as None and the note
        with a ``problem`` saying why (its record is written without generating); under ``flag`` it goes on."""
        tokens = self.count(prompt)
        if tokens <= self.max_tokens:
            return note, prompt, flags
        if self.policy == "flag":
            return note, prompt, [*flags, "prompt_over_limit"]
        why = (f"prompt has {tokens:,} tokens, over the {self.max_tokens:,} allowed (max_prompt_tokens): not generated, "
               "as the authors' evaluation leaves such prompts out")
        return replace(note, problem=why), None, [*flags, "prompt_too_long"]


def _load_tokenizer(name: str) -> Any:
    try:
        from transformers import AutoTokenizer
    except ImportError:
        raise DependencyError(f"counting prompt tokens needs transformers: {install_hint('hf')}") from None
    from ..models import expand_alias, hub_offline

    source = expand_alias(name)
    try:
        return AutoTokenizer.from_pretrained(source, local_files_only=hub_offline())
    except Exception as exc:  # noqa: BLE001 - missing files, network, gated repos: one line
        reason = " ".join(str(exc).split())[:160]
        raise EngineError(f"cannot load the tokenizer of {source} to count prompt tokens ({type(exc).__name__}: "
                          f"{reason}): pass --prompt-tokenizer with a hub id or directory, or --max-prompt-tokens 0 "
                          "for no limit") from None
