"""``icdreason data prepare``: MIMIC-IV discharge summaries -> admission notes -> split -> verl RL and trl SFT Parquet.

Steps (each streams; the note texts never sit in Python all at once):

1. cohort (DuckDB): one discharge note per admission (lowest ``note_seq``), the ``seq_num = 1`` diagnosis, ICD-10 only;
2. admission notes: every note sectioned (:mod:`icdreason.data.sections`) and written to ``admission_notes.parquet``
   (reused on a re-run with the same inputs and options: the step is resumable);
3. gold check: every target code is looked up in the knowledge base's ICD-10-CM release (MIMIC-IV spans several
   yearly releases, so a code may be a header or unknown in the one installed); counted, flagged
   (``extra_info.gold_status``, the SFT column ``gold_status``, ``labels/gold_not_billable.tsv``) and kept, or dropped
   with ``drop_invalid_gold``;
4. split: seeded, stratified by target code, by patient (default: no patient in two splits) or by admission
   (:mod:`icdreason.data.split`);
5. output: ``rl/{train,validation,test}.parquet`` (verl), ``sft/…`` (trl, code-only answers), ``labels/*.tsv``
   (chapter, category and code vocabularies with counts per split) and ``stats.json``.

Every file is written under a temporary name and renamed when complete.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ..codes import category, chapter_of, dotted, normalize
from ..errors import InputError, UsageError
from .sections import KEPT_SECTIONS, admission_note
from .split import SPLITS, grouped_split, split_report, stratified_split

__all__ = ["PrepareOptions", "PrepareResult", "prepare_mimic", "DATA_SOURCE", "SFT_ANSWER", "SPLIT_BY",
           "INVALID_GOLD"]

DATA_SOURCE = "mimic-iv-icd10"
#: The assistant answer of the code-only SFT files (no reasoning; ``icdreason distill`` writes traced answers).
SFT_ANSWER = "<think>\n</think>\n<diagnosis>{code}</diagnosis>"
_NOTES_FILE = "admission_notes.parquet"
#: ``--split-by``: keep each patient's admissions in one split (default), or split admissions independently.
SPLIT_BY = ("patient", "admission")
#: Knowledge-base statuses of a gold code that cannot be a target in the installed release.
INVALID_GOLD = ("header", "unknown", "malformed")


@dataclass
class PrepareOptions:
    """Settings of one preparation run (the defaults follow the paper)."""

    notes: Path
    diagnoses: Path
    out: Path
    validation: float = 0.1
    test: float = 0.2
    seed: int = 0
    min_per_code: int = 3
    min_note_chars: int = 50
    prompt_template: str | None = None
    data_source: str = DATA_SOURCE
    batch_rows: int = 2000
    limit: int | None = None
    force: bool = False
    split_by: str = "patient"
    drop_invalid_gold: bool = False
    kb: Path | None = None  # knowledge base for the gold check (default: $ICDREASON_KB, else the home default)


@dataclass
class PrepareResult:
    """What was written and the statistics printed by the CLI."""

    out: Path
    files: dict[str, str] = field(default_factory=dict)
    stats: dict[str, Any] = field(default_factory=dict)


def _schemas():
    import pyarrow as pa

    message = pa.struct([("role", pa.string()), ("content", pa.string())])
    notes = pa.schema([
        ("id", pa.string()), ("hadm_id", pa.int64()), ("subject_id", pa.int64()), ("code", pa.string()),
        ("code_nodot", pa.string()), ("category", pa.string()), ("chapter", pa.int32()), ("note", pa.string()),
        ("missing_sections", pa.list_(pa.string())), ("source_chars", pa.int64()),
    ])
    extra = pa.struct([
        ("id", pa.string()), ("hadm_id", pa.int64()), ("subject_id", pa.int64()), ("split", pa.string()),
        ("index", pa.int64()), ("note", pa.string()), ("code", pa.string()), ("code_nodot", pa.string()),
        ("category", pa.string()), ("chapter", pa.int32()), ("flags", pa.list_(pa.string())),
        ("gold_status", pa.string()),
    ])
    rl = pa.schema([
        ("data_source", pa.string()), ("prompt", pa.list_(message)), ("ability", pa.string()),
        ("reward_model", pa.struct([("style", pa.string()), ("ground_truth", pa.string())])), ("extra_info", extra),
    ])
    sft = pa.schema([("messages", pa.list_(message)), ("id", pa.string()), ("code", pa.string()),
                     ("split", pa.string()), ("gold_status", pa.string())])
    return notes, rl, sft


def _fingerprint(opts: PrepareOptions) -> str:
    parts = []
    for p in (opts.notes, opts.diagnoses):
        st = Path(p).stat()
        parts.append(f"{Path(p).resolve()}:{st.st_size}:{int(st.st_mtime)}")
    parts.append(f"min_note_chars={opts.min_note_chars};limit={opts.limit};sections={','.join(KEPT_SECTIONS)}")
    return hashlib.sha256("|".join(parts).encode()).hexdigest()


def _tmp(path: Path) -> Path:
    return path.with_name(f".{path.name}.tmp-{os.getpid()}")


def _admission_notes(opts: PrepareOptions, say: Callable[[str], None]) -> dict[str, Any]:
    """Step 1+2: write ``admission_notes.parquet``; return the cohort and section statistics."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from .mimic import MimicSource

    target = opts.out / _NOTES_FILE
    stats_file = opts.out / ".admission_notes.stats.json"
    fingerprint = _fingerprint(opts)
    if target.is_file() and stats_file.is_file() and not opts.force:
        saved = json.loads(stats_file.read_text())
        if saved.get("fingerprint") == fingerprint:
            say(f"reusing {target} (same inputs and options; --force rebuilds it)")
            return saved["stats"]
    schema = _schemas()[0]
    source = MimicSource(opts.notes, opts.diagnoses)
    try:
        cohort = source.prepare()
        say(f"cohort: {cohort['icd10_admissions']:,} ICD-10 admissions with a discharge note "
            f"({cohort['icd9_excluded']:,} ICD-9 admissions excluded)")
        missing = Counter()
        kept = empty = no_chapter = 0
        tmp = _tmp(target)
        writer = pq.ParquetWriter(tmp, schema, compression="zstd")
        try:
            for batch in source.batches(opts.batch_rows, opts.limit):
                cols = batch.to_pydict()
                rows = {name: [] for name in schema.names}
                for note_id, subject, hadm, code_raw, text in zip(cols["note_id"], cols["subject_id"],
                                                                  cols["hadm_id"], cols["icd_code"], cols["text"]):
                    adm = admission_note(text or "")
                    missing.update(adm.missing)
                    if len(adm.text) < opts.min_note_chars:
                        empty += 1
                        continue
                    code = normalize(code_raw or "")
                    chapter = chapter_of(code)
                    no_chapter += chapter is None
                    for name, value in (("id", note_id), ("hadm_id", hadm), ("subject_id", subject),
                                        ("code", dotted(code)), ("code_nodot", code), ("category", category(code)),
                                        ("chapter", chapter.number if chapter else None), ("note", adm.text),
                                        ("missing_sections", adm.missing), ("source_chars", len(text or ""))):
                        rows[name].append(value)
                    kept += 1
                writer.write_table(pa.Table.from_pydict(rows, schema=schema))
                say(f"  sectioned {kept + empty:,} notes")
        finally:
            writer.close()
        os.replace(tmp, target)
    finally:
        source.close()
    seen = kept + empty
    stats = {**cohort, "sectioned": seen, "kept": kept, "excluded_short_admission_note": empty,
             "codes_outside_chapters": no_chapter,
             "missing_sections": {k: missing.get(k, 0) for k in KEPT_SECTIONS}}
    stats_file.write_text(json.dumps({"fingerprint": fingerprint, "stats": stats}))
    return stats


