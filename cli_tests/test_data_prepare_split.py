"""`icdreason data prepare`: the split by patient (no patient in two splits) and the gold-code check against the
knowledge base's release, on a generated MIMIC-shaped cohort where patients have several admissions."""

from __future__ import annotations

import random
from collections import Counter, defaultdict

import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_data_prepare import note_text, write_gz_csv

from icdreason.cli import app
from icdreason.data import SPLITS, grouped_split, prepare_mimic, stratified_split
from icdreason.data.prepare import PrepareOptions

# Target codes with MIMIC-like imbalance. E78.0 and N18.3 were billable when MIMIC-IV was coded and are headers in
# later releases (expanded to E78.00/E78.01 and N18.30-N18.32); Z86.81 is not a code of the installed release.
COMMON = {"I214": 60, "J189": 45, "N179": 30, "A419": 30, "K8000": 15, "S72001A": 15}
OUTDATED = {"E780": 3, "N183": 2, "Z8681": 1}


@pytest.fixture
def cohort(tmp_path, kb_file):
    """108 patients with 1-4 admissions each (201 in all), one discharge note and a seq_num = 1 code each."""
    rng = random.Random(11)
    pool = [c for c, n in COMMON.items() for _ in range(n)]
    rng.shuffle(pool)
    codes = pool + [c for c, n in OUTDATED.items() for _ in range(n)]
    notes, dx, hadm, i = [], [], 30000000, 0
    subject = 40000000
    while i < len(codes):
        subject += 1
        for _ in range(min(rng.choice([1, 1, 1, 2, 2, 3, 4]), len(codes) - i)):
            hadm += 1
            notes.append([f"{subject}-DS-{i}", subject, hadm, "DS", 1, "2180-01-01", "2180-01-02",
                          note_text(i, codes[i])])
            dx.extend([[subject, hadm, 1, codes[i], 10], [subject, hadm, 2, "I10", 10]])
            i += 1
    d = tmp_path / "mimic"
    d.mkdir()
    n = write_gz_csv(d / "discharge.csv.gz", ["note_id", "subject_id", "hadm_id", "note_type", "note_seq", "charttime",
                                              "storetime", "text"], notes)
    g = write_gz_csv(d / "diagnoses_icd.csv.gz", ["subject_id", "hadm_id", "seq_num", "icd_code", "icd_version"], dx)
    return n, g, len(codes), subject - 40000000


def rows_by_split(out):
    return {s: pq.read_table(out / "rl" / f"{s}.parquet").to_pylist() for s in SPLITS}


def test_split_by_patient_keeps_every_patient_in_one_split(cohort, tmp_path):
    notes, dx, admissions, patients = cohort
    out = tmp_path / "out"
    stats = prepare_mimic(PrepareOptions(notes=notes, diagnoses=dx, out=out, seed=3)).stats
    rows = rows_by_split(out)
    subjects = {s: {r["extra_info"]["subject_id"] for r in rows[s]} for s in SPLITS}
    assert not (subjects["train"] & subjects["validation"] or subjects["train"] & subjects["test"]
                or subjects["validation"] & subjects["test"])
    report = stats["split"]
    assert stats["split_by"] == "patient" and report["patients_in_several_splits"] == 0
    assert report["patients"] == {s: len(subjects[s]) for s in SPLITS} | {"all": patients}
    assert report["admissions"] == {s: len(rows[s]) for s in SPLITS}
    assert sum(report["admissions"].values()) == admissions == stats["samples"]["all"]
    # close to 70 / 10 / 20 of the admissions although patients move whole
    shares = {s: len(rows[s]) / admissions for s in SPLITS}
    assert shares["train"] == pytest.approx(0.7, abs=0.06) and shares["test"] == pytest.approx(0.2, abs=0.05)
    assert shares["validation"] == pytest.approx(0.1, abs=0.05)
    # the six common codes are in every split; the outdated ones are too rare to stratify
    in_split = defaultdict(set)
    for s in SPLITS:
        for r in rows[s]:
            in_split[r["extra_info"]["code_nodot"]].add(s)
    assert report["codes_in_every_split"] == sum(1 for v in in_split.values() if len(v) == 3) >= len(COMMON)


