"""The audit's figures: acceptance, where corrections diverge, per-chapter results, agreement, time, reasons, flags.

:func:`build_report` reads an audit database and returns an :class:`AuditReport` whose sections are plain tables
(title, columns, rows of strings) that the terminal, Markdown and HTML renderers all print the same way.
"""

from __future__ import annotations

import math
import statistics
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from itertools import combinations
from typing import Any

from ..codes import CHAPTER_RANGES, chapter_of, normalize
from .agreement import CODE_LEVELS, LEVELS, Agreement, agreement, level_label
from .store import FINAL, REJECT_REASONS, AuditInfo, AuditStore, Case, Decision

_CHAPTERS = {c.number: c for c in CHAPTER_RANGES}


@dataclass
class Section:
    """One table of the report."""

    title: str
    columns: list[str]
    rows: list[list[str]]
    note: str = ""


@dataclass
class FlaggedCase:
    """A case that needs discussion, with why and every reviewer's decision."""

    case: Case
    why: list[str]
    decisions: list[Decision]


@dataclass
class AuditReport:
    info: AuditInfo
    reviewers: list[str]
    cases: int
    decided: int
    acceptance_rate: float | None
    sections: list[Section] = field(default_factory=list)
    flagged: list[FlaggedCase] = field(default_factory=list)
    agreements: list[Agreement] = field(default_factory=list)
    model_vs_experts: list[tuple[str, Agreement]] = field(default_factory=list)
    plots: dict[str, Any] = field(default_factory=dict)  # data for the HTML plots


def pct(x: float | None) -> str:
    return "–" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{100 * x:.1f}%"


def num(x: float | None, digits: int = 3) -> str:
    return "n/a" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.{digits}f}"


def final_code(d: Decision, case: Case) -> str | None:
    """The code a reviewer settled on: the model's when accepted, theirs when corrected (or given with a rejection)."""
    if d.decision == "accept":
        return case.model_code
    if d.decision in ("correct", "reject"):
        return d.expert_code
    return None


def divergence_level(model: str | None, expert: str) -> str:
    """Where a correction leaves the model's code: ``chapter``, ``category`` or ``code`` (same category)."""
    if not model:
        return "no model code"
    m, e = chapter_of(model), chapter_of(expert)
    if m is None or e is None or m.number != e.number:
        return "chapter"
    if normalize(model)[:3] != normalize(expert)[:3]:
        return "category"
    return "code"


def _rate(part: int, whole: int) -> float | None:
    return part / whole if whole else None


def build_report(store: AuditStore) -> AuditReport:
    """Compute every figure of the audit in ``store``."""
    info = store.info()
    if info is None:
        from .store import AuditDatabaseError

        raise AuditDatabaseError(f"{store.path} holds no audit yet: run `icdreason audit start PREDICTIONS` first")
    cases = {c.case_id: c for c in store.cases()}
    latest = [d for d in store.decisions() if d.case_id in cases]
    reviewers = sorted({d.reviewer for d in latest} | set(store.reviewers()))
    final = [d for d in latest if d.decision in FINAL]
    accepted = sum(d.decision == "accept" for d in final)
    report = AuditReport(info, reviewers, len(cases), len(final), _rate(accepted, len(final)))
    report.sections.append(_overview(latest, reviewers))
    report.sections.append(_divergence(final, cases, report))
    report.sections.append(_per_chapter(final, cases, report))
    blind = {name: {case: code for case, (code, _) in store.blind_codes(name).items()} for name in reviewers}
    for d in final:  # imported decisions carry their blind code in the row
        if d.blind_code:
            blind.setdefault(d.reviewer, {}).setdefault(d.case_id, d.blind_code)
    report.sections.extend(_agreement(final, cases, reviewers, blind, report))
    report.sections.append(_time(final, reviewers, report))
    report.sections.append(_reasons(final, report))
    report.flagged = _flagged(final, cases)
    return report


