"""Validation statuses and suggestions on real codes, through the library and the CLI."""

import json

import pytest

from icdreason.cli import app


@pytest.mark.parametrize(
    "raw, status, code",
    [
        ("I21.4", "billable", "I21.4"),
        ("i214", "billable", "I21.4"),
        ('"i21.4",', "billable", "I21.4"),
        ("Z3A.01", "billable", "Z3A.01"),
        ("M1A.0110", "billable", "M1A.0110"),
        ("S72.001A", "billable", "S72.001A"),
        ("M51", "header", "M51"),
        ("S72.001", "header", "S72.001"),
        ("Z99.9", "unknown", "Z99.9"),
        ("S06.377D", "unknown", "S06.377D"),
        ("hello", "malformed", "HELLO"),
        ("", "malformed", ""),
    ],
)
def test_statuses(kb, raw, status, code):
    verdict = kb.validate(raw)
    assert (verdict.status, verdict.code) == (status, code)
    assert kb.statuses([raw]) == [status]


def test_header_lists_billable_children(kb):
    verdict = kb.validate("M51.1")
    assert verdict.status == "header"
    assert verdict.billable_below == 4
    assert sorted(verdict.suggestions) == ["M51.14", "M51.15", "M51.16", "M51.17"]
    assert all(kb.validate(s).status == "billable" for s in verdict.suggestions)


def test_unknown_suggests_longest_existing_prefix_first(kb):
    verdict = kb.validate("S06.377D")
    assert verdict.suggestions[0] == "S06.377A"
    verdict = kb.validate("I21.5")  # the category I21 exists, I21.5 does not
    assert verdict.status == "unknown"
    assert all(s.startswith("I21") for s in verdict.suggestions)


def test_unknown_without_prefix_uses_edit_distance(kb):
    verdict = kb.validate("I2L.4")  # a lower-case l typed for a one
    assert verdict.status == "unknown"
    assert "I21.4" in verdict.suggestions


def test_paper_pattern_is_reported_separately(kb):
    assert kb.validate("Z3A.01").paper_pattern is False
    assert kb.validate("I21.4").paper_pattern is True


def test_vectorised_statuses_agree_with_validate(kb):
    codes = ["I21.4", "m51", " z99.9 ", "??", None, "Ｉ２１．４", "S72.001A", "S72.001", "C7A.010", "U07.1"]
    assert kb.statuses(codes) == [
        "billable", "header", "unknown", "malformed", "malformed", "billable", "billable", "header", "billable",
        "billable",
    ]
    assert kb.statuses(codes) == kb.statuses(list(codes))  # memo gives the same answers


def test_cli_table_and_exit_codes(runner, kb_file):
    ok = runner.invoke(app, ["validate", "I21.4", "M51.16"])
    assert ok.exit_code == 0, ok.output
    assert "billable" in ok.stdout
    mixed = runner.invoke(app, ["validate", "I21.4", "M51", "Z99.9", "x1"])
    assert mixed.exit_code == 1
    for status in ("header", "unknown", "malformed"):
        assert status in mixed.stdout


def test_cli_jsonl_and_csv(runner, kb_file):
    result = runner.invoke(app, ["validate", "M51", "I21.4", "--format", "jsonl"])
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert [r["status"] for r in rows] == ["header", "billable"]
    assert rows[0]["suggestions"][0] == "M51.9"
    result = runner.invoke(app, ["validate", "I21.4", "--format", "csv"])
    assert result.stdout.splitlines()[1].startswith("I21.4,I21.4,billable,Non-ST elevation")


def test_cli_file_column(runner, kb_file, tmp_path):
    table = tmp_path / "codes.csv"
    table.write_text("id,code\n1,I21.4\n2,E11.65\n")
    result = runner.invoke(app, ["validate", "--file", str(table), "--column", "code", "--format", "jsonl"])
    assert result.exit_code == 0
    assert len(result.stdout.splitlines()) == 2
    result = runner.invoke(app, ["validate", "--file", str(table), "--column", "nope"])
    assert result.exit_code == 2
    assert "has no column 'nope'" in result.stderr


def test_cli_usage_errors(runner, kb_file, tmp_path):
    empty = runner.invoke(app, ["validate"])
    assert empty.exit_code == 2 and "no codes given" in empty.stderr
    bad_format = runner.invoke(app, ["validate", "I10", "--format", "xml"])
    assert bad_format.exit_code == 2
    unknown_option = runner.invoke(app, ["validate", "I10", "--colour"])
    assert unknown_option.exit_code == 2
    binary = tmp_path / "codes.txt"
    binary.write_bytes(b"\xff\xfe\x00binary")
    not_text = runner.invoke(app, ["validate", "--file", str(binary)])
    assert not_text.exit_code == 2 and "not UTF-8" in not_text.stderr
