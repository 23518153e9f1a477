"""A new user's first commands end in a result or in one line that names the fix, never in a traceback or in a
message that contradicts what was typed."""

from __future__ import annotations

import json
from pathlib import Path

from icdreason.cli import app

ROOT = Path(__file__).resolve().parents[1]


def test_predict_resume_and_overwrite_together_are_a_usage_error(runner, tmp_path):
    note = tmp_path / "n.txt"
    note.write_text("chest pain")
    result = runner.invoke(app, ["predict", str(note), "-o", str(tmp_path / "p.jsonl"), "--resume", "--overwrite"])
    assert result.exit_code == 2
    assert result.stderr.strip() == ("error: --resume continues an output and --overwrite replaces it: give one of "
                                     "them")
    assert not (tmp_path / "p.jsonl").exists()


def test_validate_an_empty_file_says_the_file_has_no_codes(runner, tmp_path):
    empty = tmp_path / "empty.txt"
    empty.write_text("# nothing yet\n")
    result = runner.invoke(app, ["validate", "--file", str(empty)])
    assert result.exit_code == 2
    assert result.stderr.strip() == (f"error: {empty} holds no codes: list codes in it (one or more per line, # "
                                     "comments) or pass them as arguments")
    assert "pass --file" not in result.stderr


def test_predict_on_a_table_without_text_lists_the_columns_tried_and_found(runner):
    result = runner.invoke(app, ["predict", str(ROOT / "examples" / "labels.csv")])
    assert result.exit_code == 2
    line = result.stderr.strip()
    assert "no text column ''" not in line
    assert "it has no column 'text', 'note' or 'note_text'" in line and "(columns: id, code)" in line


def test_eval_gives_files_with_the_same_stem_distinct_labels(runner, tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    gold = tmp_path / "gold.csv"
    gold.write_text("id,code\nn1,I21.4\nn2,J18.9\n")
    (tmp_path / "a.csv").write_text("id,code\nn1,I21.4\nn2,J18.9\n")
    pq.write_table(pa.table({"id": ["n1", "n2"], "code": ["I21.4", "I10"]}), tmp_path / "a.parquet")
    other = tmp_path / "other"
    other.mkdir()
    (other / "a.csv").write_text("id,code\nn1,I21.4\nn2,I10\n")
    result = runner.invoke(app, ["eval", str(tmp_path / "a.parquet"), str(tmp_path / "a.csv"), str(other / "a.csv"),
                                 "--gold", str(gold), "--out", "-"])
    assert result.exit_code == 0, result.stderr
    names = [run["name"] for run in json.loads(result.stdout)["runs"]]
    assert names == ["a.parquet", f"{tmp_path.name}/a.csv", "other/a.csv"]