def _messages(template, note_id: str, note: str) -> tuple[list[dict[str, str]], str, list[str]]:
    from ..prompts import neutralize_note

    clean, flags = neutralize_note(note)
    prompt = template.render(note_id, clean)
    return prompt.messages, clean, flags


def _write_splits(opts: PrepareOptions, assignment: dict[str, str], status: dict[str, str],
                  say: Callable[[str], None]) -> dict[str, str]:
    """Step 5: the RL and SFT files of each split (admissions without a split were dropped)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from ..prompts import load_template

    template = load_template(opts.prompt_template)
    _, rl_schema, sft_schema = _schemas()
    files: dict[str, str] = {}
    writers: dict[tuple[str, str], Any] = {}
    paths: dict[tuple[str, str], Path] = {}
    for kind in ("rl", "sft"):
        (opts.out / kind).mkdir(parents=True, exist_ok=True)
        for split in SPLITS:
            path = opts.out / kind / f"{split}.parquet"
            paths[(kind, split)] = path
            writers[(kind, split)] = pq.ParquetWriter(_tmp(path), rl_schema if kind == "rl" else sft_schema,
                                                      compression="zstd")
    index = Counter()
    try:
        for batch in pq.ParquetFile(opts.out / _NOTES_FILE).iter_batches(batch_size=opts.batch_rows):
            rl_rows = {s: [] for s in SPLITS}
            sft_rows = {s: [] for s in SPLITS}
            for r in batch.to_pylist():
                split = assignment.get(r["id"])
                if split is None:
                    continue
                messages, clean, flags = _messages(template, r["id"], r["note"])
                rl_rows[split].append({
                    "data_source": opts.data_source, "prompt": messages, "ability": "medicine",
                    "reward_model": {"style": "rule", "ground_truth": r["code"]},
                    "extra_info": {"id": r["id"], "hadm_id": r["hadm_id"], "subject_id": r["subject_id"],
                                   "split": split, "index": index[split], "note": clean, "code": r["code"],
                                   "code_nodot": r["code_nodot"], "category": r["category"],
                                   "chapter": r["chapter"], "flags": flags, "gold_status": status[r["id"]]},
                })
                answer = SFT_ANSWER.format(code=r["code"])
                sft_rows[split].append({"messages": [*messages, {"role": "assistant", "content": answer}],
                                        "id": r["id"], "code": r["code"], "split": split,
                                        "gold_status": status[r["id"]]})
                index[split] += 1
            for split in SPLITS:
                if rl_rows[split]:
                    writers[("rl", split)].write_table(pa.Table.from_pylist(rl_rows[split], schema=rl_schema))
                    writers[("sft", split)].write_table(pa.Table.from_pylist(sft_rows[split], schema=sft_schema))
    finally:
        for w in writers.values():
            w.close()
    for key, path in paths.items():
        os.replace(_tmp(path), path)
        files[f"{key[0]}_{key[1]}"] = str(path)
    say(f"wrote {sum(index.values()):,} samples")
    return files


def _prompt_info(path: str | None) -> dict[str, str]:
    """Which prompt the RL and SFT rows were rendered with: name, sha256 of the file, source."""
    from ..prompts import load_template

    template = load_template(path)
    return {"name": template.name, "sha256": template.sha256, "source": template.source}


def _labels(out: Path, rows: list[tuple[str, str]], assignment: dict[str, str]) -> tuple[dict[str, str], dict]:
    """Label vocabularies at the three levels with per-split counts; returns files and per-level class counts."""
    from ..codes import CHAPTER_RANGES

    levels = {"chapter": Counter(), "category": Counter(), "code": Counter()}
    per_split = {lvl: {s: Counter() for s in SPLITS} for lvl in levels}
    for note_id, code in rows:
        split = assignment.get(note_id)
        if split is None:
            continue
        ch = chapter_of(code)
        labels = {"chapter": str(ch.number) if ch else "NIL", "category": category(code), "code": dotted(code)}
        for lvl, label in labels.items():
            levels[lvl][label] += 1
            per_split[lvl][split][label] += 1
    (out / "labels").mkdir(parents=True, exist_ok=True)
    titles = {str(c.number): f"{c.roman}\t{c.range}\t{c.title}" for c in CHAPTER_RANGES}
    blank = "\t\t"
    files = {}
    for lvl, counts in levels.items():
        path = out / "labels" / f"{lvl}.tsv"
        head = "label\troman\trange\ttitle" if lvl == "chapter" else "label"
        lines = [f"{head}\tn\t" + "\t".join(f"n_{s}" for s in SPLITS)]
        key = (lambda x: (int(x) if x.isdigit() else 99)) if lvl == "chapter" else str
        for label in sorted(counts, key=key):
            name = f"{label}\t{titles.get(label, blank)}" if lvl == "chapter" else label
            lines.append(f"{name}\t{counts[label]}\t" + "\t".join(str(per_split[lvl][s][label]) for s in SPLITS))
        tmp = _tmp(path)
        tmp.write_text("\n".join(lines) + "\n")
        os.replace(tmp, path)
        files[f"labels_{lvl}"] = str(path)
    classes = {lvl: {"all": len(levels[lvl]), **{s: len(per_split[lvl][s]) for s in SPLITS}} for lvl in levels}
    return files, classes


def _gold_check(opts: PrepareOptions, ids: list[str], codes: list[str],
                say: Callable[[str], None]) -> tuple[dict[str, str], dict[str, Any]]:
    """Step 3: the knowledge-base status of every target code; ``labels/gold_not_billable.tsv`` lists the others."""
    from ..kb import KnowledgeBase

    with KnowledgeBase.open(opts.kb, progress=say) as kb:
        release = kb.release
        distinct = sorted(set(codes))
        by_code = dict(zip(distinct, kb.statuses(distinct)))
    status = {note_id: by_code[code] for note_id, code in zip(ids, codes)}
    counts = Counter(status.values())
    per_code = Counter(code for code in codes if by_code[code] != "billable")
    path = opts.out / "labels" / "gold_not_billable.tsv"
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = ["code\tstatus\tn"] + [f"{dotted(c)}\t{by_code[c]}\t{n}" for c, n in
                                   sorted(per_code.items(), key=lambda item: (-item[1], item[0]))]
    tmp = _tmp(path)
    tmp.write_text("\n".join(lines) + "\n")
    os.replace(tmp, path)
    stats = {"kb_release": release,
             "gold_status": {k: counts.get(k, 0) for k in ("billable", "header", "unknown", "malformed")},
             "gold_codes_not_billable": len(per_code),
             "gold_invalid": "dropped" if opts.drop_invalid_gold else "kept (flagged)",
             "gold_dropped": sum(counts.get(k, 0) for k in INVALID_GOLD) if opts.drop_invalid_gold else 0}
    return status, stats


def prepare_mimic(opts: PrepareOptions, progress: Callable[[str], None] | None = None) -> PrepareResult:
    """Run the whole preparation (see the module docstring) and return the statistics."""
    import pyarrow.parquet as pq

    say = progress or (lambda _m: None)
    if opts.split_by not in SPLIT_BY:
        raise UsageError(f"unknown --split-by {opts.split_by!r}: choose patient or admission")
    for path, flag in ((opts.notes, "--notes"), (opts.diagnoses, "--diagnoses")):
        if not Path(path).expanduser().is_file():
            raise InputError(f"{flag} file not found: {path}")
    opts.out = Path(opts.out).expanduser()
    opts.out.mkdir(parents=True, exist_ok=True)
    stats = _admission_notes(opts, say)
    table = pq.read_table(opts.out / _NOTES_FILE, columns=["id", "code_nodot", "subject_id"])
    ids, codes = table.column("id").to_pylist(), table.column("code_nodot").to_pylist()
    patients = table.column("subject_id").to_pylist()
    if not ids:
        raise InputError("no admission is left after filtering (ICD-10, seq_num = 1, a non-empty admission note): "
                         "check that --notes and --diagnoses come from the same MIMIC-IV release")
    status, gold = _gold_check(opts, ids, codes, say)
    say(f"gold codes in the knowledge base's release {gold['kb_release']}: "
        + ", ".join(f"{n:,} {k}" for k, n in gold["gold_status"].items() if n))
    keep = [i for i, note_id in enumerate(ids) if not (opts.drop_invalid_gold and status[note_id] in INVALID_GOLD)]
    if not keep:
        raise InputError("every admission's gold code is a header or unknown in the knowledge base's release: "
                         "check --kb, or leave out --drop-invalid-gold")
    kept_ids, kept_codes = [ids[i] for i in keep], [codes[i] for i in keep]
    kept_patients = [patients[i] for i in keep]
    options = {"validation": opts.validation, "test": opts.test, "seed": opts.seed, "min_per_code": opts.min_per_code}
    if opts.split_by == "patient":
        split = grouped_split(kept_ids, kept_codes, kept_patients, **options)
    else:
        split = stratified_split(kept_ids, kept_codes, **options)
    files = _write_splits(opts, split.assignment, status, say)
    label_files, classes = _labels(opts.out, list(zip(ids, codes)), split.assignment)
    files.update(label_files)
    files["labels_gold_not_billable"] = str(opts.out / "labels" / "gold_not_billable.tsv")
    files["admission_notes"] = str(opts.out / _NOTES_FILE)
    stats.update(gold)
    stats.update({
        "samples": {s: split.sizes[s] for s in SPLITS} | {"all": len(kept_ids)},
        "split_by": opts.split_by,
        "split": split_report(split.assignment, kept_ids, kept_codes, kept_patients),
        "rare_codes_to_train": split.rare_codes,
        "rare_samples_to_train": split.rare_samples,
        "classes": classes,
        "options": {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(opts).items()},
        "prompt": _prompt_info(opts.prompt_template),
    })
    stats_path = opts.out / "stats.json"
    tmp = _tmp(stats_path)
    tmp.write_text(json.dumps(stats, indent=2))
    os.replace(tmp, stats_path)
    files["stats"] = str(stats_path)
    return PrepareResult(out=opts.out, files=files, stats=stats)
