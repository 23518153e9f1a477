"""icdreason.tables, the one reader of jsonl/csv/parquet/duckdb tables, and the gold loader built on it."""

from __future__ import annotations

import csv
import json

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from icdreason.errors import InputError, UsageError
from icdreason.gold import gold_codes, load_gold
from icdreason.tables import iter_batches, iter_rows, pick_column, read_codes_file, read_rows

AWKWARD = [
    {"id": "n1", "text": 'She said "no", twice;\nthen left.', "code": "I21.4"},
    {"id": "n2", "text": '"quoted at both ends"', "code": ""},
    {"id": "n3", "text": "tab\there, comma, semicolon;", "code": "E11.65"},
]


def _write_csv(path, rows, delimiter=",", bom=False):
    with open(path, "w", newline="", encoding="utf-8-sig" if bom else "utf-8") as fh:
        writer = csv.writer(fh, delimiter=delimiter)  # the csv module's standard dialect
        writer.writerow(rows[0].keys())
        writer.writerows(r.values() for r in rows)
    return path


def test_csv_quoting_round_trips_in_every_reading_path(tmp_path):
    path = _write_csv(tmp_path / "notes.csv", AWKWARD, bom=True)
    rows = read_rows(path)
    assert rows.columns == ["id", "text", "code"]
    assert list(rows) == AWKWARD
    assert rows.lines == [2, 4, 5]  # the line each record starts on (the first one spans two lines)
    columnar = read_rows(path, columnar=True)  # Arrow's parser, same dialect
    assert columnar.get("text") == [r["text"] for r in AWKWARD] and columnar.get("id") == ["n1", "n2", "n3"]
    assert list(iter_rows(path)) == AWKWARD
    tsv = _write_csv(tmp_path / "notes.tsv", AWKWARD, delimiter="\t")
    assert list(read_rows(tsv)) == AWKWARD


def test_delimiter_choice_never_misreads_standard_quoting(tmp_path):
    sheet = tmp_path / "sheet.csv"
    sheet.write_text('"case;id",reviewer\n"n1;x",alice\n', encoding="utf-8")
    rows = read_rows(sheet, delimiters=",;\t")
    assert rows.columns == ["case;id", "reviewer"] and list(rows) == [{"case;id": "n1;x", "reviewer": "alice"}]
    excel = tmp_path / "excel.csv"
    excel.write_text('Case ID;Comment\nn1;"a ""quoted"" word; with a semicolon"\n', encoding="utf-8")
    assert list(read_rows(excel, delimiters=",;\t")) == [
        {"Case ID": "n1", "Comment": 'a "quoted" word; with a semicolon'}]


def test_text_that_is_not_utf8_is_one_line_or_replaced(tmp_path):
    latin = tmp_path / "latin.csv"
    latin.write_bytes("id,text\nn1,Patientin klagt über Schmerzen\n".encode("latin-1"))
    with pytest.raises(InputError, match=r"latin.csv is not UTF-8 text: save it as UTF-8"):
        read_rows(latin)
    replaced = read_rows(latin, errors="replace")
    assert list(replaced)[0]["text"] == "Patientin klagt \ufffdber Schmerzen"


def test_jsonl_bad_lines_torn_tails_and_arrays(tmp_path):
    path = tmp_path / "rows.jsonl"
    path.write_text('{"id": "a"}\n\n{"id": "b", "info": {"split": "test"}}\n{"id": "c"', encoding="utf-8")
    with pytest.raises(InputError, match=r"rows.jsonl:4 is not a JSON object"):
        read_rows(path)
    rows = read_rows(path, torn_tail=True)  # what a killed writer leaves: the unterminated last line is not a row
    assert [r["id"] for r in rows] == ["a", "b"] and rows.lines == [1, 3]
    assert rows.columns == ["id", "info", "info.split"] and rows.get("info.split") == [None, "test"]
    kept = read_rows(path, bad_lines="keep")
    assert list(kept)[2]["__error"].startswith("line 4 is not a JSON object")
    path.write_text('{"id": "a"}\n[1, 2]\n{"id": "c"}\n', encoding="utf-8")
    with pytest.raises(InputError, match=r":2 is not a JSON object \(a JSON list, not an object\)"):
        read_rows(path, torn_tail=True)  # a complete line that is not an object is never a torn tail
    array = tmp_path / "rows.json"
    array.write_text('[{"id": "a"}, {"id": "b"}]', encoding="utf-8")
    assert [r["id"] for r in read_rows(array)] == ["a", "b"]


def test_parquet_streams_in_batches_with_nested_columns(tmp_path):
    path = tmp_path / "rl.parquet"
    table = pa.table({"prompt": [f"note {i}" for i in range(10)],
                      "extra_info": [{"id": f"n{i}", "split": "train"} for i in range(10)]})
    pq.write_table(table, path, row_group_size=4)
    assert [len(b) for b in iter_batches(path, batch_size=4)] == [4, 4, 2]
    assert next(iter_rows(path)) == {"prompt": "note 0", "extra_info": {"id": "n0", "split": "train"}}
    rows = read_rows(path)
    assert rows.columns == ["prompt", "extra_info", "extra_info.id", "extra_info.split"]
    assert rows.get("extra_info.id")[-1] == "n9" and rows.lines is None
    (tmp_path / "broken.parquet").write_bytes(b"PAR1 not really")
    with pytest.raises(InputError, match="is not a readable Parquet file"):
        read_rows(tmp_path / "broken.parquet")


