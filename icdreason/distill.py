"""``icdreason distill``: reasoning traces for SFT from a teacher model (paper section 3.2).

The teacher sees the admission note, the gold code with its description, the code's symptom description and its
chapter's coding guideline (:func:`icdreason.kb.enrich.enrichment_for`), and is asked for a reasoning trace that
arrives at that code from the note without naming it first. A trace is kept when

- the response passes the paper's format check (:func:`icdreason.parse.parse_response`),
- its diagnosis is the gold code,
- its length in words is within ``[min_words, max_words]`` (paper: 31-883 words),
- it does not name the gold code before the last fifth of the trace (unless ``allow_early_code``).

The teacher runs on any predict engine (transformers, vllm, openai, …). Every note's outcome is appended to a
progress log next to the output, so an interrupted run resumes where it stopped; the SFT Parquet (trl's
conversational layout, the student prompt of ``icdreason predict`` plus the traced answer) is rewritten atomically
from that log at the end of each run.
"""

from __future__ import annotations

import json
import os
import re
import statistics
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .codes import dotted, normalize
from .engines.base import Engine, Generation, Prompt, SamplingParams
from .errors import InputError, UsageError
from .tables import iter_rows

__all__ = ["DistillOptions", "DistillResult", "distill", "teacher_prompt", "read_examples", "check_trace",
           "judge_generation", "TEACHER_SYSTEM"]

TEACHER_SYSTEM = (
    "You are an expert clinician and clinical coder writing teaching material. You are given an admission note and "
    "the ICD-10-CM code that was finally coded as the principal diagnosis of this hospital stay, with background on "
    "the code. Write the reasoning a careful physician would follow from the admission note alone: the presenting "
    "complaint, history and findings, the differential diagnosis and why it narrows, and how the evidence supports "
    "the diagnosis and the specific code. Reason from the note towards the diagnosis; do not state the code or "
    "announce the answer at the start, and do not mention that the code was given to you. Write the reasoning inside "
    "<think> </think> tags, then the code alone inside <diagnosis> </diagnosis> tags:\n"
    "<think>your reasoning</think><diagnosis>{code}</diagnosis>"
)

TEACHER_USER = """[ADMISSION NOTE]
{note}
[END OF ADMISSION NOTE]

Coded principal diagnosis: {code} - {description}

Symptom description for this code:
{symptoms}

Coding guideline for this code's chapter:
{guideline}

Write the reasoning trace that leads from the note to this diagnosis, then give {code} in the diagnosis tags."""


@dataclass
class DistillOptions:
    """Settings of a distillation run."""

    data: Path
    out: Path
    min_words: int = 31
    max_words: int = 883
    allow_early_code: bool = False
    n: int = 1  # samples per note; the first that passes is kept
    temperature: float | None = None  # None: 0 for one sample, 0.9 for several
    max_new_tokens: int = 1536
    batch_size: int = 16  # notes per engine call (and per progress-log flush)
    max_note_chars: int = 16000
    limit: int | None = None
    split: str | None = None  # only rows of this split (RL files carry extra_info.split)
    prompt_template: str | None = None  # the STUDENT prompt written into the SFT file
    seed: int | None = 0

    def __post_init__(self) -> None:
        if not 0 < self.min_words <= self.max_words:
            raise UsageError(f"need 0 < --min-words <= --max-words (got {self.min_words}, {self.max_words})")
        if self.n < 1 or self.batch_size < 1:
            raise UsageError("--n and --batch-size must be at least 1")


@dataclass
class DistillResult:
    out: Path
    stats: dict[str, Any] = field(default_factory=dict)


# -- input --------------------------------------------------------------------------------------------------------
def _example(row: dict[str, Any], index: int) -> dict[str, Any] | None:
    info = row.get("extra_info") if isinstance(row.get("extra_info"), dict) else {}
    rm = row.get("reward_model") if isinstance(row.get("reward_model"), dict) else {}
    note = row.get("note") or info.get("note") or row.get("text")
    code = rm.get("ground_truth") or row.get("code") or row.get("gold") or info.get("code")
    rid = row.get("id") or info.get("id") or str(index)
    if not note or not code:
        return None
    return {"id": str(rid), "note": str(note), "code": dotted(normalize(str(code))),
            "split": info.get("split") or row.get("split")}


