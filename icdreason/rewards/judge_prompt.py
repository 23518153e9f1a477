"""Judge prompts: icdreason's own bundled prompt, and prompt files in the DeepICD-R1 authors' JSON shape.

**icdreason's own prompt** (:data:`SYSTEM_PROMPT`, :data:`USER_TEMPLATE`) is written for icdreason; it is not the
authors' prompt. It is used unless a prompt file is given (``judge_prompt`` setting, ``--judge-prompt FILE``).

**A prompt file** is a JSON object ``{"SYSTEM": "...", "USER": "..."}`` — the shape of the authors' judge prompts
(``src/prompts/llm_judge_rag_prompt.json`` and ``llm_judge_basic_prompt.json`` in DATEXIS/DeepICD-R1), which load as
they are. Placeholders in the USER text are filled as the authors fill them (the SYSTEM text is sent unchanged):

=====================  ==========================================================================================
``$$ADMISSION_NOTE$$``  the admission note
``$$TRACE$$``           the reasoning trace, stripped
``$$ICD$$``             the predicted code as the model wrote it (stripped)
``$$SYMPTOMS$$``        the predicted code's symptom description (knowledge base; with ``judge_rag`` on)
``$$ICD_CHAPTER$$``     the coding guideline for the predicted code's chapter (knowledge base; ``judge_rag`` on)
=====================  ==========================================================================================

Unlike the authors' chained ``str.replace``, the placeholders are filled in one pass, so a note or trace that
contains a placeholder string is sent as written, not filled in a second time.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

from ..errors import InputError

__all__ = ["PLACEHOLDERS", "SYSTEM_PROMPT", "USER_TEMPLATE", "JudgePrompt", "load_judge_prompt"]

#: icdreason's own judge prompt (system message). Not the authors' prompt.
SYSTEM_PROMPT = (
    "You are an experienced clinical coder and physician reviewing the reasoning of a model that predicts the "
    "principal ICD-10-CM diagnosis from an admission note. Judge the reasoning, not only the code: is it grounded "
    "in the note, clinically sound, consistent with the predicted code, its typical symptoms and the official coding "
    "guideline, and concise? Answer only with JSON of the form {\"score\": n}, n an integer from 1 (poor) to 5 "
    "(excellent)."
)

#: icdreason's own judge prompt (user message, ``str.format`` fields). Not the authors' prompt.
USER_TEMPLATE = """Admission note:
{note}

Reasoning trace:
{trace}

Predicted ICD-10-CM code: {code} - {description}

Symptom description for the predicted code:
{symptoms}

Coding guideline for the predicted code's chapter:
{guideline}

Rate the reasoning trace from 1 to 5. Answer with {{"score": n}} only."""

#: The placeholders a prompt file may use, and the field of :meth:`JudgePrompt.messages` that fills each.
PLACEHOLDERS = {
    "$$ADMISSION_NOTE$$": "note",
    "$$TRACE$$": "trace",
    "$$ICD$$": "code",
    "$$SYMPTOMS$$": "symptoms",
    "$$ICD_CHAPTER$$": "chapter",
}
_PLACEHOLDER = re.compile("|".join(re.escape(p) for p in PLACEHOLDERS))


@dataclass(frozen=True)
class JudgePrompt:
    """A judge prompt read from a file in the authors' shape."""

    system: str
    user: str
    path: str
    sha256: str  # of the file's bytes: part of the judge cache key

    def uses(self, placeholder: str) -> bool:
        return placeholder in self.user

    def messages(self, *, note: str, trace: str, code: str, symptoms: str, chapter: str) -> list[dict[str, str]]:
        """The chat messages for one item: SYSTEM as written, USER with its placeholders filled in one pass."""
        values = {"note": note, "trace": trace, "code": code, "symptoms": symptoms, "chapter": chapter}
        user = _PLACEHOLDER.sub(lambda m: values[PLACEHOLDERS[m.group(0)]], self.user)
        return [{"role": "system", "content": self.system}, {"role": "user", "content": user}]


def load_judge_prompt(path: str | os.PathLike[str]) -> JudgePrompt:
    """Read a judge prompt file ``{"SYSTEM": ..., "USER": ...}``; the error names the file and what is wrong."""
    p = Path(path).expanduser()
    try:
        raw = p.read_bytes()
    except OSError as exc:
        raise InputError(f"judge prompt {p}: cannot be read ({exc.strerror or exc}); pass a JSON file "
                         '{"SYSTEM": ..., "USER": ...} with --judge-prompt') from None
    try:
        data = json.loads(raw.decode("utf-8-sig"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise InputError(f"judge prompt {p}: not valid JSON ({exc}); expected {{\"SYSTEM\": ..., \"USER\": ...}}") \
            from None
    if not isinstance(data, dict) or not all(isinstance(data.get(k), str) for k in ("SYSTEM", "USER")):
        keys = ", ".join(map(str, data)) if isinstance(data, dict) else type(data).__name__
        raise InputError(f"judge prompt {p}: expected an object with string keys SYSTEM and USER (found: {keys})")
    if not any(ph in data["USER"] for ph in ("$$TRACE$$", "$$ADMISSION_NOTE$$")):
        raise InputError(f"judge prompt {p}: the USER text has neither $$TRACE$$ nor $$ADMISSION_NOTE$$; the judge "
                         f"would not see the response (placeholders: {', '.join(PLACEHOLDERS)})")
    return JudgePrompt(system=data["SYSTEM"], user=data["USER"], path=str(p), sha256=hashlib.sha256(raw).hexdigest())
