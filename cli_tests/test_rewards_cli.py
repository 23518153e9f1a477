"""`icdreason reward score` and `icdreason reward settings`."""

from __future__ import annotations

import json

from icdreason.cli import app


def write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_reward_score_prints_the_component_table(tmp_path, runner):
    f = write_jsonl(tmp_path / "responses.jsonl", [
        {"id": "a", "response": "Chest pain.</think><diagnosis>I21.4</diagnosis>", "gold": "I21.4"},
        {"id": "b", "response": "Back pain.</think><diagnosis>M51.9</diagnosis>", "gold": "M51.16"},
        {"id": "c", "response": "", "gold": "I10"},
        {"id": "d", "gold": "I10"},  # no response: skipped, not fatal
    ])
    out = tmp_path / "scores.jsonl"
    result = runner.invoke(app, ["reward", "score", str(f), "--preset", "icdreason", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "skipped d: no response field" in result.stderr
    lines = {line.split("│")[1].strip(): [c.strip() for c in line.split("│")[2:-1]]
             for line in result.stdout.splitlines() if line.count("│") >= 5}
    # outcome: 60 (exact I21.4), 24 (M51 of M51.16), -1 (empty) -> mean 27.6667
    assert lines["outcome"] == ["27.6667", "-1.0000", "60.0000", "100.0%"]
    assert lines["format"][:3] == ["-1.0000", "-5.0000", "1.0000"]
    assert "format ok 66.7%" in result.stdout and "exact 33.3%" in result.stdout
    rows = [json.loads(x) for x in out.read_text().splitlines()]
    assert [r["id"] for r in rows] == ["a", "b", "c"] and rows[1]["prefix"] == 3.0 and rows[0]["exact"] == 1.0


def test_reward_score_with_gold_file_and_settings(tmp_path, runner):
    f = write_jsonl(tmp_path / "r.jsonl", [{"id": "a", "completion": "x</think><diagnosis>I21.4</diagnosis>"}])
    gold = tmp_path / "gold.csv"
    gold.write_text("id,code\na,I21.4\n")
    result = runner.invoke(app, ["reward", "score", str(f), "--gold", str(gold), "--components", "outcome",
                                 "--set", "match_weight=2"])
    assert result.exit_code == 0, result.output
    assert "│ score     │ 8.0000" in result.stdout


def test_reward_usage_errors(tmp_path, runner):
    f = write_jsonl(tmp_path / "r.jsonl", [{"id": "a", "response": "x", "gold": "I10"}])
    bad = runner.invoke(app, ["reward", "score", str(f), "--set", "match_wieght=2"])
    assert bad.exit_code == 2 and "unknown reward setting(s): match_wieght" in bad.stderr
    judge = runner.invoke(app, ["reward", "score", str(f), "--components", "format,judge"])
    assert judge.exit_code == 2 and "judge_url" in judge.stderr


def test_reward_settings_lists_every_field_with_help(runner):
    result = runner.invoke(app, ["reward", "settings"])
    assert result.exit_code == 0
    for name in ("match_weight", "length_malus", "judge_scale", "prefix_bonus"):
        assert name in result.stdout