def read_examples(path: Path, *, split: str | None = None) -> Iterator[dict[str, Any]]:
    """(id, note, gold code) rows from the RL Parquet of ``data prepare``, ``admission_notes.parquet``, or any
    JSONL/CSV/Parquet with ``id``, ``note`` (or ``text``) and ``code`` (or ``gold``) columns; streamed."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise InputError(f"distillation data not found: {path} (the RL Parquet of `icdreason data prepare`)")
    if path.suffix.lower() not in (".parquet", ".jsonl", ".ndjson", ".csv"):
        raise InputError(f"{path}: expected .parquet, .jsonl or .csv")
    rows = iter_rows(path, batch_size=512)
    seen = 0
    for i, row in enumerate(rows):
        ex = _example(row, i)
        if ex is None:
            continue
        seen += 1
        if split is None or ex["split"] == split:
            yield ex
    if seen == 0:
        raise InputError(f"{path}: no row has a note and a gold code (columns note/text and code/gold, or "
                         "extra_info.note and reward_model.ground_truth)")


# -- prompts and checks -------------------------------------------------------------------------------------------
def teacher_prompt(example: dict[str, Any], kb, *, max_note_chars: int = 16000) -> Prompt:
    """The teacher's prompt: note, gold code and description, symptoms and chapter guideline, prefilled ``<think>``."""
    from .kb.enrich import enrichment_for, prompt_texts
    from .notes import truncate_middle
    from .prompts import neutralize_note

    code = example["code"]
    note, _ = truncate_middle(example["note"], max_note_chars)
    note, _ = neutralize_note(note)
    description, extra = "(no description in the knowledge base)", {}
    if kb is not None:
        description = kb.description(code) or description
        extra = enrichment_for(kb, code)
    symptoms, guideline = prompt_texts(extra)
    user = TEACHER_USER.format(note=note, code=code, description=description, symptoms=symptoms, guideline=guideline)
    messages = [{"role": "system", "content": TEACHER_SYSTEM.format(code=code)}, {"role": "user", "content": user}]
    return Prompt(note_id=example["id"], note=note, messages=messages, prefill="<think>\n")


def _mentions(trace: str, code: str) -> int | None:
    """Character offset of the first mention of the code (dotted or undotted) in the trace, or None."""
    forms = {re.escape(dotted(code)), re.escape(normalize(code))}
    m = re.search(rf"(?<![A-Za-z0-9])(?:{'|'.join(sorted(forms))})(?![A-Za-z0-9])", trace)
    return None if m is None else m.start()


def check_trace(text: str, gold: str, opts: DistillOptions) -> tuple[str | None, str | None]:
    """(trace, None) when the response is kept, else (None, why it was rejected)."""
    from .parse import parse_response

    if not text or not text.strip():
        return None, "empty response"
    parsed = parse_response(text, prefilled_think=True)
    if not parsed.format_ok:
        return None, "format invalid"
    if parsed.code != dotted(gold):
        return None, "diagnosis is not the gold code"
    trace = parsed.trace.strip()
    words = len(trace.split())
    if words < opts.min_words:
        return None, f"shorter than {opts.min_words} words"
    if words > opts.max_words:
        return None, f"longer than {opts.max_words} words"
    if not opts.allow_early_code:
        at = _mentions(trace, gold)
        if at is not None and at < 0.8 * len(trace):
            return None, "names the code before the end of the trace"
    return trace, None


# -- the run ------------------------------------------------------------------------------------------------------
def _progress_path(out: Path) -> Path:
    return out.with_name(out.name + ".progress.jsonl")


def _load_progress(path: Path) -> dict[str, dict[str, Any]]:
    done: dict[str, dict[str, Any]] = {}
    if path.is_file():
        for line in path.open(encoding="utf-8", newline="\n"):  # lines end at \n only
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except ValueError:  # a line cut by a crash
                continue
            if not str(rec.get("reason") or "").startswith("engine error"):
                done[rec["id"]] = rec
    return done


