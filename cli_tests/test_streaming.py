"""Memory flat in the number of notes: notes are read as they are predicted, CSV/Parquet outputs are written in parts,
and a streamed run writes exactly the records of a run over a list of notes — also after kill -9 and --resume."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tracemalloc
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import predict_support

from icdreason.notes import open_notes, read_notes
from icdreason.predict import PredictSettings, predict, sampling_for
from icdreason.prompts import load_template
from icdreason.records import Record, open_writer, read_predictions

TEXTS = [p.read_text() for p in sorted(predict_support.EXAMPLES.glob("*.txt"))]


def _notes_parquet(path: Path, count: int, *, size: int = 0, row_group: int = 100, ids: bool = True) -> list[str]:
    """A Parquet table of ``count`` notes (each at least ``size`` characters), in row groups of ``row_group``."""
    names = [f"note{i:05d}" for i in range(count)]
    texts = [(TEXTS[i % len(TEXTS)] + f"\nVisit {i}.\n") for i in range(count)]
    texts = [t + "Exam unchanged. " * max(0, (size - len(t)) // 16) for t in texts]
    table = pa.table({"id": names, "text": texts} if ids else {"text": texts})
    pq.write_table(table, path, row_group_size=row_group)
    return names


def _peak_bytes(consume) -> int:
    tracemalloc.start()
    try:
        consume()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_notes_are_read_a_batch_at_a_time_not_whole(tmp_path):
    table = tmp_path / "notes.parquet"
    names = _notes_parquet(table, 2000, size=10_000)  # 20 MB of text in 20 row groups
    text_bytes = 2000 * 10_000
    source = open_notes([str(table)])
    assert len(source) == 2000 and list(source.ids())[:2] == names[:2]
    seen = []

    def stream() -> None:
        for note in source:  # one note kept at a time, as the pipeline does batch by batch
            seen.append(note.id)

    streamed = _peak_bytes(stream)
    assert seen == names
    whole = _peak_bytes(lambda: read_notes([str(table)]))
    assert streamed < text_bytes / 4 < text_bytes < whole  # e.g. ~3 MB against ~25 MB held by the list


def test_a_reader_yields_before_the_end_of_the_file(tmp_path):
    """The first note comes back while later row groups have not been read: damaging them afterwards only stops
    the reader when it gets there."""
    table = tmp_path / "notes.parquet"
    _notes_parquet(table, 1000, row_group=100)
    notes = iter(open_notes([str(table)]))
    first = next(notes)
    assert first.id == "note00000"
    jsonl = tmp_path / "notes.jsonl"
    jsonl.write_text("".join(json.dumps({"id": f"j{i}", "text": "Chief Complaint: cough"}) + "\n" for i in range(5)))
    rows = iter(open_notes([str(jsonl)]))
    assert next(rows).id == "j0"
    with open(jsonl, "a") as fh:  # a line added after reading began is read when the reader gets there
        fh.write(json.dumps({"id": "late", "text": "Chief Complaint: fever"}) + "\n")
    assert [n.id for n in rows] == ["j1", "j2", "j3", "j4", "late"]


def test_counting_a_parquet_table_reads_its_footer_or_id_column_only(tmp_path):
    no_ids = tmp_path / "plain.parquet"
    _notes_parquet(no_ids, 250, ids=False)
    source = open_notes([str(no_ids)])
    assert len(source) == 250 and list(source.ids())[-1] == "plain:250"
    assert [n.id for n in source][:2] == ["plain:1", "plain:2"]
    dupes = tmp_path / "dupes.parquet"
    pq.write_table(pa.table({"id": ["a", "b", "a"], "text": ["x", "y", "z"]}), dupes)
    with pytest.raises(Exception, match=r"duplicate note ids: 'a' in .*dupes.parquet:1, .*dupes.parquet:3"):
        open_notes([str(dupes)])


@pytest.fixture(scope="module")
def kb(retriever_kb):
    from icdreason.kb import KnowledgeBase

    with KnowledgeBase.open(retriever_kb) as base:
        yield base


def _predict(kb, notes, out: Path, *, part_rows: int | None = None, batch_size: int = 5, resume: bool = False):
    from icdreason.engines.retriever import RetrieverEngine

    engine = RetrieverEngine(None, RetrieverEngine.Options(), kb)
    with open_writer(out, part_rows=part_rows, resume=resume) as writer:
        return predict(notes, engine=engine, kb=kb, template=load_template(), params=sampling_for(1),
                       writer=writer, run_id="r1", settings=PredictSettings(batch_size=batch_size),
                       parameters={"n": 1, "temperature": 0.0, "seed": None, "engine_flag": [1, "a"]})


def _timeless(rows: list[dict]) -> list[Record]:
    """Records without their engine seconds (a measured time, the one field two runs never share)."""
    return [Record(**{**r, "seconds": 0.0}) for r in rows]


def test_a_streamed_run_writes_the_records_of_a_run_over_a_list(kb, tmp_path):
    table = tmp_path / "notes.parquet"
    ids = _notes_parquet(table, 40, row_group=7)
    listed = _predict(kb, read_notes([str(table)]), tmp_path / "list.jsonl", batch_size=40)
    assert listed.predicted == 40
    expected = _timeless(read_predictions(tmp_path / "list.jsonl"))
    for name in ("s.parquet", "s.csv", "s.jsonl"):
        summary = _predict(kb, open_notes([str(table)]), tmp_path / name, part_rows=12)  # 3 parts and a journal
        assert summary.total == summary.predicted == 40
        rows = read_predictions(tmp_path / name)
        assert [r["id"] for r in rows] == ids
        assert _timeless(rows) == expected, name
        # the retriever uses no model: its sampling parameters are null whatever the run passed (records tell the truth)
        assert rows[0]["parameters"] == {"n": None, "temperature": None, "seed": None, "engine_flag": [1, "a"]}
    parquet = pq.ParquetFile(tmp_path / "s.parquet")
    # a part is made once 12 records wait (batches of 5): parts of 15 and 15, then the journal's 10
    assert [parquet.metadata.row_group(i).num_rows for i in range(parquet.num_row_groups)] == [15, 15, 10]
    assert parquet.schema_arrow.field("parameters").type.field("n").type == pa.int64()
    assert not list(tmp_path.glob(".s.*"))  # parts and journals are gone once the output is complete


def test_a_killed_writer_between_a_part_and_its_journal_loses_and_duplicates_nothing(tmp_path):
    out = tmp_path / "p.parquet"
    rec = [Record(id=f"n{i}", source="t", run_id="r1", engine="retriever", model=None, uses_llm=False, code="I10",
                  status="billable", error="boom" if i == 4 else None) for i in range(9)]
    w = open_writer(out, part_rows=100)
    w.write_batch(rec[:3])
    w.parts.add(read_predictions(w.journal_path))  # the part is in place; the kill comes before the journal is emptied
    w.write_batch(rec[3:5])
    w.journal._fh.close()
    w._unlock()  # what the kernel does for a killed process
    w = open_writer(out, resume=True, part_rows=100)
    assert w.done_ids == {f"n{i}" for i in range(5)} and w.error_ids == {"n4"} and w.existing_run_id == "r1"
    w.drop({"n4"})  # --resume predicts error records again
    w.write_batch(rec[5:])
    w.close()
    assert [r["id"] for r in read_predictions(out)] == ["n0", "n1", "n2", "n3", "n5", "n6", "n7", "n8"]


def test_a_parquet_file_written_before_parameters_was_a_struct_is_read_and_continued(tmp_path):
    old = tmp_path / "old.parquet"
    row = Record(id="a", source="a.txt", run_id="r0", engine="transformers", model="m", uses_llm=True,
                 parameters={"n": 1, "kb_release": "2026"}).to_dict()
    from icdreason.records.arrow import schema

    new_schema = schema(tuple(row))
    old_schema = new_schema.set(new_schema.get_field_index("parameters"), pa.field("parameters", pa.string()))
    pq.write_table(pa.Table.from_pylist([{**row, "parameters": json.dumps(row["parameters"])}], schema=old_schema),
                   old)
    assert read_predictions(old)[0]["parameters"] == {"n": 1, "kb_release": "2026"}
    w = open_writer(old, resume=True)
    assert w.done_ids == {"a"} and w.existing_run_id == "r0"
    w.write_batch([Record(id="b", source="b.txt", run_id="r0", engine="transformers", model="m", uses_llm=True,
                          parameters={"n": 1})])
    w.close()
    rows = read_predictions(old)
    assert [(r["id"], r["parameters"]) for r in rows] == [("a", {"n": 1, "kb_release": "2026"}), ("b", {"n": 1})]
    assert pq.read_schema(old).field("parameters").type.field("kb_release").type == pa.string()


def test_parquet_output_after_kill_9_and_resume_has_every_note_once(retriever_kb, tmp_path):
    table = tmp_path / "notes.parquet"
    ids = _notes_parquet(table, 800)
    out = tmp_path / "pred.parquet"
    parts = tmp_path / ".pred.parquet.parts"
    journal = tmp_path / ".pred.parquet.journal.jsonl"
    env = {**os.environ, "ICDREASON_KB": str(retriever_kb)}
    args = ["predict", str(table), "--out", str(out), "--batch-size", "20", "-q"]
    child = ("import sys, icdreason.records.writers as w; w.PART_ROWS = 60\n"  # parts of 60 rows: several before the kill
             "from icdreason.cli import main; sys.argv = ['icdreason', *sys.argv[1:]]; main()")

    def two_parts_and_a_journal() -> bool:
        written = journal.exists() and journal.read_bytes().count(b"\n")
        return len(list(parts.glob("*.parquet"))) >= 2 and bool(written)

    predict_support.kill_when([sys.executable, "-c", child, *args], two_parts_and_a_journal, env, seconds=180)
    kept = {r["id"] for p in parts.glob("*.parquet") for r in pq.read_table(p, columns=["id"]).to_pylist()}
    assert len(kept) >= 120
    done = subprocess.run([sys.executable, "-m", "icdreason", *args, "--resume"], env=env, capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    rows = read_predictions(out)
    assert [r["id"] for r in rows] == ids  # 0 lost, 0 duplicated, in input order
    assert len({r["run_id"] for r in rows}) == 1
    assert not parts.exists() and not journal.exists()


def test_the_ray_runner_streams_notes_in_windows_into_the_same_records(kb, tmp_path):
    """predict --ray's runner reads the same stream and writes through the same writers; with a local engine (whose
    ``stream`` generates in order) and windows of 7 notes its records are a local run's."""
    from icdreason.cluster.predict import predict_on_ray
    from icdreason.engines.retriever import RetrieverEngine

    table = tmp_path / "notes.parquet"
    ids = _notes_parquet(table, 30, row_group=4)
    _predict(kb, read_notes([str(table)]), tmp_path / "local.parquet")
    engine = RetrieverEngine(None, RetrieverEngine.Options(), kb)
    with open_writer(tmp_path / "ray.parquet", part_rows=8) as writer:
        summary = predict_on_ray(open_notes([str(table)]), engine=engine, kb=kb, template=load_template(),
                                 params=sampling_for(1), writer=writer, run_id="r1",
                                 settings=PredictSettings(batch_size=5), window=7,
                                 parameters={"n": 1, "temperature": 0.0, "seed": None, "engine_flag": [1, "a"]})
    assert summary.total == summary.predicted == 30
    rows = read_predictions(tmp_path / "ray.parquet")
    assert [r["id"] for r in rows] == ids
    assert _timeless(rows) == _timeless(read_predictions(tmp_path / "local.parquet"))
