"""Synthetic training data for the train tests: admission-note-like texts paired with real billable ICD-10-CM codes.

The SFT file has the layout ``icdreason distill`` writes (``messages`` + ``id`` + ``code``); the RL file has verl's
layout that ``icdreason data prepare`` writes (``data_source``, ``prompt``, ``ability``, ``reward_model``,
``extra_info``). Words come from the tiny test tokenizer's vocabulary so that sequences stay short.
"""

from __future__ import annotations

import random
from pathlib import Path

#: Real billable codes (checked against the CMS tabular list in test_train_sft.py) and the words of their notes.
CASES = {
    "I21.4": "chest pain shortness of breath myocardial infarction",
    "J18.9": "fever cough shortness of breath pneumonia",
    "A41.9": "fever sepsis heart rate blood pressure",
    "N39.0": "fever urinary tract infection back pain",
    "I50.9": "shortness of breath heart failure",
    "S72.001A": "fracture femur back pain",
    "I63.9": "stroke headache nausea",
    "J44.1": "copd cough shortness of breath",
}

_FILLER = "patient presents with history of hypertension diabetes mellitus the a of and with denies".split()


def note_for(code: str, rng: random.Random) -> str:
    words = CASES[code].split() + rng.sample(_FILLER, 4)
    rng.shuffle(words)
    return "chief complaint " + " ".join(words)


#: A short prompt template (same prefill as the bundled one) that keeps the tiny model's sequences short; the tests
#: train on it and pass it to `icdreason predict --prompt-template`.
SHORT_TEMPLATE = """=== system ===
Predict the ICD-10-CM code.
=== user ===
{note}
=== prefill ===
<think>
"""


def write_template(path: Path) -> Path:
    path.write_text(SHORT_TEMPLATE, encoding="utf-8")
    return path


def answer_for(code: str) -> str:
    """The assistant's answer: the template's prefill (``<think>`` and a newline), a trace, the undotted code."""
    return f"<think>\nthe findings suggest this diagnosis\n</think>\n<diagnosis>{code.replace('.', '')}</diagnosis>"


def prompt_messages(note_id: str, note: str, template: Path | None = None) -> list[dict[str, str]]:
    """System and user messages of a prompt template (default: the bundled DeepICD-R1 one), as `icdreason data
    prepare` writes them."""
    from icdreason.prompts import load_template

    return load_template(template).render(note_id, note).messages


def write_sft_parquet(path: Path, rows: int = 300, *, seed: int = 0, template: Path | None = None) -> Path:
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = random.Random(seed)
    codes = sorted(CASES)
    records = []
    for i in range(rows):
        code = codes[i % len(codes)]
        records.append({
            "id": f"note-{i}",
            "code": code,
            "messages": [*prompt_messages(f"note-{i}", note_for(code, rng), template),
                         {"role": "assistant", "content": answer_for(code)}],
        })
    pq.write_table(pa.Table.from_pylist(records), path)
    return path


def write_rl_parquet(path: Path, rows: int = 16, *, seed: int = 1, template: Path | None = None) -> Path:
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = random.Random(seed)
    codes = sorted(CASES)
    records = []
    for i in range(rows):
        code = codes[i % len(codes)]
        note = note_for(code, rng)
        records.append({
            "data_source": "synthetic",
            "prompt": prompt_messages(f"note-{i}", note, template),
            "ability": "icd10cm",
            "reward_model": {"style": "rule", "ground_truth": code.replace(".", "")},
            "extra_info": {"id": f"note-{i}", "note": note, "hadm_id": str(1000 + i), "split": "train"},
        })
    pq.write_table(pa.Table.from_pylist(records), path)
    return path


def write_notes_jsonl(path: Path, rows: int = 40, *, seed: int = 2) -> Path:
    """Held-out notes (with their gold codes) in the JSONL shape `icdreason predict` reads."""
    import json

    rng = random.Random(seed)
    codes = sorted(CASES)
    with path.open("w") as fh:
        for i in range(rows):
            code = codes[i % len(codes)]
            fh.write(json.dumps({"id": f"test-{i}", "text": note_for(code, rng), "code": code}) + "\n")
    return path
