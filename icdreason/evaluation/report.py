"""Evaluate predictions against gold codes with the paper's hierarchical metrics (chapter, category, full code).

Library entry points:

* :func:`evaluate_codes` - aligned lists of gold and predicted codes -> ``{level: LevelScores}``.
* :func:`evaluate_files` - ``icdreason predict`` outputs (or any table) and a gold table -> :class:`Report`, with
  per-chapter rows, frequency thirds, ``--by`` breakdowns, format/validation counts and bootstrap intervals.
  Answers are read strictly, as the DeepICD-R1 authors' evaluation reads them (a response without a
  think/diagnosis pair is NIL); ``salvage=True`` adds a second, labelled run per file scoring the tolerant parse
  (:mod:`icdreason.evaluation.answers`).

The exact definitions (label space, NIL, macro averaging) are in ``docs/metrics.md`` and
:mod:`icdreason.evaluation.metrics`.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import InputError
from .bootstrap import bootstrap_intervals
from .breakdowns import by_field, frequency_thirds, per_chapter, validation_counts
from .answers import Answers, read_answers
from .inputs import Gold, join, load_gold, read_labels, read_rows
from ..gold import GOLD_ID_COLUMNS
from ..tables import pick_column
from .metrics import LEVELS, NIL, LabelSpace, LevelScores, encode, score_level

__all__ = ["LEVELS", "NIL", "LabelSpace", "LevelScores", "Report", "RunResult", "evaluate_codes", "evaluate_files"]

DEFINITIONS = {
    "levels": "chapter = official ICD-10-CM chapter range of the category; category = first three characters; "
              "code = the full normalised code",
    "label_space": "normalised gold codes (or --labels); categories of those codes; the 22 official chapters",
    "nil": "missing, malformed or out-of-space predictions are class NIL at that level; at chapter level only "
           "predictions without a determinable chapter; gold ids without a prediction are scored as NIL",
    "strict": "the answer of a row with a response is the first think/diagnosis pair of '<think>' + response (the "
              "DeepICD-R1 authors' evaluation), NIL without one; a row without a response keeps its code only when "
              "format_ok is true; a row with neither, or of an engine without a language model (uses_llm false), "
              "is scored as given",
    "salvaged": "the tolerant parse of icdreason predict (the code column as given), scored as a separate run",
    "macro": "unweighted mean over classes present in gold or predictions, 0 for 0/0 "
             "(sklearn precision_recall_fscore_support(average='macro', zero_division=0); torchmetrics macro)",
    "macro_gold_classes": "the same mean over gold classes only",
    "micro_without_nil": "micro P/R/F1 over every class except NIL (sklearn average='micro', labels=non-NIL)",
    "accuracy": "share of rows whose predicted class equals the gold class (NIL == NIL counts)",
    "bootstrap": "percentile interval of row resamples with replacement, all levels resampled together",
}


def evaluate_codes(gold: Sequence[str | None], pred: Sequence[str | None], *,
                   labels: Iterable[str] | None = None) -> dict[str, LevelScores]:
    """Scores at chapter, category and full-code level for aligned gold and predicted codes (any spelling)."""
    space = LabelSpace.from_codes(labels, "labels") if labels is not None else None
    encoded = encode(gold, pred, space)
    return {level: score_level(encoded[level]) for level in LEVELS}


@dataclass
class RunResult:
    """The evaluation of one predictions file (or one run of a DuckDB log)."""

    name: str
    path: Path
    rows: int
    id_column: str
    pred_column: str | None
    matched: int
    missing: int
    unmatched: int
    duplicates: int
    levels: dict[str, LevelScores]
    per_chapter: list[dict[str, Any]]
    thirds: dict[str, list[dict[str, Any]]]
    validation: dict[str, Any]
    intervals: dict[str, dict[str, list[float]]] = field(default_factory=dict)
    by: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    scoring: dict[str, Any] = field(default_factory=dict)  # Answers.summary: strict or salvaged, and its counts

    def as_dict(self) -> dict[str, Any]:
        levels = {}
        for level, s in self.levels.items():
            d = s.as_dict()
            if self.intervals:
                d["ci95"] = self.intervals[level]
            levels[level] = d
        return {
            "name": self.name, "path": str(self.path), "rows": self.rows,
            "id_column": self.id_column, "pred_column": self.pred_column, "scoring": self.scoring,
            "matched": self.matched, "missing_predictions": self.missing, "unmatched_predictions": self.unmatched,
            "duplicates_dropped": self.duplicates,
            "levels": levels, "per_chapter": self.per_chapter, "frequency_thirds": self.thirds,
            "per_class": {level: _per_class_rows(s) for level, s in self.levels.items()},
            **self.validation, "by": self.by, "warnings": self.warnings,
        }


def _per_class_rows(scores: LevelScores) -> list[dict[str, Any]]:
    """Every class counted by the macro average, with its counts and P/R/F1, largest support first."""
    pc = scores.per_class
    rows = [{"label": str(pc["label"][i]), "support": int(pc["support"][i]), "predicted": int(pc["predicted"][i]),
             "tp": int(pc["tp"][i]), "precision": float(pc["precision"][i]), "recall": float(pc["recall"][i]),
             "f1": float(pc["f1"][i])} for i in range(len(pc["label"]))]
    rows.sort(key=lambda r: (-r["support"], r["label"]))
    return rows


@dataclass
class Report:
    """Every number of one ``icdreason eval`` call."""

    gold: Gold
    space: LabelSpace
    runs: list[RunResult]
    gold_outside_space: int = 0
    gold_malformed: int = 0
    bootstrap: int = 0
    seed: int = 0
    warnings: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        from .. import DISCLAIMER, __version__

        return {
            "disclaimer": DISCLAIMER,
            "icdreason": __version__,
            "gold": {
                "path": str(self.gold.path), "id_column": self.gold.id_column, "code_column": self.gold.code_column,
                "rows": self.gold.rows, "ids": len(self.gold.ids), "without_code": self.gold.without_code,
                "without_id": self.gold.without_id, "duplicates_dropped": self.gold.duplicates,
                "outside_label_space": self.gold_outside_space, "not_well_formed": self.gold_malformed,
            },
            "label_space": {"source": self.space.source, "codes": len(self.space.codes),
                            "categories": len(self.space.categories), "chapters": 22},
            "bootstrap": {"resamples": self.bootstrap, "seed": self.seed, "confidence": 0.95},
            "definitions": DEFINITIONS,
            "runs": [r.as_dict() for r in self.runs],
            "warnings": self.warnings,
        }

    def write_json(self, path: str | Path) -> Path:
        """Write :meth:`as_dict` atomically (a temporary file renamed into place; a pipe or device in place)."""
        from ..files import atomic_write_text

        return atomic_write_text(path, json.dumps(self.as_dict(), indent=2, ensure_ascii=False) + "\n")


def _sources(path: Path) -> list[tuple[str, Any]]:
    """(name, Rows-like) per run: a DuckDB log holding several runs is split by run_id."""
    rows = read_rows(path)
    if path.suffix.lower() in (".duckdb", ".db") and "run_id" in rows.columns:
        run_ids = rows.get("run_id")
        distinct = list(dict.fromkeys(run_ids))
        if len(distinct) > 1:
            return [(f"{path.stem}:{rid}", rows.select([r == rid for r in run_ids])) for rid in distinct]
    return [(path.stem, rows)]


def _run_names(paths: Sequence[Path]) -> dict[Path, str]:
    """A distinct, short label per predictions file: the stem (``a``); where stems collide the file name (``a.csv``,
    ``a.parquet``); where names collide too the parent folder and name (``run1/a.csv``), else the whole path."""
    forms = (lambda p: p.stem, lambda p: p.name, lambda p: f"{p.parent.name}/{p.name}", lambda p: str(p))
    names: dict[Path, str] = {}
    for p in paths:
        for form in forms:
            label = form(p)
            if sum(1 for q in dict.fromkeys(paths) if form(q) == label) == 1:
                break
        names[p] = label
    return names


def evaluate_files(
    predictions: Sequence[str | Path],
    gold: str | Path,
    *,
    id_column: str | None = None,
    gold_id_column: str | None = None,
    pred_column: str | None = None,
    gold_column: str | None = None,
    labels: str | Path | Iterable[str] | None = None,
    by: Sequence[str] = (),
    bins: int = 5,
    bootstrap: int = 0,
    seed: int = 0,
    duplicates: str = "error",
    response_column: str | None = None,
    salvage: bool = False,
) -> Report:
    """Evaluate one or more predictions files against one gold table (see the module docstring).

    Each file (each run of a DuckDB log) is scored strictly; with ``salvage`` it gets a second run, named
    ``"<name> (salvaged)"``, that scores the tolerant parse. ``response_column`` names the column of raw responses
    (default ``response``, else ``raw``; ``"none"`` ignores responses).
    """
    if not predictions:
        raise InputError("no predictions file given")
    g = load_gold(gold, id_column=gold_id_column or id_column, code_column=gold_column, duplicates=duplicates)
    if labels is None:
        space = LabelSpace.from_codes(g.codes, "gold")
    elif isinstance(labels, (str, Path)):
        space = LabelSpace.from_codes(read_labels(labels), str(labels))
    else:
        space = LabelSpace.from_codes(labels, "labels")
    from ..codes import ICD10CM_PATTERN, normalize

    norm = {c: normalize(c) for c in set(g.codes)}
    outside = {c for c in norm.values() if c not in space.codes}
    malformed = {c for c in norm.values() if not ICD10CM_PATTERN.match(c)}
    report = Report(g, space, [], bootstrap=bootstrap, seed=seed, warnings=list(g.warnings))
    if outside:
        report.gold_outside_space = sum(1 for c in g.codes if norm[c] in outside)
        report.warnings.append(
            f"{report.gold_outside_space} gold row(s) ({len(outside)} codes, e.g. {sorted(outside)[0]}) are outside "
            f"the label space of {space.source}: their gold class is NIL at category/code level (add the codes to "
            "the labels file to score them as classes of their own)")
    if malformed:
        report.gold_malformed = sum(1 for c in g.codes if norm[c] in malformed)
        report.warnings.append(
            f"{report.gold_malformed} gold row(s) hold codes that are not well-formed ICD-10-CM (e.g. "
            f"{sorted(malformed)[0]}): check --gold-column; they are scored as given (chapter NIL when outside every chapter range)")
    paths = [Path(p) for p in predictions]
    names = _run_names(paths)
    for path in paths:
        for name, rows in _sources(path):
            name = names[path] + name[len(path.stem):]  # a DuckDB log's ":run_id" kept
            id_col = pick_column(rows.columns, id_column, GOLD_ID_COLUMNS, source=rows.source, what="predictions id",
                                 option="--id-column")
            for f in by:
                pick_column(rows.columns, f, (), source=rows.source, what="--by", option="--by")
            answers = read_answers(rows, pred_column=pred_column, response_column=response_column, salvage=salvage)
            for scoring, result in answers.items():
                label = name if scoring == "strict" else f"{name} ({scoring})"
                report.runs.append(_evaluate_run(label, path, rows, g, space, id_col=id_col, answers=result, by=by,
                                                 bins=bins, bootstrap=bootstrap, seed=seed, duplicates=duplicates))
    return report


def _evaluate_run(name: str, path: Path, rows, g: Gold, space: LabelSpace, *, id_col: str, answers: Answers, by,
                  bins, bootstrap, seed, duplicates) -> RunResult:
    joined = join(g, rows.get(id_col), answers.codes, path=path, duplicates=duplicates)
    encoded = encode(g.codes, joined.codes, space)
    levels = {level: score_level(encoded[level]) for level in LEVELS}

    def aligned(column: str) -> list:
        values = rows.get(column)
        return [values[r] if r >= 0 else None for r in joined.rows]

    has_pred = [r >= 0 for r in joined.rows]
    validation = validation_counts(aligned("format_ok") if "format_ok" in rows.columns else None,
                                   aligned("status") if "status" in rows.columns else None, has_pred,
                                   aligned("uses_llm") if "uses_llm" in rows.columns else None)
    run = RunResult(
        name=name, path=path, rows=len(rows), id_column=id_col, pred_column=answers.pred_column,
        matched=len(g.ids) - joined.missing, missing=joined.missing, unmatched=joined.unmatched,
        duplicates=joined.duplicates, levels=levels,
        per_chapter=per_chapter(encoded, levels["chapter"]),
        thirds={level: frequency_thirds(levels[level]) for level in LEVELS},
        validation=validation,
        intervals=bootstrap_intervals(encoded, bootstrap, seed=seed),
        by={f: by_field(encoded, aligned(f), field=f, bins=bins) for f in by},
        scoring=answers.summary(joined.rows),
    )
    if answers.scoring != "strict":
        return run  # the same file as the strict run just before it: its warnings are said once
    unchecked = run.scoring["basis"]["as given"]
    if unchecked:
        run.warnings.append(f"{unchecked} prediction row(s) in {path.name} have neither a response nor format_ok: "
                            "their answers are scored as given (the format could not be checked; write predictions "
                            "with `icdreason predict --keep-raw`, or name the column with --response-column)")
    if joined.missing:
        run.warnings.append(f"{joined.missing} gold id(s) have no prediction in {path.name} (e.g. "
                            f"{', '.join(joined.missing_examples[:3])}): scored as NIL predictions")
    if joined.unmatched:
        run.warnings.append(f"{joined.unmatched} prediction id(s) in {path.name} are not in the gold file (e.g. "
                            f"{', '.join(joined.unmatched_examples[:3])}): not scored")
    if joined.duplicates:
        run.warnings.append(f"{joined.duplicates} duplicated prediction row(s) dropped (--duplicates {duplicates})")
    if joined.without_id:
        run.warnings.append(f"{joined.without_id} prediction row(s) without an id were skipped")
    return run
