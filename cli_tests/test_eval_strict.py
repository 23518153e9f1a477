"""Strict scoring in `icdreason eval` (the DeepICD-R1 authors' reading of a response) and the --salvage row.

The worked examples are written from the rule: put ``<think>`` in front of the response, find the first
think/diagnosis pair that starts a line, take its diagnosis text stripped and without dots; no pair, no answer.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from icdreason.cli import app
from icdreason.evaluation import evaluate_files
from icdreason.parse import first_pair, parse_response, strict_answer
from icdreason.records import Record, open_writer

TRACE = "Chest pain radiating to the left arm, troponin rising."


@pytest.mark.parametrize(("response", "answer"), [
    (f"{TRACE}</think>\n<diagnosis>I21.4</diagnosis>", "I214"),  # the prefilled shape; dots go
    (f"{TRACE}</think><diagnosis>I21.4</diagnosis>", "I214"),  # no whitespace needed between the blocks
    (f"{TRACE}</think>\r\n<diagnosis> I21.4 </diagnosis>", "I214"),  # CRLF; the answer is stripped
    (f"{TRACE}</think>\n<diagnosis>I.2.1.4</diagnosis>", "I214"),  # every dot goes
    (f"{TRACE}</think>\n<diagnosis>i21.4</diagnosis>", "i214"),  # case is kept
    (f"{TRACE}</think>\n<diagnosis>I21.4 - NSTEMI</diagnosis>", "I214 - NSTEMI"),  # no code check: free text stays
    (f"{TRACE}</think>\n<diagnosis></diagnosis>", ""),  # a pair with an empty answer
    (f"{TRACE}</think>\n<diagnosis>I21.4</diagnosis>\nI hope this helps.", "I214"),  # text after is ignored
    (f"{TRACE}</think>\n<diagnosis>I21.4</diagnosis>\n<think>more</think>\n<diagnosis>J18.9</diagnosis>", "I214"),
    (f"{TRACE}</think>\n<diagnosis>I21.4</diagnosis><diagnosis>J18.9</diagnosis>", "I214"),  # first of two
    # the model opens its own <think>: the prefill makes it a nested block, so only a diagnosis on a line of its own
    # is found (with no trace)
    (f"<think>{TRACE}</think>\n<diagnosis>I21.4</diagnosis>", "I214"),
    (f"<think>{TRACE}</think><diagnosis>I21.4</diagnosis>", None),
    (f"{TRACE}</think> Final answer: <diagnosis>I21.4</diagnosis>", None),  # text before it on its line
    (f"{TRACE}</think>\nFinal answer:\n<diagnosis>I21.4</diagnosis>", "I214"),  # ... but not on its own line
    (f"{TRACE}\n<diagnosis>I21.4</diagnosis>", "I214"),  # no </think>: the diagnosis line alone is a pair
    (f"{TRACE}<diagnosis>I21.4</diagnosis>", None),  # no </think>, same line
    (f"{TRACE}</think>\n<diagnosis>I21.4", None),  # cut off at the token limit
    (f"{TRACE}</think>\n<diagnosis><diagnosis>I21.4</diagnosis></diagnosis>", None),  # nested
    (f"{TRACE}</think>\n<Diagnosis>I21.4</Diagnosis>", None),  # tags are case-sensitive
    (f"{TRACE}</think>\nThe code is I21.4.", None),  # no tags at all: nothing is salvaged
    ("", None),
    ("   \n", None),
])
def test_strict_answer_worked_examples(response, answer):
    assert strict_answer(response) == answer


def test_first_pair_keeps_the_raw_trace_and_diagnosis():
    assert first_pair(f"{TRACE}</think>\n<diagnosis> I21.4 </diagnosis>") == (TRACE, " I21.4 ")
    assert first_pair(f"<think>{TRACE}</think>\n<diagnosis>I21.4</diagnosis>") == ("", "I21.4")
    assert first_pair("no tags") is None


def test_strict_answer_is_fast_on_long_whitespace_runs():
    # A degenerate generation: thousands of newlines and no pair. A backtracking reading of the optional block is
    # cubic here (seconds); the strict reading stays linear per line start.
    start = time.perf_counter()
    assert strict_answer("\n" * 5000 + "no answer") is None
    assert strict_answer(TRACE + " \t" * 5000) is None
    assert time.perf_counter() - start < 1.0


def test_parse_response_is_unchanged_by_strict_scoring():
    # predict's tolerant parse still salvages a code from untagged text (shown by eval --salvage).
    parsed = parse_response(f"{TRACE}</think>\nThe code is I21.4.")
    assert (parsed.code, parsed.format_ok) == ("I21.4", False)


GOLD = "id,code\nn1,I21.4\nn2,J18.9\nn3,N39.0\nn4,K35.80\n"


def record(note_id: str, code: str | None, format_ok: bool, raw: list[str] | None = None) -> Record:
    return Record(id=note_id, source="notes.jsonl", run_id="r", engine="hf", model="tiny", uses_llm=True,
                  code=code, code_raw=code, format_ok=format_ok, status="billable" if code else "no_output", raw=raw)


def write(path: Path, records: list[Record]) -> Path:
    if path.suffix == ".duckdb":
        from icdreason.records import PredictionDB

        db = PredictionDB(path)
        db.start_run("r", {"engine": "hf"})
        db.write_batch(records)
        db.close()
        return path
    with open_writer(path, keep_raw=any(r.raw is not None for r in records)) as writer:
        writer.write_batch(records)
    return path


def pair(code: str) -> str:
    return f"{TRACE}</think>\n<diagnosis>{code}</diagnosis>"


# n1: well-formed and right; n2: untagged text that predict salvaged to the right code; n3: two pairs, the first right
# (predict took the last); n4: the model's own <think> on the diagnosis line (predict's check accepted it).
KEPT_RAW = [
    record("n1", "I21.4", True, [pair("I21.4")]),
    record("n2", "J18.9", False, [f"{TRACE}</think>\nMost likely J18.9 (pneumonia)."]),
    record("n3", "N30.0", False, [pair("N39.0") + "\n" + pair("N30.0")]),
    record("n4", "K35.80", True, [f"<think>{TRACE}</think><diagnosis>K35.80</diagnosis>"]),
]


def accuracy(run: dict) -> float:
    return run["levels"]["code"]["accuracy"]


@pytest.mark.parametrize("suffix", [".jsonl", ".csv", ".parquet", ".duckdb"])
def test_kept_raw_responses_are_read_strictly(tmp_path, suffix):
    gold = tmp_path / "gold.csv"
    gold.write_text(GOLD)
    preds = write(tmp_path / f"run{suffix}", KEPT_RAW)
    report = evaluate_files([preds], gold, salvage=True)
    strict, salvaged = (r.as_dict() for r in report.runs)
    assert (strict["name"], salvaged["name"]) == ("run", "run (salvaged)")
    # strict: n1 and n3 (first pair) right; n2 (no pair) and n4 (no pair once <think> is put in front) NIL
    assert accuracy(strict) == 0.5 and strict["levels"]["code"]["nil_predictions"] == 2
    assert strict["scoring"] == {"mode": "strict", "response_column": "raw", "pred_column": "code",
                                 "basis": {"response": 4, "format_ok": 0, "no model": 0, "as given": 0}, "no_answer": 2,
                                 "salvageable": 2}
    # salvaged: predict's codes as recorded: n1, n2 and n4 right, n3 wrong (it took the last pair)
    assert accuracy(salvaged) == 0.75
    assert salvaged["scoring"]["mode"] == "salvaged" and salvaged["scoring"]["basis"]["as given"] == 4


def test_records_without_raw_are_judged_by_format_ok(tmp_path):
    gold = tmp_path / "gold.csv"
    gold.write_text(GOLD)
    # the bug this guards against: a format_ok false row with the right code was scored as correct
    rows = [record(r.id, r.code, r.format_ok) for r in KEPT_RAW]
    preds = write(tmp_path / "run.jsonl", rows)
    strict, = evaluate_files([preds], gold).runs
    assert accuracy(strict.as_dict()) == 0.5  # n1 and n4 (format_ok), not n2 or n3
    assert strict.scoring["basis"] == {"response": 0, "format_ok": 4, "no model": 0, "as given": 0}
    assert strict.scoring["salvageable"] == 2
    # --response-column none: the same judgement for a file that has responses
    with_raw = write(tmp_path / "raw.jsonl", KEPT_RAW)
    ignored, = evaluate_files([with_raw], gold, response_column="none").runs
    assert ignored.scoring["basis"]["format_ok"] == 4 and accuracy(ignored.as_dict()) == 0.5


def test_retriever_records_are_neither_well_formed_nor_malformed(tmp_path):
    """A retriever record has no model output: eval scores its code as given, counts it apart from the format check
    and does not ask for --keep-raw; an older file that said format_ok true for it is read the same way."""
    gold = tmp_path / "gold.csv"
    gold.write_text(GOLD)
    retriever = [Record(id=r.id, source="notes.jsonl", run_id="r", engine="retriever", model=None, uses_llm=False,
                        code=r.code, code_raw=r.code, format_ok=None, status="billable", confidence=None,
                        candidate_share={"code": 0.2, "category": 0.7, "chapter": 0.9}) for r in KEPT_RAW]
    preds = write(tmp_path / "retriever.parquet", retriever)
    old = tmp_path / "old.jsonl"  # what the previous version wrote: format_ok true, the candidate share as confidence
    old.write_text("".join(json.dumps({"id": r.id, "run_id": "r", "engine": "retriever", "model": None,
                                       "uses_llm": False, "code": r.code, "format_ok": True, "status": "billable",
                                       "confidence": {"code": 0.2, "category": 0.7, "chapter": 0.9}}) + "\n"
                           for r in KEPT_RAW))
    for path in (preds, old):
        run = evaluate_files([path], gold).runs[0]
        data = run.as_dict()
        assert accuracy(data) == 0.75  # n1, n2, n4 right as given; n3 wrong
        assert run.scoring["basis"] == {"response": 0, "format_ok": 0, "no model": 4, "as given": 0}, path
        assert data["format_ok_rate"] is None and data["format_ok_not_applicable"] == 4
        assert not any("--keep-raw" in w for w in run.warnings)
    # a run mixing both engines: the rate is over the model's rows only
    mixed = write(tmp_path / "mixed.jsonl", [*KEPT_RAW[:2], *retriever[2:]])
    run = evaluate_files([mixed], gold, response_column="none").runs[0].as_dict()
    assert run["format_ok_rate"] == 0.5 and run["format_ok_rows"] == 2 and run["format_ok_not_applicable"] == 2


def test_self_consistency_votes_over_strict_samples(tmp_path):
    gold = tmp_path / "gold.csv"
    gold.write_text("id,code\nn1,J18.9\n")
    # two samples read J18.9 strictly; three more mention I21.4 but have no pair (one has free text in the tags)
    samples = [pair("J18.9"), pair("J18.9"), f"{TRACE}\nI21.4", f"{TRACE}</think> <diagnosis>I21.4</diagnosis>",
               pair("I21.4 (NSTEMI)")]
    preds = write(tmp_path / "run.jsonl", [record("n1", "I21.4", False, samples)])
    strict, salvaged = evaluate_files([preds], gold, salvage=True).runs
    assert accuracy(strict.as_dict()) == 1.0 and accuracy(salvaged.as_dict()) == 0.0


def test_a_plain_response_column_and_the_cli(runner, tmp_path):
    gold = tmp_path / "gold.csv"
    gold.write_text(GOLD)
    preds = tmp_path / "responses.jsonl"
    lines = [{"id": "n1", "response": pair("I21.4")}, {"id": "n2", "response": f"{TRACE}\nAnswer: J18.9"},
             {"id": "n3", "response": pair("n39.0")}, {"id": "n4", "response": ""}]
    preds.write_text("".join(json.dumps(line) + "\n" for line in lines))
    result = runner.invoke(app, ["eval", str(preds), "--gold", str(gold), "--salvage", "--brief"])
    assert result.exit_code == 0, result.stderr
    table = {}
    for line in result.stdout.splitlines():
        cells = [c.strip() for c in line.strip("│ ").split("│")]
        if len(cells) == 10:
            table[cells[0]] = cells[1:]
    # strict: n1, n3 right (case is normalised), n2 and n4 NIL; salvaged: n2's answer line counts too
    # full code R/P/F1, macro over I214, J189, N390, K3580 and NIL: 2 of 5 classes right, then 3 of 5
    assert table["responses"][6:9] == ["40.0", "40.0", "40.0"]
    assert table["responses (salvaged)"][6:9] == ["60.0", "60.0", "60.0"]
    said = " ".join(result.stdout.split())
    assert "responses: strict answers (the authors' first think/diagnosis pair): 4 read from the response; 2 " \
           "without an answer (NIL), 1 of which the tolerant parse would answer (--salvage)" in said
    assert "responses (salvaged): icdreason's tolerant parse, of each response" in said
    data = json.loads(runner.invoke(app, ["eval", str(preds), "--gold", str(gold), "--out", "-"]).stdout)
    assert [r["name"] for r in data["runs"]] == ["responses"]  # no --salvage: no second row
    assert data["runs"][0]["scoring"]["pred_column"] is None
    assert "strict" in data["definitions"]


def test_a_table_without_responses_or_format_ok_is_scored_as_given_and_says_so(runner, tmp_path):
    gold = tmp_path / "gold.csv"
    gold.write_text(GOLD)
    preds = tmp_path / "codes.csv"
    preds.write_text("id,code\nn1,I21.4\nn2,J18.9\nn3,N39.0\nn4,K35.80\n")
    result = runner.invoke(app, ["eval", str(preds), "--gold", str(gold), "--out", "-"])
    assert result.exit_code == 0, result.stderr
    assert accuracy(json.loads(result.stdout)["runs"][0]) == 1.0
    assert "4 prediction row(s) in codes.csv have neither a response nor format_ok" in " ".join(result.stderr.split())
    named = runner.invoke(app, ["eval", str(preds), "--gold", str(gold), "--response-column", "answer"])
    assert named.exit_code == 2 and "no column 'answer'" in named.stderr and "--response-column" in named.stderr


def test_files_shaped_like_the_authors_evaluation_data(runner, tmp_path):
    # Their test parquet: hadm_id, subject_id, icd_codes (a list; the first is the target), prompt. Their label file:
    # a CSV with an icd_codes column that lists NIL among the codes. Responses keyed by hadm_id.
    import pyarrow as pa
    import pyarrow.parquet as pq

    gold = tmp_path / "test_prospective_single_icd_coding.parquet"
    pq.write_table(pa.table({
        "hadm_id": [21000001, 21000002, 21000003],
        "subject_id": [11000001, 11000001, 11000002],
        "icd_codes": [["I214", "I10"], ["J189"], ["N390", "E119"]],
        "prompt": [[{"role": "user", "content": "note"}]] * 3,
    }), gold)
    labels = tmp_path / "icd_codes.csv"
    labels.write_text("icd_codes\nI214\nJ189\nN390\nE119\nNIL\n")
    preds = tmp_path / "generations.jsonl"
    preds.write_text("".join(json.dumps({"hadm_id": h, "response": r}) + "\n" for h, r in [
        (21000001, pair("I214")), (21000002, pair("J18.9")), (21000003, f"{TRACE}\nN39.0")]))
    result = runner.invoke(app, ["eval", str(preds), "--gold", str(gold), "--labels", str(labels), "--out", "-"])
    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)
    assert (data["gold"]["id_column"], data["gold"]["code_column"]) == ("hadm_id", "icd_codes")
    assert data["label_space"]["codes"] == 4  # NIL is not a code of the vocabulary, it is always its own class
    assert accuracy(data["runs"][0]) == pytest.approx(2 / 3)  # the third answer has no diagnosis tags


def test_an_empty_diagnosis_block_is_no_answer(tmp_path):
    gold = tmp_path / "gold.csv"
    gold.write_text("id,code\nn1,I21.4\n")
    preds = write(tmp_path / "run.jsonl", [record("n1", None, False, [pair("")])])
    run, = evaluate_files([preds], gold).runs
    assert run.scoring["no_answer"] == 1 and run.levels["chapter"].nil_predictions == 1  # not chapter I, as theirs
