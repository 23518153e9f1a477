"""``icdreason eval``: the paper's hierarchical metrics (chapter / category / full code) for one or more runs."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Optional

import typer
from rich.table import Table

from ..errors import UsageError
from .common import cell, console, disclaimer, err_console, markup, renamed_flag, renamed_value

if TYPE_CHECKING:
    from ..evaluation import Report, RunResult

_LEVELS = (("chapter", "Chapter"), ("category", "Category"), ("code", "Full code"))


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.1f}"


def _table3(report: Report) -> Table:
    table = Table(title="Macro recall, precision and F1 (%) per level, as in the paper's Table 3", title_justify="left")
    table.add_column("Run")
    for _, title in _LEVELS:
        table.add_column(f"{title}\nR", justify="right")
        table.add_column("\nP", justify="right")
        table.add_column("\nF1", justify="right")
    for run in report.runs:
        salvaged = run.scoring.get("mode") == "salvaged"
        for label, attr, style in ((run.name, "macro", "italic" if salvaged else None),
                                   ("  gold classes only", "macro_gold", "dim")):
            cells = []
            for level, _ in _LEVELS:
                prf = getattr(run.levels[level], attr)
                cells += [_pct(prf.recall), _pct(prf.precision), _pct(prf.f1)]
            table.add_row(cell(label, single_line=True), *cells, style=style)
    return table


def _summary(report: Report) -> Table:
    table = Table(title="Rows, accuracy, micro F1 without NIL (%) and NIL predictions", title_justify="left")
    for name in ("Run", "Scored", "Missing", "Extra"):
        table.add_column(name, justify="left" if name == "Run" else "right")
    for _, title in _LEVELS:
        table.add_column(f"{title}\nAcc", justify="right")
        table.add_column("\nµF1", justify="right")
        table.add_column("\nNIL", justify="right")
    for run in report.runs:
        cells = [cell(run.name, single_line=True), str(len(report.gold.ids)), str(run.missing), str(run.unmatched)]
        for level, _ in _LEVELS:
            s = run.levels[level]
            cells += [_pct(s.accuracy), _pct(s.micro.f1), str(s.nil_predictions)]
        table.add_row(*cells)
    return table


def _intervals(report: Report) -> Table:
    table = Table(title=f"95% bootstrap intervals (%), {report.bootstrap} resamples, seed {report.seed}",
                  title_justify="left")
    for name in ("Run", "Level", "R", "P", "F1", "Accuracy"):
        table.add_column(name, justify="left" if name in ("Run", "Level") else "right")
    for run in report.runs:
        for level, title in _LEVELS:
            ci = run.intervals[level]
            table.add_row(cell(run.name, single_line=True), title, *(f"{_pct(ci[m][0])}–{_pct(ci[m][1])}"
                                            for m in ("macro_r", "macro_p", "macro_f1", "accuracy")))
    return table


def _chapters(run: RunResult) -> Table:
    table = Table(title=cell(f"{run.name}: per chapter (%)", single_line=True), title_justify="left",
                  caption="P/R/F1 at chapter level; Cat acc / Code acc: share of the chapter's gold rows whose "
                          "category / full code is right", caption_justify="left")
    for name in ("Chapter", "Support", "Predicted", "P", "R", "F1", "Cat acc", "Code acc"):
        table.add_column(name, justify="left" if name == "Chapter" else "right")
    for r in run.per_chapter:
        table.add_row(cell(r["label"]), str(r["support"]), str(r["predicted"]),
                      _pct(r["precision"]), _pct(r["recall"]), _pct(r["f1"]), _pct(r["category_accuracy"]),
                      _pct(r["code_accuracy"]))
    return table


def _thirds(run: RunResult) -> Table:
    table = Table(title=cell(f"{run.name}: gold classes by frequency, cut at thirds of the rows (macro %)",
                             single_line=True),
                  title_justify="left")
    for name in ("Level", "Third", "Classes", "Rows", "Share", "P", "R", "F1", "Accuracy"):
        table.add_column(name, justify="left" if name in ("Level", "Third") else "right")
    for level, title in _LEVELS:
        for t in run.thirds[level]:
            table.add_row(title, t["third"], str(t["classes"]), str(t["rows"]), _pct(t["share"]),
                          _pct(t["macro"]["precision"]), _pct(t["macro"]["recall"]), _pct(t["macro"]["f1"]),
                          _pct(t["accuracy"]))
    return table


def _by(run: RunResult, field: str) -> Table:
    table = Table(title=cell(f"{run.name}: by {field} (macro F1 and accuracy %)", single_line=True),
                  title_justify="left")
    table.add_column(cell(field, single_line=True))
    table.add_column("Rows", justify="right")
    for _, title in _LEVELS:
        table.add_column(f"{title}\nF1", justify="right")
        table.add_column("\nAcc", justify="right")
    for g in run.by[field]:
        cells = [cell(g["value"], single_line=True), str(g["n"])]
        for level, _ in _LEVELS:
            cells += [_pct(g["levels"][level]["macro"]["f1"]), _pct(g["levels"][level]["accuracy"])]
        table.add_row(*cells)
    return table


_BASIS = {"response": "read from the response", "format_ok": "kept or refused by format_ok",
          "no model": "scored as given (no language model: nothing to check)",
          "as given": "scored as given (not checked)"}


def _scoring(run: RunResult) -> str | None:
    """How the answers of a run were read: strict (and what it turned away) or salvaged."""
    sc = run.scoring
    if not sc:
        return None
    if sc["mode"] == "salvaged":
        source = f"column {sc['pred_column']} as recorded" if sc["pred_column"] else "of each response"
        return f"{run.name}: icdreason's tolerant parse, {source}"
    basis = ", ".join(f"{n} {_BASIS[what]}" for what, n in sc["basis"].items() if n) or "no rows"
    text = f"{run.name}: strict answers (the authors' first think/diagnosis pair): {basis}; " \
           f"{sc['no_answer']} without an answer (NIL)"
    if sc.get("salvageable"):
        text += f", {sc['salvageable']} of which the tolerant parse would answer (--salvage)"
    return text


def _validation(run: RunResult) -> str | None:
    parts = []
    if run.validation.get("format_ok_rate") is not None:
        parts.append(f"format valid (paper's check) {_pct(run.validation['format_ok_rate'])}% of "
                     f"{run.validation['format_ok_rows']} predictions")
    if run.validation.get("format_ok_not_applicable"):
        parts.append(f"format valid n/a for {run.validation['format_ok_not_applicable']} predictions of an engine "
                     "without a language model (the retriever)")
    if run.validation.get("status_counts"):
        parts.append("status " + ", ".join(f"{k} {v}" for k, v in run.validation["status_counts"].items()))
    return f"{run.name}: " + "; ".join(parts) if parts else None


def evaluate(
    predictions: Annotated[list[Path], typer.Argument(help="Predictions files (icdreason predict output, or any "
                                                      "CSV/TSV/JSONL/Parquet/DuckDB table); one table row each.")],
    gold: Annotated[Path, typer.Option("--gold", "-g", help="Gold table of id -> code (CSV/TSV/JSONL/Parquet; a "
                                       "verl RL Parquet works as is). Several codes in a cell: the first is the "
                                       "target.")],
    id_column: Annotated[Optional[str], typer.Option("--id-column", help="Id column of the predictions (and of the "
                                                     "gold unless --gold-id-column). Default: id.")] = None,
    gold_id_column: Annotated[Optional[str], typer.Option("--gold-id-column", help="Id column of the gold table. "
                                                          "Default: --id-column, else id / extra_info.id / "
                                                          "hadm_id.")] = None,
    prediction_column: Annotated[Optional[str], typer.Option(
        "--prediction-column", help="Predicted-code column. Default: code, else prediction / pred / predicted.")] = None,
    gold_column: Annotated[Optional[str], typer.Option("--gold-column", help="Gold code column. Default: gold, "
                                                       "else code / label / icd_code / reward_model.ground_truth."
                                                       )] = None,
    labels: Annotated[Optional[Path], typer.Option("--labels", help="Fixed label vocabulary (one code per line, or "
                                                   "a table with a code column), e.g. the training label set. "
                                                   "Default: the gold codes.")] = None,
    out: Annotated[Optional[Path], typer.Option("--out", "-o", help="Write every number to this JSON file ('-' "
                                                "prints the JSON on stdout instead of the tables).")] = None,
    bootstrap: Annotated[int, typer.Option("--bootstrap", min=0, help="Resamples for 95% bootstrap intervals "
                                           "(0 = none; 1000 is usual).")] = 0,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the bootstrap.")] = 0,
    plot: Annotated[Optional[Path], typer.Option("--plot", help="Write per-chapter F1 against support (the paper's "
                                                 "Figure 4) to this PNG; needs the plot extra.")] = None,
    by: Annotated[Optional[list[str]], typer.Option("--by", help="Break results down by a predictions column "
                                                    "(repeatable; dots reach nested fields, e.g. confidence.code; "
                                                    "numbers are binned).")] = None,
    bins: Annotated[int, typer.Option("--bins", min=1, max=50, help="Bins for numeric --by columns.")] = 5,
    duplicates: Annotated[str, typer.Option("--duplicates", help="Duplicated ids: error, or keep the first or last "
                                            "row.")] = "error",
    brief: Annotated[bool, typer.Option("--brief", help="Only the Table 3 layout and the summary.")] = False,
    response_column: Annotated[Optional[str], typer.Option(
        "--response-column", help="Column of raw model responses, read strictly. Default: response, else raw (the "
        "raw outputs `predict --keep-raw` records); 'none' ignores responses.")] = None,
    salvage: Annotated[bool, typer.Option("--salvage", help="Also score icdreason's tolerant parse (the code "
                                          "column as given), as a separate row '<run> (salvaged)'.")] = False,
    pred_column: Annotated[Optional[str], renamed_flag("--prediction-column", "--pred-column")] = None,
    json_out: Annotated[Optional[Path], renamed_flag("--out", "--json")] = None,
) -> None:
    """Score predictions against gold codes at chapter, category and full-code level (macro R/P/F1, as in the paper).

    Answers are read strictly, as the DeepICD-R1 authors evaluate: the first think/diagnosis pair of the response;
    a response without one is NIL at every level (rows without a response: their format_ok decides). --salvage adds
    the tolerant parse as a separate row. Predictions outside the label space are the class NIL at category and code
    level; gold ids without a prediction are counted and scored as NIL. See docs/metrics.md for the exact
    definitions and every difference from the authors' evaluator.
    """
    from ..evaluation import evaluate_files

    prediction_column = renamed_value(prediction_column, pred_column, default=None, new="--prediction-column")
    out = renamed_value(out, json_out, default=None, new="--out")
    if duplicates not in ("error", "first", "last"):
        raise UsageError(f"unknown --duplicates {duplicates!r}: choose error, first or last")
    report = evaluate_files(predictions, gold, id_column=id_column, gold_id_column=gold_id_column,
                            pred_column=prediction_column, gold_column=gold_column, labels=labels, by=by or (), bins=bins,
                            bootstrap=bootstrap, seed=seed, duplicates=duplicates, response_column=response_column,
                            salvage=salvage)
    for warning in report.warnings + [w for run in report.runs for w in run.warnings]:
        err_console.print(f"[yellow]warning:[/yellow] {markup(warning)}", highlight=False, soft_wrap=True)
    if plot is not None:
        from ..evaluation.plot import plot_chapters

        plot_chapters([(run.name, run.per_chapter) for run in report.runs], plot)
        err_console.print(cell(f"plot written to {plot}"), highlight=False)
    if out is not None and str(out) == "-":
        import json

        typer.echo(json.dumps(report.as_dict(), indent=2, ensure_ascii=False))
        disclaimer()
        return
    if out is not None:
        report.write_json(out)
        err_console.print(cell(f"metrics written to {out}"), highlight=False)
    console.print(cell(f"gold: {report.gold.path} ({len(report.gold.ids)} ids); label space: {report.space.source} "
                       f"({len(report.space.codes)} codes, {len(report.space.categories)} categories)"))
    console.print(_table3(report))
    console.print(_summary(report))
    for run in report.runs:
        line = _scoring(run)
        if line:
            console.print(line, highlight=False, markup=False)
    if report.bootstrap:
        console.print(_intervals(report))
    if not brief:
        for run in report.runs:
            console.print(_chapters(run))
            console.print(_thirds(run))
            line = _validation(run)
            if line:
                console.print(cell(line))
            for field in by or ():
                console.print(_by(run, field))
    disclaimer()
