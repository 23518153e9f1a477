"""Values that come from data (ids, codes, notes, scraped text, comments) are shown as written: rich markup such as
``[/]`` or ``[bold]`` is never interpreted, and terminal control characters (ESC sequences, C1 controls, lone
surrogates) are shown as visible escapes instead of reaching the terminal."""

from __future__ import annotations

import json
import re

from audit_fixtures import record, write_predictions

from icdreason.cli import app

ESC_ID = "esc\x1b[2Jid"  # ESC [2J clears the screen when it reaches a terminal


def _inert_markdown(text: str) -> bool:
    """No link or image can start (every [ is escaped), no HTML tag or entity, no bare link, no control character."""
    return (re.search(r"(?<!\\)\[", text) is None and "<" not in text and "&#" not in text
            and re.search(r"(?<!\\)://", text) is None and "\x1b" not in text)


def _no_raw_controls(text: str) -> None:
    assert "\x1b" not in text and "\x9b" not in text and "\x07" not in text


def test_visible_shows_control_characters_and_keeps_text():
    from icdreason.display import visible

    assert visible("chest pain\nNSTEMI\tnoted") == "chest pain\nNSTEMI\tnoted"
    assert visible("a\x1b[31mb") == "a\\x1b[31mb"
    assert visible("bell\x07 c1\x9b nul\x00") == "bell\\x07 c1\\x9b nul\\x00"
    assert visible("lone \ud83d surrogate") == "lone \\ud83d surrogate"
    assert visible("rtl \u202eevil") == "rtl \\u202eevil"
    assert visible("one line\nonly", single_line=True) == "one line\\nonly"
    assert visible("windows\r\nline, spoof\rfake") == "windows\nline, spoof\\x0dfake"


def test_markdown_text_defuses_links_images_and_html():
    from icdreason.display import markdown_text

    text = markdown_text("see [chart](javascript:alert(1)) ![x](http://evil.example/p.png) <img src=x> &#106; "
                         "www.evil.example 25.0% a + b")
    assert _inert_markdown(text)
    assert "javascript:alert(1)" in text and "25.0% a + b" in text  # the words stay readable
    assert text.endswith("&amp;#106; www\\.evil.example 25.0% a + b")


def test_predict_results_table_shows_markup_ids_and_escapes(runner, use_kb, tmp_path):
    notes = tmp_path / "notes.jsonl"
    notes.write_text("".join(json.dumps({"id": i, "text": t}) + "\n" for i, t in [
        ("[/]", "Chest pain with troponin elevation: NSTEMI."),
        ("[bold]n2", "Fever, productive cough, right lower lobe consolidation: pneumonia."),
        (ESC_ID, "Dysuria and frequency, nitrites positive: urinary tract infection."),
    ]))
    result = runner.invoke(app, ["predict", str(notes)])
    assert result.exit_code == 0, result.stderr
    assert "[/]" in result.stdout and "[bold]n2" in result.stdout
    assert "esc\\x1b[2Jid" in result.stdout
    _no_raw_controls(result.stdout + result.stderr)
    assert "3 notes" in result.stdout and "notes predicted" in result.stdout


def test_validate_lookup_and_search_show_markup_as_written(runner, kb_file):
    checked = runner.invoke(app, ["validate", "[/]", "[bold]I21.4", "\x1b[31mI10"])
    assert checked.exit_code == 1  # none of them is a billable code
    assert "[/]" in checked.stdout and "[bold]I21.4" in checked.stdout and "\\x1b[31mI10" in checked.stdout
    _no_raw_controls(checked.stdout)
    looked = runner.invoke(app, ["kb", "lookup", "[/]", "\x1b]0;pwned\x07"])
    assert looked.exit_code == 1
    assert "[/]" in looked.stdout and "\\x1b]0;pwned\\x07" in looked.stdout
    _no_raw_controls(looked.stdout)
    searched = runner.invoke(app, ["kb", "search", "[/] chest pain [bold]"])
    assert searched.exit_code == 0, searched.stderr
    assert "kb search: [/] chest pain [bold]" in searched.stdout
    missing = runner.invoke(app, ["kb", "search", "\x1b[2Jzzzzqqq"])
    assert missing.exit_code == 1
    _no_raw_controls(missing.stderr)


def test_scraped_text_with_markup_does_not_break_lookup(runner, writable_kb):
    from icdreason.kb import KnowledgeBase
    from icdreason.kb.scraped import ScrapeLogEntry, SymptomRow

    with KnowledgeBase.open(writable_kb, read_only=False) as base:
        base.record_scrape([SymptomRow("I21.4", "medlineplus", "I21.4", "exact", "en", "Heart [/]attack",
                                       "Crushing chest pain [/] radiating [bold]to the arm\x1b[5m.", None, 200,
                                       "0" * 64)],
                           [ScrapeLogEntry("medlineplus", "I21.4", None, "stored", "exact", 200)])
    looked = runner.invoke(app, ["kb", "lookup", "I21.4"])
    assert looked.exit_code == 0, looked.stderr
    assert "Crushing chest pain [/] radiating [bold]to the arm\\x1b[5m." in looked.stdout
    _no_raw_controls(looked.stdout)