def test_gold_codes_outside_the_release_are_counted_and_flagged(cohort, tmp_path, runner):
    notes, dx, admissions, _ = cohort
    out = tmp_path / "out"
    result = runner.invoke(app, ["data", "prepare", "--notes", str(notes), "--diagnoses", str(dx), "--out", str(out)])
    assert result.exit_code == 0, result.output
    lines = {}
    for line in result.stdout.splitlines():
        if line.count("│") >= 3:
            cells = [c.strip() for c in line.split("│")[1:-1]]
            lines[cells[0]] = cells[1:]
    assert "Cohort (gold codes checked against ICD-10-CM release 2026)" in result.stdout
    assert lines["gold code a header in the release (kept, flagged)"] == ["5"]
    assert lines["gold code unknown to the release (kept, flagged)"] == ["1"]
    assert lines["samples kept"] == [str(admissions)]
    assert lines["patients"][3] == str(cohort[3])
    assert "split by patient: 0 patients in more than one split" in result.stdout
    every = [r for rows in rows_by_split(out).values() for r in rows]
    status = Counter((r["extra_info"]["code"], r["extra_info"]["gold_status"]) for r in every)
    assert status[("E78.0", "header")] == 3 and status[("Z86.81", "unknown")] == 1
    assert status[("I21.4", "billable")] == 60
    sft = pq.read_table(out / "sft" / "train.parquet").column("gold_status").to_pylist()
    assert set(sft) <= {"billable", "header", "unknown"}
    listed = (out / "labels" / "gold_not_billable.tsv").read_text().splitlines()
    assert listed == ["code\tstatus\tn", "E78.0\theader\t3", "N18.3\theader\t2", "Z86.81\tunknown\t1"]


def test_drop_invalid_gold(cohort, tmp_path, runner):
    notes, dx, admissions, _ = cohort
    out = tmp_path / "out"
    result = runner.invoke(app, ["data", "prepare", "--notes", str(notes), "--diagnoses", str(dx), "--out", str(out),
                                 "--drop-invalid-gold"])
    assert result.exit_code == 0, result.output
    assert "gold code a header in the release (dropped)" in result.stdout
    every = [r for rows in rows_by_split(out).values() for r in rows]
    assert len(every) == admissions - 6
    assert {r["extra_info"]["gold_status"] for r in every} == {"billable"}
    stats = prepare_mimic(PrepareOptions(notes=notes, diagnoses=dx, out=out, drop_invalid_gold=True)).stats
    assert stats["gold_dropped"] == 6 and stats["gold_status"]["header"] == 5
    codes = (out / "labels" / "code.tsv").read_text()
    assert "E78.0" not in codes and "I21.4" in codes


def test_split_by_admission_keeps_the_old_behaviour(cohort, tmp_path, runner):
    notes, dx, _, _ = cohort
    out = tmp_path / "out"
    stats = prepare_mimic(PrepareOptions(notes=notes, diagnoses=dx, out=out, seed=3, split_by="admission")).stats
    rows = rows_by_split(out)
    ids = [r["extra_info"]["id"] for s in SPLITS for r in rows[s]]
    codes = [r["extra_info"]["code_nodot"] for s in SPLITS for r in rows[s]]
    expected = stratified_split(ids, codes, seed=3).assignment
    assert all(expected[r["extra_info"]["id"]] == s for s in SPLITS for r in rows[s])
    splits_of = defaultdict(set)
    for s in SPLITS:
        for r in rows[s]:
            splits_of[r["extra_info"]["subject_id"]].add(s)
    crossing = sum(1 for v in splits_of.values() if len(v) > 1)
    assert stats["split"]["patients_in_several_splits"] == crossing > 0  # what the patient split prevents
    bad = runner.invoke(app, ["data", "prepare", "--notes", str(notes), "--diagnoses", str(dx), "--out", str(out),
                              "--split-by", "hospital"])
    assert bad.exit_code == 2 and "unknown --split-by 'hospital': choose patient or admission" in bad.stderr


@settings(max_examples=60, deadline=None)
@given(st.lists(st.sampled_from(["A01", "B02", "C03", "D04", "E05"]), min_size=1, max_size=80),
       st.integers(0, 10_000))
def test_one_admission_per_patient_is_the_admission_split(labels, seed):
    keys = [f"n{i}" for i in range(len(labels))]
    by_patient = grouped_split(keys, labels, [f"p{i}" for i in range(len(labels))], seed=seed)
    assert by_patient.assignment == stratified_split(keys, labels, seed=seed).assignment


def test_a_patient_follows_its_rarest_code():
    # p1 has a common and a rare code; the rare code's stratum holds only p1 (2 admissions < min_per_code 3), so p1
    # goes to train with both admissions, and the common code's other patients are split around it.
    keys = ["a1", "a2"] + [f"c{i}" for i in range(20)]
    labels = ["I214", "Q8789"] + ["I214"] * 20
    groups = ["p1", "p1"] + [f"q{i}" for i in range(20)]
    result = grouped_split(keys, labels, groups, seed=0)
    assert result.assignment["a1"] == result.assignment["a2"] == "train"
    assert (result.rare_codes, result.rare_samples) == (1, 2)
    assert Counter(result.assignment[f"c{i}"] for i in range(20)) == {"train": 14, "validation": 2, "test": 4}