def distill(opts: DistillOptions, engine: Engine, kb=None,
            progress: Callable[[int, int], None] | None = None) -> DistillResult:
    """Generate, filter and write the SFT traces (see the module docstring). Resumes from the progress log.

    Generation goes through :meth:`Engine.stream <icdreason.engines.base.Engine.stream>`: batch by batch here, or
    spread over a Ray cluster with :class:`icdreason.cluster.RayEngine` (``distill --ray``).
    """
    from .predict import sampling_for

    opts.out = Path(opts.out).expanduser()
    opts.out.parent.mkdir(parents=True, exist_ok=True)
    log_path = _progress_path(opts.out)
    done = _load_progress(log_path)
    params: SamplingParams = sampling_for(opts.n, opts.temperature, max_new_tokens=opts.max_new_tokens, seed=opts.seed)
    seen = [0]  # notes read so far (within --limit)
    examples: dict[int, dict[str, Any]] = {}  # id(prompt) -> its example

    def prompts() -> Iterator[Prompt]:
        for ex in read_examples(opts.data, split=opts.split):
            if opts.limit is not None and seen[0] >= opts.limit:
                return
            seen[0] += 1
            if ex["id"] in done:
                continue
            prompt = teacher_prompt(ex, kb, max_note_chars=opts.max_note_chars)
            examples[id(prompt)] = ex
            yield prompt

    with log_path.open("a", encoding="utf-8") as log:
        for pairs in engine.stream(prompts(), params, batch_size=opts.batch_size):
            for prompt, gen in pairs:
                ex = examples.pop(id(prompt))
                rec = judge_generation(ex, gen, opts)
                log.write(json.dumps(rec) + "\n")
                done[ex["id"]] = rec
            log.flush()
            if progress:
                progress(len(done), seen[0])
    stats = _write_sft(opts, done, engine)
    stats["attempted"] = seen[0]
    return DistillResult(out=opts.out, stats=stats)


def judge_generation(example: dict[str, Any], gen: Generation, opts: DistillOptions) -> dict[str, Any]:
    """The progress-log entry of one note: kept with its trace (the first sample that passes
    :func:`check_trace`), or the reason it was not."""
    rec: dict[str, Any] = {"id": example["id"], "code": example["code"], "split": example.get("split"), "kept": False}
    if gen.error:
        rec["reason"] = f"engine error: {gen.error}"
        return rec
    reasons = []
    for text in gen.texts or [""]:
        trace, why = check_trace(text, example["code"], opts)
        if trace is not None:
            rec.update(kept=True, trace=trace, reason=None, note=example["note"])
            return rec
        reasons.append(why)
    rec["reason"] = reasons[0]
    return rec


def _write_sft(opts: DistillOptions, done: dict[str, dict[str, Any]], engine: Engine) -> dict[str, Any]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    from .prompts import load_template, neutralize_note

    template = load_template(opts.prompt_template)
    message = pa.struct([("role", pa.string()), ("content", pa.string())])
    schema = pa.schema([("messages", pa.list_(message)), ("id", pa.string()), ("code", pa.string()),
                        ("split", pa.string()), ("trace_words", pa.int32()), ("teacher", pa.string())])
    kept = [r for r in done.values() if r.get("kept")]
    rows = []
    for r in kept:
        note, _ = neutralize_note(r["note"])
        messages = template.render(r["id"], note).messages
        answer = f"<think>\n{r['trace']}\n</think>\n<diagnosis>{r['code']}</diagnosis>"
        rows.append({"messages": [*messages, {"role": "assistant", "content": answer}], "id": r["id"],
                     "code": r["code"], "split": r.get("split"), "trace_words": len(r["trace"].split()),
                     "teacher": f"{engine.name}:{engine.model}"})
    tmp = opts.out.with_name(f".{opts.out.name}.tmp-{os.getpid()}")
    pq.write_table(pa.Table.from_pylist(rows, schema=schema), tmp, compression="zstd")
    os.replace(tmp, opts.out)
    words = [row["trace_words"] for row in rows]
    reasons = Counter(r.get("reason") for r in done.values() if not r.get("kept"))
    return {
        "samples": len(rows),
        "unique_codes": len({row["code"] for row in rows}),
        "mean_words": statistics.fmean(words) if words else 0.0,
        "min_words": min(words) if words else 0,
        "max_words": max(words) if words else 0,
        "processed": len(done),
        "rejected": dict(sorted(reasons.items(), key=lambda kv: -kv[1])),
    }
