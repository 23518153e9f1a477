"""`icdreason eval` through the CLI: the paper's Table 3 layout, JSON, bad input, the Figure-4 plot, --by."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import pytest

from icdreason import DISCLAIMER
from icdreason.cli import app
from icdreason.records import Record, open_writer

GOLD_CSV = """id,codes
n1,"I21.4, E11.9"
n2,I214
n3,J18.9
n4,j189
n5,N39.0
n6,K35.80
"""
# (id, code, format_ok, status, engine, confidence)
PREDICTIONS = [
    ("n1", "I21.4", True, "billable", "hf", 0.9),
    ("n2", "I21.9", True, "billable", "hf", 0.4),
    ("n3", "J18.9", True, "billable", "retriever", 0.8),
    ("n4", None, False, "no_output", "retriever", 0.0),
    ("n5", "n39.0 ", True, "billable", "hf", 0.7),
]


def records(rows=PREDICTIONS, run_id="run-a"):
    return [Record(id=i, source="notes.jsonl", run_id=run_id, engine=e, model="tiny", uses_llm=e == "hf",
                   code=c, code_raw=c, format_ok=ok, status=s, confidence={"code": conf, "category": conf,
                                                                           "chapter": conf})
            for i, c, ok, s, e, conf in rows]


def write_predictions(path: Path, rows=PREDICTIONS) -> Path:
    with open_writer(path) as writer:
        writer.write_batch(records(rows))
    return path


@pytest.fixture
def files(tmp_path):
    gold = tmp_path / "gold.csv"
    gold.write_text(GOLD_CSV)
    return gold, write_predictions(tmp_path / "run.jsonl")


def invoke(runner, *args):
    return runner.invoke(app, [str(a) for a in args])


def test_table3_layout_and_json(runner, files, tmp_path):
    gold, preds = files
    out = tmp_path / "metrics.json"
    result = invoke(runner, "eval", preds, "--gold", gold, "--out", out)
    assert result.exit_code == 0, result.output + result.stderr
    # Code level by hand: I214 (support 2, predicted 1, tp 1), J189 (2, 1, 1), N390 (1, 1, 1), K3580 (1, 0, 0),
    # NIL (0, 3, 0: I21.9 is not a gold code, n4 has no code, n6 no prediction) -> R = (1/2 + 1/2 + 1)/5 = 40.0, P = 3/5 = 60.0, F1 = (2/3 + 2/3 + 1)/5 = 46.7.
    row = next(line for line in result.stdout.splitlines() if line.startswith("│ run "))
    cells = [c.strip() for c in row.strip("│ ").split("│")]
    assert cells[0] == "run"
    assert cells[7:10] == ["40.0", "60.0", "46.7"]
    assert "gold classes only" in result.stdout
    assert "per chapter" in result.stdout and "by frequency" in result.stdout
    # the two retriever rows had no model output to check: they count neither way
    assert "format valid (paper's check) 100.0% of 3 predictions" in result.stdout
    assert "format valid n/a for 2 predictions of an engine without a language model" in " ".join(result.stdout.split())
    assert "1 gold id(s) have no prediction" in result.stderr and "n6" in result.stderr
    assert DISCLAIMER in " ".join(result.stderr.split())
    data = json.loads(out.read_text())
    assert data["disclaimer"] == DISCLAIMER
    run = data["runs"][0]
    assert run["missing_predictions"] == 1 and run["matched"] == 5
    code = run["levels"]["code"]
    assert code["macro"] == pytest.approx({"precision": 0.6, "recall": 0.4, "f1": 7 / 15})
    assert code["accuracy"] == pytest.approx(3 / 6)
    assert code["nil_predictions"] == 3
    assert run["status_counts"] == {"billable": 4, "no_output": 1, "(no prediction)": 1}
    chapters = {c["chapter"]: c for c in run["per_chapter"]}
    assert chapters[9]["support"] == 2 and chapters[9]["f1"] == 1.0
    assert chapters[9]["code_accuracy"] == 0.5
    # One chapter form: the number in JSON, "9 (I00-I99)" wherever a person reads it.
    assert chapters[9]["label"] == "9 (I00-I99)" and "│ 9 (I00-I99) " in result.stdout
    assert [t["third"] for t in run["frequency_thirds"]["category"]] == ["head", "middle", "tail"]
    per_class = {c["label"]: c for c in run["per_class"]["code"]}
    assert per_class["I214"] == {"label": "I214", "support": 2, "predicted": 1, "tp": 1, "precision": 1.0,
                                 "recall": 0.5, "f1": pytest.approx(2 / 3)}
    assert per_class["NIL"]["predicted"] == 3 and len(per_class) == 5


def test_json_to_stdout_with_bootstrap_is_reproducible(runner, files):
    gold, preds = files
    first = invoke(runner, "eval", preds, "--gold", gold, "--out", "-", "--bootstrap", "50", "--seed", "1")
    second = invoke(runner, "eval", preds, "--gold", gold, "--out", "-", "--bootstrap", "50", "--seed", "1")
    assert first.exit_code == 0, first.stderr
    a, b = json.loads(first.stdout), json.loads(second.stdout)
    assert a["runs"][0]["levels"]["code"]["ci95"] == b["runs"][0]["levels"]["code"]["ci95"]
    lo, hi = a["runs"][0]["levels"]["chapter"]["ci95"]["macro_f1"]
    assert 0.0 <= lo <= a["runs"][0]["levels"]["chapter"]["macro"]["f1"] <= hi <= 1.0


def test_runs_side_by_side_in_every_format(runner, files, tmp_path):
    gold, jsonl = files
    better = [(i, "I21.4" if i == "n2" else c, ok, s, e, conf) for i, c, ok, s, e, conf in PREDICTIONS]
    csv_file = write_predictions(tmp_path / "better.csv", better)
    parquet = write_predictions(tmp_path / "same.parquet")
    from icdreason.records import PredictionDB

    db = PredictionDB(tmp_path / "log.duckdb")
    for run_id, rows in (("r1", PREDICTIONS), ("r2", better)):
        db.start_run(run_id, {"engine": "hf"})
        db.write_batch(records(rows, run_id))
    db.close()
    out = tmp_path / "m.json"
    result = invoke(runner, "eval", jsonl, csv_file, parquet, tmp_path / "log.duckdb", "--gold", gold, "--out", out,
                    "--brief")
    assert result.exit_code == 0, result.stderr
    runs = {r["name"]: r["levels"]["code"]["macro"]["f1"] for r in json.loads(out.read_text())["runs"]}
    assert list(runs) == ["run", "better", "same", "log:r1", "log:r2"]
    assert runs["run"] == pytest.approx(runs["same"]) == pytest.approx(runs["log:r1"])
    assert runs["better"] == pytest.approx(runs["log:r2"]) and runs["better"] > runs["run"]
    assert "per chapter" not in result.stdout  # --brief


def test_plain_tables_with_named_columns_and_verl_gold(runner, tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    gold = tmp_path / "test.parquet"  # the layout `icdreason data prepare` writes for verl
    pq.write_table(pa.table({
        "data_source": ["mimic"] * 3,
        "reward_model": [{"style": "rule", "ground_truth": c} for c in ("I21.4", "J18.9", "U07.1")],
        "extra_info": [{"id": i, "split": "test"} for i in ("a", "b", "c")],
    }), gold)
    preds = tmp_path / "preds.tsv"
    preds.write_text("note\tanswer\na\ti214\nb\tJ18.9 \nc\tU071\n")
    result = invoke(runner, "eval", preds, "--gold", gold, "--id-column", "note", "--gold-id-column",
                    "extra_info.id", "--prediction-column", "answer", "--out", "-")
    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["gold"]["code_column"] == "reward_model.ground_truth"
    for level in ("chapter", "category", "code"):
        assert data["runs"][0]["levels"][level]["macro"]["f1"] == 1.0


def test_fixed_vocabulary(runner, files, tmp_path):
    gold, preds = files
    labels = tmp_path / "labels.txt"
    labels.write_text("# training label set\nI21.4\nI21.9\nJ18.9\nN39.0\n")
    result = invoke(runner, "eval", preds, "--gold", gold, "--labels", labels, "--out", "-")
    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["label_space"] == {"source": str(labels), "codes": 4, "categories": 3, "chapters": 22}
    assert data["gold"]["outside_label_space"] == 1  # K35.80
    assert "outside the label space" in result.stderr
    # I21.9 is now a class of its own, not NIL; NIL is only n4 (no code) and n6 (no prediction).
    assert data["runs"][0]["levels"]["code"]["nil_predictions"] == 2
    # A training file in trl's SFT layout works as the vocabulary too (its `code` column).
    import pyarrow as pa
    import pyarrow.parquet as pq

    sft = tmp_path / "sft.parquet"
    pq.write_table(pa.table({"id": ["t1", "t2", "t3", "t4"], "code": ["I21.4", "I21.9", "J18.9", "N39.0"],
                             "messages": [[{"role": "user", "content": "note"}]] * 4}), sft)
    again = json.loads(invoke(runner, "eval", preds, "--gold", gold, "--labels", sft, "--out", "-").stdout)
    assert again["runs"][0]["levels"] == data["runs"][0]["levels"]


@pytest.mark.parametrize(("content", "message"), [
    ("", "is empty"),
    ("id,code\n", "has no rows"),
])
def test_empty_files(runner, files, tmp_path, content, message):
    gold, preds = files
    empty = tmp_path / "empty.csv"
    empty.write_text(content)
    for args in ((preds, "--gold", empty), (empty, "--gold", gold)):
        result = invoke(runner, "eval", *args)
        assert result.exit_code == 2
        assert message in result.stderr and "Traceback" not in result.stderr


def test_duplicated_ids(runner, files, tmp_path):
    gold, _ = files
    dup = write_predictions(tmp_path / "dup.jsonl", PREDICTIONS + [("n1", "J18.9", True, "billable", "hf", 0.5)])
    result = invoke(runner, "eval", dup, "--gold", gold)
    assert result.exit_code == 2
    assert "1 duplicated id(s), e.g. 'n1' (2x)" in result.stderr and "--duplicates first|last" in result.stderr
    first = json.loads(invoke(runner, "eval", dup, "--gold", gold, "--duplicates", "first", "--out", "-").stdout)
    last = json.loads(invoke(runner, "eval", dup, "--gold", gold, "--duplicates", "last", "--out", "-").stdout)
    assert first["runs"][0]["duplicates_dropped"] == 1
    assert first["runs"][0]["levels"]["code"]["accuracy"] > last["runs"][0]["levels"]["code"]["accuracy"]


def test_ids_that_do_not_match(runner, files, tmp_path):
    gold, _ = files
    other = write_predictions(tmp_path / "other.jsonl", [("x" + i, c, ok, s, e, f)
                                                         for i, c, ok, s, e, f in PREDICTIONS])
    result = invoke(runner, "eval", other, "--gold", gold)
    assert result.exit_code == 2
    assert "no prediction id" in result.stderr and "'xn1'" in result.stderr and "'n1'" in result.stderr


def test_missing_columns_name_the_option(runner, files, tmp_path):
    gold, preds = files
    result = invoke(runner, "eval", preds, "--gold", gold, "--prediction-column", "nope")
    assert result.exit_code == 2 and "no column 'nope'" in result.stderr and "--prediction-column" in result.stderr
    bare = tmp_path / "bare.csv"
    bare.write_text("id,text\nn1,hello\n")
    result = invoke(runner, "eval", bare, "--gold", gold)
    assert result.exit_code == 2 and "predicted code column" in result.stderr


def test_by_field_and_numeric_bins(runner, files, tmp_path):
    gold, _ = files
    many = [(f"n{i}", "I21.4", True, "billable", "hf", i / 20) for i in range(1, 21)]
    gold20 = tmp_path / "gold20.csv"
    gold20.write_text("id,code\n" + "".join(f"n{i},{'I21.4' if i % 2 else 'J18.9'}\n" for i in range(1, 21)))
    preds = write_predictions(tmp_path / "many.jsonl", many)
    result = invoke(runner, "eval", preds, "--gold", gold20, "--by", "engine", "--by", "confidence.code",
                    "--bins", "4", "--out", "-")
    assert result.exit_code == 0, result.stderr
    by = json.loads(result.stdout)["runs"][0]["by"]
    assert [(g["value"], g["n"]) for g in by["engine"]] == [("hf", 20)]
    assert [g["n"] for g in by["confidence.code"]] == [5, 5, 5, 5]
    assert by["confidence.code"][0]["value"].startswith("[0.05, ")


def test_by_field_with_too_many_values(runner, tmp_path):
    gold = tmp_path / "gold.csv"
    gold.write_text("id,code\n" + "".join(f"{i},I21.4\n" for i in range(120)))
    preds = tmp_path / "preds.csv"
    preds.write_text("id,code,site\n" + "".join(f"{i},I21.4,site-{i}\n" for i in range(120)))
    result = invoke(runner, "eval", preds, "--gold", gold, "--by", "site")
    assert result.exit_code == 2
    assert "--by site has 120 distinct values" in result.stderr


def test_plot_is_a_png(runner, files, tmp_path):
    gold, preds = files
    png = tmp_path / "figs" / "chapters.png"
    result = invoke(runner, "eval", preds, "--gold", gold, "--plot", png, "--brief")
    assert result.exit_code == 0, result.stderr
    data = png.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", data[16:24])
    assert width > 300 and height > 200
    try:
        from PIL import Image
    except ImportError:
        return
    with Image.open(png) as img:
        img.verify()
    with Image.open(png) as img:
        assert img.format == "PNG" and img.size == (width, height)


def test_plot_without_matplotlib_names_the_extra(runner, files, tmp_path, monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_matplotlib(name, *args, **kwargs):
        if name == "matplotlib" or name.startswith("matplotlib."):
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_matplotlib)
    gold, preds = files
    result = invoke(runner, "eval", preds, "--gold", gold, "--plot", tmp_path / "x.png")
    assert result.exit_code == 1
    assert "pip install '.[plot]' in the icdreason checkout" in result.stderr and "pip install matplotlib" in result.stderr


def test_spreadsheet_export_with_bom_crlf_and_messy_codes(runner, tmp_path):
    gold = tmp_path / "gold.csv"
    gold.write_bytes(b"\xef\xbb\xbfID,Code\r\nn1, i21.4 \r\nn2,J189\r\nn3,\"['U07.1', 'J12.82']\"\r\n")
    preds = tmp_path / "preds.csv"
    preds.write_text("id,code\nn1,I214\nn2, j18.9\nn3,U07.1\n")
    result = invoke(runner, "eval", preds, "--gold", gold, "--out", "-")
    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)
    assert (data["gold"]["id_column"], data["gold"]["code_column"]) == ("ID", "Code")
    assert all(data["runs"][0]["levels"][lvl]["accuracy"] == 1.0 for lvl in ("chapter", "category", "code"))
