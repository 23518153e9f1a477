"""``icdreason data``: prepare MIMIC-IV training data (verl RL and trl SFT Parquet, label vocabularies)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from .common import console, disclaimer, say

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
) -> None:
    """Build admission notes (admission-time sections only), split 70/10/20 stratified by the first-coded ICD-10
    diagnosis, and write verl RL + trl SFT Parquet, label vocabularies and statistics."""
    from ..data import PrepareOptions, prepare_mimic

    result = prepare_mimic(PrepareOptions(notes=notes, diagnoses=diagnoses, out=out, validation=validation, test=test,
                                          seed=seed, min_per_code=min_per_code, min_note_chars=min_note_chars,
                                          prompt_template=prompt_template, data_source=data_source, limit=limit,
                                          force=force), progress=say)
    print_stats(result.stats)
    console.print(f"\nwritten to {result.out}: rl/ (verl), sft/ (trl, code-only answers), labels/, stats.json")
    disclaimer()


def print_stats(stats: dict) -> None:
    """The cohort, section, split and label tables."""
    from rich.table import Table

    cohort = Table(title="Cohort", show_header=False)
    cohort.add_column("what")
    cohort.add_column("admissions", justify="right")
    for label, key in (("discharge notes", "discharge_notes"), ("admissions with a note", "admissions_with_note"),
                       ("  without a seq_num = 1 diagnosis", "without_first_diagnosis"),
                       ("  first diagnosis ICD-9 (excluded)", "icd9_excluded"),
                       ("  first diagnosis ICD-10", "icd10_admissions"),
                       ("  admission note too short (excluded)", "excluded_short_admission_note"),
                       ("samples kept", "kept"),
                       ("codes too rare to stratify (to train)", "rare_codes_to_train"),
                       ("  their samples", "rare_samples_to_train")):
        cohort.add_row(label, f"{stats.get(key, 0):,}")
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
    for level in ("chapter", "category", "code"):
        c = stats.get("classes", {}).get(level, {})
        splits.add_row(f"{level} labels", *(f"{c.get(s, 0):,}" for s in ("train", "validation", "test", "all")))
    console.print(splits)