def test_error_lines_show_control_characters_visibly(runner, tmp_path):
    gold = tmp_path / "gold.csv"
    gold.write_text("id,code\nn1,I21.4\n")
    result = runner.invoke(app, ["eval", str(tmp_path / "\x1b[2J[/]x.csv"), "--gold", str(gold)])
    assert result.exit_code == 2
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    assert "\\x1b[2J[/]x.csv" in result.stderr
    _no_raw_controls(result.stderr)


def test_eval_prints_hostile_ids_and_group_values_as_written(runner, tmp_path):
    preds = tmp_path / "preds.jsonl"
    preds.write_text("".join(json.dumps(r) + "\n" for r in [
        {"id": "[/]", "code": "I21.4", "site": "[bold]ward"},
        {"id": ESC_ID, "code": "J18.9", "site": "\x1b[31mER"},
        {"id": "extra[/]", "code": "N39.0", "site": "ER"},
    ]))
    gold = tmp_path / "gold.jsonl"
    gold.write_text("".join(json.dumps(r) + "\n" for r in [
        {"id": "[/]", "code": "I21.4"}, {"id": ESC_ID, "code": "J18.9"}, {"id": "[i]gone", "code": "E11.9"}]))
    result = runner.invoke(app, ["eval", str(preds), "--gold", str(gold), "--by", "site"])
    assert result.exit_code == 0, result.stderr
    assert "[bold]ward" in result.stdout and "\\x1b[31mER" in result.stdout
    assert "[i]gone" in result.stderr and "extra[/]" in result.stderr  # the missing/unmatched warnings
    _no_raw_controls(result.stdout + result.stderr)


def test_audit_screen_and_reports_escape_reviewer_text(runner, built_kb, monkeypatch, tmp_path):
    monkeypatch.setenv("ICDREASON_KB", str(built_kb))
    preds = write_predictions(tmp_path / "pred.jsonl", [
        record("[/]", "I21.4", "billable", 9, "I21", 0.8, "Chest pain [bold]\x1b[2J with troponin 2.3.",
               "Troponin is elevated [/]: NSTEMI."),
        record("n2", "J18.9", "billable", 10, "J18", 0.6, "Fever and cough.", "Pneumonia."),
    ])
    db = tmp_path / "audit.duckdb"
    started = runner.invoke(app, ["audit", "start", str(preds), "--reviewer", "alice", "--db", str(db)], input="q\n")
    assert started.exit_code == 0, started.stderr
    assert "[/]" in started.stdout and "Chest pain [bold]\\x1b[2J with troponin" in started.stdout
    _no_raw_controls(started.stdout)
    sheet = tmp_path / "sheet.csv"
    sheet.write_text(
        "case_id,reviewer,decision,code,reason,comment,flagged\n"
        '[/],alice,reject,,other,"see [chart](javascript:alert(1)) ![p](http://evil.example/p.png) '
        '<img src=x onerror=alert(1)> \x1b[2J",true\n')
    imported = runner.invoke(app, ["audit", "import", str(sheet), "--db", str(db)])
    assert imported.exit_code == 0, imported.stderr
    md = tmp_path / "report.md"
    reported = runner.invoke(app, ["audit", "report", "--db", str(db), "--md", str(md), "--no-plots"])
    assert reported.exit_code == 0, reported.stderr
    assert "javascript:alert(1)" in reported.stdout  # shown as written on the terminal ...
    _no_raw_controls(reported.stdout)
    text = md.read_text()
    flagged = text[text.index("## Flagged cases"):text.index("\nNote:")]  # the note and trace follow, fenced
    assert "javascript:alert" in flagged and _inert_markdown(flagged)  # readable, but inert, in the Markdown
    assert "```text\nChest pain [bold]\\x1b[2J with troponin 2.3.\n```" in text


def test_reward_score_prints_skipped_ids_visibly(runner, tmp_path):
    rows = tmp_path / "responses.jsonl"
    rows.write_text("".join(json.dumps(r) + "\n" for r in [
        {"id": "ok", "response": "<think>Chest pain and troponin: NSTEMI.</think>\n<diagnosis>I21.4</diagnosis>",
         "gold": "I21.4"},
        {"id": "[/]\x1b[2J", "response": "x"},
    ]))
    result = runner.invoke(app, ["reward", "score", str(rows), "--components", "format,outcome"])
    assert result.exit_code == 0, result.stderr
    assert "skipped [/]\\x1b[2J: no gold code" in result.stderr
    _no_raw_controls(result.stdout + result.stderr)