def _overview(latest: list[Decision], reviewers: list[str]) -> Section:
    rows = []
    for name in [*reviewers, "all reviewers"]:
        mine = [d for d in latest if name == "all reviewers" or d.reviewer == name]
        c = Counter(d.decision for d in mine)
        decided = c["accept"] + c["correct"] + c["reject"]
        rows.append([name, str(decided), str(c["accept"]), str(c["correct"]), str(c["reject"]), str(c["skip"]),
                     pct(_rate(c["accept"], decided))])
    return Section("Decisions", ["reviewer", "decided", "accepted", "corrected", "rejected", "skipped",
                                 "acceptance rate"], rows,
                   "Acceptance rate = accepted / decided (skipped cases are not decided).")


def _divergence(final: list[Decision], cases: dict[str, Case], report: AuditReport) -> Section:
    corrections = [d for d in final if d.decision == "correct" and d.expert_code]
    levels = Counter(divergence_level(cases[d.case_id].model_code, d.expert_code) for d in corrections)
    order = ["chapter", "category", "code", "no model code"]
    report.plots["divergence"] = {k: levels[k] for k in order if levels[k]}
    rows = [[level, str(levels[level]), pct(_rate(levels[level], len(corrections)))] for level in order
            if levels[level] or level != "no model code"]
    return Section("Where corrections diverge from the model", ["first level that differs", "corrections", "share"],
                   rows, "chapter: another chapter; category: same chapter, another 3-character category; "
                   "code: same category, another full code.")


def _per_chapter(final: list[Decision], cases: dict[str, Case], report: AuditReport) -> Section:
    by: dict[int | None, list[Decision]] = defaultdict(list)
    for d in final:
        by[cases[d.case_id].chapter].append(d)
    n_cases = Counter(c.chapter for c in cases.values())
    rows, plot = [], {}
    for chapter in sorted(set(n_cases) | set(by), key=lambda c: (c is None, c or 0)):
        ds = by.get(chapter, [])
        c = Counter(d.decision for d in ds)
        label = _CHAPTERS[chapter].label if chapter in _CHAPTERS else "no code"
        title = _CHAPTERS[chapter].title if chapter in _CHAPTERS else "the model gave no valid code"
        rows.append([label, title[:48], str(n_cases.get(chapter, 0)), str(len(ds)), pct(_rate(c["accept"], len(ds))),
                     pct(_rate(c["correct"], len(ds))), pct(_rate(c["reject"], len(ds)))])
        plot[label] = {k: c[k] for k in ("accept", "correct", "reject")}
    report.plots["chapters"] = plot
    return Section("Per chapter (the model's chapter)", ["chapter", "title", "cases", "decisions", "accepted",
                                                          "corrected", "rejected"], rows)


def _labels(final: list[Decision], cases: dict[str, Case], level: str) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = defaultdict(dict)
    for d in final:
        if level == "decision":
            out[d.reviewer][d.case_id] = d.decision
        else:
            out[d.reviewer][d.case_id] = level_label(final_code(d, cases[d.case_id]), level)
    return out