def test_duckdb_tables_by_name_with_json_decoded(tmp_path):
    path = tmp_path / "mine.duckdb"
    con = duckdb.connect(str(path))
    con.execute("CREATE TABLE gold (id VARCHAR, code VARCHAR, extra JSON)")
    con.execute("""INSERT INTO gold VALUES ('n1', 'I21.4', '{"site": "a"}'), ('n2', 'E11.65', NULL)""")
    con.close()
    assert list(iter_rows(path, table="gold")) == [{"id": "n1", "code": "I21.4", "extra": {"site": "a"}},
                                                   {"id": "n2", "code": "E11.65", "extra": None}]
    with pytest.raises(InputError, match=r"has no predictions table: .* \(tables: gold\)"):
        read_rows(path)
    with pytest.raises(InputError, match=r"has no table 'golden' \(tables: gold\)"):
        read_rows(path, table="golden")


def test_pick_column_names_what_it_tried_and_what_there_is():
    columns = ["ID", "Note text", "Code"]
    assert pick_column(columns, None, ("id", "note_id"), source="t.csv", what="id", option="--id-column") == "ID"
    assert pick_column(columns, "Code", ("code",), source="t.csv", what="code", option="--column") == "Code"
    assert pick_column(columns, None, ("text",), source="t.csv", what="text", option="--text-column",
                       required=False) is None
    with pytest.raises(UsageError) as tried:
        pick_column(columns, None, ("text", "note"), source="t.csv", what="text", option="--text-column")
    assert str(tried.value) == ("no text column in t.csv: it has no column 'text' or 'note'; choose one with "
                                "--text-column (columns: ID, Note text, Code)")
    with pytest.raises(UsageError) as named:
        pick_column(columns, "body", ("text",), source="t.csv", what="text", option="--text-column")
    assert str(named.value) == ("no text column 'body' in t.csv: it has no column 'body'; choose one with "
                                "--text-column (columns: ID, Note text, Code)")


def test_one_rule_for_files_of_codes(tmp_path):
    text = tmp_path / "codes.txt"
    text.write_text("# to check\nI21.4, E11.65;M51\n\nZ99.9  # trailing comment\n", encoding="utf-8")
    assert read_codes_file(text) == ["I21.4", "E11.65", "M51", "Z99.9"]
    table = _write_csv(tmp_path / "codes.csv", AWKWARD)
    assert read_codes_file(table) == ["I21.4", "", "E11.65"]  # the column named code
    assert read_codes_file(table, "id") == ["n1", "n2", "n3"]
    single = tmp_path / "single.csv"
    single.write_text("diagnosis\nI10\n", encoding="utf-8")
    assert read_codes_file(single) == ["I10"]  # a table's only column
    jsonl = tmp_path / "codes.jsonl"
    jsonl.write_text(json.dumps({"icd10": "I10"}) + "\n" + json.dumps({"icd10": None}) + "\n", encoding="utf-8")
    assert read_codes_file(jsonl) == ["I10", ""]
    with pytest.raises(UsageError, match=r"no code column in .*codes.csv: it has no column 'code'"):
        read_codes_file(_write_csv(tmp_path / "codes.csv", [{"id": "n1", "dx": "I10"}]))
    with pytest.raises(InputError, match="file not found"):
        read_codes_file(tmp_path / "missing.txt")


def test_one_gold_loader_for_eval_and_rewards(tmp_path):
    rl = tmp_path / "rl_test.parquet"  # the shape `icdreason data prepare` writes
    pq.write_table(pa.table({
        "prompt": ["p1", "p2"],
        "reward_model": [{"style": "rule", "ground_truth": "I21.4"}, {"style": "rule", "ground_truth": "E11.65"}],
        "extra_info": [{"id": "n1", "split": "test"}, {"id": "n2", "split": "test"}],
    }), rl)
    assert gold_codes(rl) == {"n1": "I21.4", "n2": "E11.65"}
    gold = load_gold(rl)
    assert (gold.id_column, gold.code_column) == ("extra_info.id", "reward_model.ground_truth")
    csv_gold = tmp_path / "gold.csv"
    csv_gold.write_text('id,ground_truth\nn1,"I21.4, I10"\nn2,E11.65\nn1,I21.9\n', encoding="utf-8")
    assert gold_codes(csv_gold) == {"n1": "I21.9", "n2": "E11.65"}  # first code of a cell; the last row wins
    with pytest.raises(InputError, match=r"1 duplicated id\(s\), e.g. 'n1' \(2x\)"):
        load_gold(csv_gold)  # eval's default refuses duplicates
    log = tmp_path / "gold.duckdb"
    con = duckdb.connect(str(log))
    con.execute("CREATE TABLE predictions (id VARCHAR, gold VARCHAR)")
    con.execute("INSERT INTO predictions VALUES ('n1', 'I21.4')")
    con.close()
    assert gold_codes(log) == {"n1": "I21.4"}
    (tmp_path / "empty.jsonl").write_text("", encoding="utf-8")
    with pytest.raises(InputError, match="is empty: expected rows with an id and a code"):
        gold_codes(tmp_path / "empty.jsonl")
