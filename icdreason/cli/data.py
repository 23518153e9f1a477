"""``icdreason data``: prepare MIMIC-IV training data (verl RL and trl SFT Parquet, label vocabularies)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from .common import KbOption, cell, console, disclaimer, say

app = typer.Typer(help="Prepare training data from MIMIC-IV (users bring their own credentialed copy).",
                  no_args_is_help=True)


@app.command("prepare")
def prepare(
    notes: Annotated[Path, typer.Option("--notes", help="MIMIC-IV-Note discharge.csv.gz (or .csv/.parquet).")],
    diagnoses: Annotated[Path, typer.Option("--diagnoses", help="MIMIC-IV hosp/diagnoses_icd.csv.gz.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Output folder (rl/, sft/, labels/, stats.json).")],
    seed: Annotated[int, typer.Option(help="Seed of the stratified split.")] = 0,
    validation: Annotated[float, typer.Option(help="Validation share (paper: 9,260 of 93,142 ≈ 0.1).")] = 0.1,
    test: Annotated[float, typer.Option(help="Test share (paper: 18,654 of 93,142 ≈ 0.2).")] = 0.2,
    min_per_code: Annotated[int, typer.Option(help="Codes with fewer samples go to train unsplit.")] = 3,
    min_note_chars: Annotated[int, typer.Option(help="Drop admissions whose admission note is shorter.")] = 50,
    prompt_template: Annotated[Optional[str], typer.Option(
        help="Prompt template for the RL/SFT prompts (default: the bundled DeepICD-R1 prompt).")] = None,
    data_source: Annotated[str, typer.Option(help="verl data_source value.")] = "mimic-iv-icd10",
    limit: Annotated[Optional[int], typer.Option(help="Only the first N admissions (a quick trial).")] = None,
    force: Annotated[bool, typer.Option("--force", help="Rebuild admission_notes.parquet even if current.")] = False,
    split_by: Annotated[str, typer.Option("--split-by", help="patient: all admissions of a patient (subject_id) in "
                                          "one split; admission: admissions split independently (a patient can be "
                                          "in two splits).")] = "patient",
    drop_invalid_gold: Annotated[bool, typer.Option(
        "--drop-invalid-gold", help="Drop admissions whose gold code is a header or unknown in the knowledge base's "
        "ICD-10-CM release (default: keep them, flagged in gold_status and counted).")] = False,
    kb: KbOption = None,
) -> None:
    """Build admission notes (admission-time sections only), split 70/10/20 by patient, stratified by the
    first-coded ICD-10 diagnosis, and write verl RL + trl SFT Parquet, label vocabularies and statistics. Gold codes
    that are headers or unknown in the knowledge base's release are counted and flagged (or dropped)."""
    from ..data import PrepareOptions, prepare_mimic

    result = prepare_mimic(PrepareOptions(notes=notes, diagnoses=diagnoses, out=out, validation=validation, test=test,
                                          seed=seed, min_per_code=min_per_code, min_note_chars=min_note_chars,
                                          prompt_template=prompt_template, data_source=data_source, limit=limit,
                                          force=force, split_by=split_by, drop_invalid_gold=drop_invalid_gold,
                                          kb=kb), progress=say)
    print_stats(result.stats)
    console.print(cell(f"\nwritten to {result.out}: rl/ (verl), sft/ (trl, code-only answers), labels/, stats.json"))
    disclaimer()


def print_stats(stats: dict) -> None:
    """The cohort, section, split and label tables."""
    from rich.table import Table

    release = stats.get("kb_release") or "?"
    cohort = Table(title=f"Cohort (gold codes checked against ICD-10-CM release {release})", show_header=False)
    cohort.add_column("what")
    cohort.add_column("admissions", justify="right")
    fate = "dropped" if stats.get("gold_invalid") == "dropped" else "kept, flagged"
    gold = stats.get("gold_status", {})
    for label, value in (("discharge notes", stats.get("discharge_notes")),
                         ("admissions with a note", stats.get("admissions_with_note")),
                         ("  without a seq_num = 1 diagnosis", stats.get("without_first_diagnosis")),
                         ("  first diagnosis ICD-9 (excluded)", stats.get("icd9_excluded")),
                         ("  first diagnosis ICD-10", stats.get("icd10_admissions")),
                         ("  admission note too short (excluded)", stats.get("excluded_short_admission_note")),
                         (f"  gold code a header in the release ({fate})", gold.get("header")),
                         (f"  gold code unknown to the release ({fate})", gold.get("unknown")),
                         (f"  gold code malformed ({fate})", gold.get("malformed")),
                         ("samples kept", stats.get("samples", {}).get("all")),
                         ("codes too rare to stratify (to train)", stats.get("rare_codes_to_train")),
                         ("  their samples", stats.get("rare_samples_to_train"))):
        cohort.add_row(label, f"{value or 0:,}")
    console.print(cohort)

    sections = Table(title=f"Notes lacking a section (of {stats.get('sectioned', 0):,})")
    sections.add_column("section")
    sections.add_column("missing", justify="right")
    sections.add_column("share", justify="right")
    total = max(stats.get("sectioned", 0), 1)
    for name, n in stats.get("missing_sections", {}).items():
        sections.add_row(name, f"{n:,}", f"{100 * n / total:.1f}%")
    console.print(sections)

    splits = Table(title="Samples and classes per split (paper: 65,228 / 9,260 / 18,654; 21 / 1,115 / 6,369 classes)")
    for col in ("", "train", "validation", "test", "all"):
        splits.add_column(col, justify="right" if col else "left")
    samples = stats.get("samples", {})
    splits.add_row("samples", *(f"{samples.get(s, 0):,}" for s in ("train", "validation", "test", "all")))
    report = stats.get("split", {})
    patients = report.get("patients", {})
    splits.add_row("patients", *(f"{patients.get(s, 0):,}" for s in ("train", "validation", "test", "all")))
    for level in ("chapter", "category", "code"):
        c = stats.get("classes", {}).get(level, {})
        splits.add_row(f"{level} labels", *(f"{c.get(s, 0):,}" for s in ("train", "validation", "test", "all")))
    console.print(splits)
    if report:
        console.print(f"split by {stats.get('split_by')}: {report['patients_in_several_splits']:,} patients in more "
                      f"than one split; {report['codes_in_every_split']:,} of {report['codes']:,} target codes in "
                      "every split" + (f"; {report['admissions_without_patient']:,} admissions without a subject_id "
                                       "(each its own group)" if report["admissions_without_patient"] else ""))