def _agreement(final, cases, reviewers, blind: dict[str, dict[str, str]], report: AuditReport) -> list[Section]:
    rows = []
    groups = [tuple(reviewers)] if len(reviewers) >= 2 else []
    if len(reviewers) > 2:
        groups += list(combinations(reviewers, 2))
    for group in groups:
        for level in LEVELS:
            labels = {r: v for r, v in _labels(final, cases, level).items() if r in group}
            if len(labels) < len(group):
                continue
            a = agreement(labels, level)
            if a is None:
                continue
            report.agreements.append(a)
            rows.append([" + ".join(group), level, str(a.items), pct(a.observed), num(a.kappa),
                         "Cohen" if a.method == "cohen" else "Fleiss"])
    sections = [Section("Agreement between reviewers", ["reviewers", "level", "cases", "observed agreement", "kappa",
                                                         "method"], rows,
                        "Cohen's kappa for two reviewers, Fleiss' kappa for more (pairwise Cohen's kappa below it). "
                        "Code levels use each reviewer's final code: the model's when accepted, theirs when corrected."
                        if rows else "Needs at least two reviewers who decided the same cases.")]
    blind_rows = []
    blind_reviewers = [name for name in reviewers if blind.get(name)]
    for name in [*blind_reviewers, "all reviewers (pooled)"]:
        pooled = name not in blind
        if pooled and len(blind_reviewers) < 2:
            continue
        pairs = [(cases[case].model_code, code) for r in (blind_reviewers if pooled else [name])
                 for case, code in blind[r].items() if case in cases and cases[case].model_code]
        if not pairs:
            continue
        for level in CODE_LEVELS:
            labels = {"model": {str(i): level_label(m, level) for i, (m, _) in enumerate(pairs)},
                      name: {str(i): level_label(b, level) for i, (_, b) in enumerate(pairs)}}
            a = agreement(labels, level)
            if a is None:
                continue
            report.model_vs_experts.append((name, a))
            blind_rows.append([name, level, str(a.items), pct(a.observed), num(a.kappa)])
    sections.append(Section("Model vs experts (blind mode)", ["expert", "level", "cases", "agreement",
                                                               "Cohen's kappa"], blind_rows,
                             "The code each expert entered before the model's was shown, against the model's code."
                             if blind_rows else "No blind-mode decisions (start with --blind)."))
    return sections


def _time(final: list[Decision], reviewers: list[str], report: AuditReport) -> Section:
    rows, plot = [], {}
    for name in [*reviewers, "all reviewers"]:
        secs = [d.seconds for d in final if d.seconds is not None and (name == "all reviewers" or d.reviewer == name)]
        if not secs:
            continue
        if name != "all reviewers":
            plot[name] = secs
        secs_sorted = sorted(secs)
        p90 = secs_sorted[min(len(secs) - 1, math.ceil(0.9 * len(secs)) - 1)]
        rows.append([name, str(len(secs)), f"{statistics.fmean(secs):.1f}", f"{statistics.median(secs):.1f}",
                     f"{p90:.1f}", f"{sum(secs) / 60:.1f}"])
    report.plots["seconds"] = plot
    return Section("Time per case (seconds)", ["reviewer", "cases", "mean", "median", "p90", "total minutes"], rows)


def _reasons(final: list[Decision], report: AuditReport) -> Section:
    rejections = [d for d in final if d.decision == "reject"]
    c = Counter(d.reason for d in rejections)
    report.plots["reasons"] = {REJECT_REASONS.get(k, str(k)): v for k, v in c.most_common()}
    rows = [[REJECT_REASONS.get(k, str(k)), str(v), pct(_rate(v, len(rejections)))] for k, v in c.most_common()]
    return Section("Rejection reasons", ["reason", "rejections", "share"], rows)


def _flagged(final: list[Decision], cases: dict[str, Case]) -> list[FlaggedCase]:
    by_case: dict[str, list[Decision]] = defaultdict(list)
    for d in final:
        by_case[d.case_id].append(d)
    out = []
    for case_id, ds in by_case.items():
        why = []
        if any(d.flagged for d in ds):
            why.append("flagged by " + ", ".join(d.reviewer for d in ds if d.flagged))
        if any(d.decision == "reject" for d in ds):
            why.append("rejected (" + ", ".join(REJECT_REASONS.get(d.reason, str(d.reason)) for d in ds
                                                if d.decision == "reject") + ")")
        if len(ds) > 1:
            codes = {normalize(c) if c else None for c in (final_code(d, cases[case_id]) for d in ds)}
            if len({d.decision for d in ds}) > 1 or len(codes) > 1:
                why.append("reviewers disagree")
        if why:
            out.append(FlaggedCase(cases[case_id], why, ds))
    return sorted(out, key=lambda f: f.case.position)
