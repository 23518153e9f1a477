"""`icdreason data prepare` on MIMIC-shaped tables the test writes (gzip CSV, like PhysioNet distributes them)."""

from __future__ import annotations

import csv
import gzip
import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from icdreason.cli import app
from icdreason.data import admission_note, prepare_mimic, stratified_split
from icdreason.data.prepare import PrepareOptions

# Three header spellings per section, rotated over the notes.
SPELLINGS = [
    {"cc": "Chief Complaint:", "hpi": "History of Present Illness:", "pmh": "Past Medical History:",
     "exam": "Physical Exam:\nADMISSION PHYSICAL EXAM:", "dexam": "DISCHARGE PHYSICAL EXAM:",
     "meds": "Medications on Admission:", "dx": "Discharge Diagnosis:", "course": "Brief Hospital Course:"},
    {"cc": "CHIEF COMPLAINT:", "hpi": "HPI:", "pmh": "PMH:", "exam": "PHYSICAL EXAM ON ADMISSION:",
     "dexam": "PHYSICAL EXAM ON DISCHARGE:", "meds": "MEDICATIONS ON ADMISSION:", "dx": "DISCHARGE DIAGNOSES:",
     "course": "HOSPITAL COURSE:"},
    {"cc": "Chief complaint:", "hpi": "HISTORY OF PRESENT ILLNESS:", "pmh": "PAST MEDICAL HISTORY:",
     "exam": "Admission Physical Exam:", "dexam": "Discharge Exam:", "meds": "Admission Medications:",
     "dx": "Discharge Diagnosis:", "course": "Brief Hospital Course:"},
]
CODES = ["I214", "J189", "N179", "A419", "K8000", "S72001A"]  # 10 admissions each
RARE = ["E1165", "M5116"]  # 2 and 1 admissions: too rare to stratify


def note_text(i: int, code: str, with_pmh: bool = True, with_allergies: bool = True) -> str:
    h = SPELLINGS[i % 3]
    parts = [
        " \nName:  ___                     Unit No:   ___\n \nAdmission Date:  ___   Discharge Date:   ___\n",
        "Service: MEDICINE\n",
        "Allergies: \nPenicillins\n" if with_allergies else "",
        "Attending: ___.\n",
        f"{h['cc']}\nsymptom number {i}\n",
        "Major Surgical or Invasive Procedure:\nLEAKED_PROCEDURE\n",
        f"{h['hpi']}\nPatient {i} presents with worsening symptoms.\nGeneral: looks unwell\n",
        f"{h['pmh']}\nhypertension\n" if with_pmh else "",
        "Social History:\n___\n",
        "Family History:\nmother with diabetes\n",
        f"{h['exam']}\nVS: 98.1 120/80\nHEENT: normal\n{h['dexam']}\nLEAKED_DISCHARGE_EXAM\n",
        "Pertinent Results:\nADMISSION LABS: LEAKED_LABS\n",
        f"{h['course']}\nLEAKED_COURSE treated for {code}\n",
        f"{h['meds']}\n1. Lisinopril 10 mg\n",
        "Discharge Medications:\nLEAKED_DISCHARGE_MEDS\n",
        f"{h['dx']}\nLEAKED_DIAGNOSIS {code}\n",
        "Discharge Condition:\nLEAKED_CONDITION\nDischarge Instructions:\nLEAKED_INSTRUCTIONS\n",
        "Followup Instructions:\n___\n",
    ]
    return "".join(parts)


def write_gz_csv(path: Path, header: list[str], rows: list[list]) -> Path:
    with gzip.open(path, "wt", newline="") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(rows)
    return path


@pytest.fixture
def mimic(tmp_path, kb_file):  # kb_file: the gold check reads the test session's knowledge base
    notes, dx = [], []
    hadm = 20000000
    plan = [(c, 10) for c in CODES] + [(RARE[0], 2), (RARE[1], 1)]
    i = 0
    for code, count in plan:
        for _ in range(count):
            hadm += 1
            subject = 10000000 + i
            notes.append([f"{subject}-DS-{i}", subject, hadm, "DS", 1, "2180-01-01 00:00:00", "2180-01-02 00:00:00",
                          note_text(i, code, with_pmh=i % 4 != 0, with_allergies=i % 5 != 0)])
            # multi-code admission: the target is the seq_num = 1 code
            dx.extend([[subject, hadm, 2, "I10", 10], [subject, hadm, 1, code, 10], [subject, hadm, 3, "Z7901", 10]])
            i += 1
    # an addendum (note_seq 2) for the first admission: the original (note_seq 1) is used
    notes.append(["10000000-DS-addendum", 10000000, 20000001, "DS", 2, "2180-01-03", "2180-01-03", "Addendum: none"])
    # ICD-9 admissions (excluded) and an admission without any diagnosis
    for k in range(3):
        hadm += 1
        notes.append([f"icd9-{k}", 1, hadm, "DS", 1, "2150-01-01", "2150-01-01", note_text(k, "4280")])
        dx.append([1, hadm, 1, "4280", 9])
        dx.append([1, hadm, 2, "I10", 10])  # an ICD-10 code further down does not make it an ICD-10 admission
    hadm += 1
    notes.append(["nodx-1", 2, hadm, "DS", 1, "2150-01-01", "2150-01-01", note_text(0, "X")])
    # a note that keeps nothing at admission
    hadm += 1
    notes.append(["empty-1", 3, hadm, "DS", 1, "2150-01-01", "2150-01-01",
                  "Discharge Diagnosis:\nsepsis\nBrief Hospital Course:\nfine"])
    dx.append([3, hadm, 1, "A419", 10])
    d = tmp_path / "mimic"
    d.mkdir()
    n = write_gz_csv(d / "discharge.csv.gz", ["note_id", "subject_id", "hadm_id", "note_type", "note_seq", "charttime",
                                              "storetime", "text"], notes)
    g = write_gz_csv(d / "diagnoses_icd.csv.gz", ["subject_id", "hadm_id", "seq_num", "icd_code", "icd_version"], dx)
    return n, g


def test_admission_note_keeps_admission_sections_only():
    adm = admission_note(note_text(1, "I214"))  # the HPI:/PMH:/PHYSICAL EXAM ON ADMISSION: spellings
    assert "LEAKED" not in adm.text
    assert "Patient 1 presents" in adm.text and "General: looks unwell" in adm.text  # sub-lines do not split
    assert "Past Medical History:\nhypertension" in adm.text
    assert "VS: 98.1 120/80\nHEENT: normal" in adm.text and "1. Lisinopril 10 mg" in adm.text
    assert adm.text.startswith("Chief Complaint:\nsymptom number 1")
    assert adm.missing == ["past_surgical_history", "social_history"]  # "___" alone counts as missing
    assert {"discharge_diagnosis", "hospital_course", "discharge_exam", "results", "procedures"} <= set(adm.dropped)


def test_prepare_end_to_end(mimic, tmp_path):
    notes, dx = mimic
    out = tmp_path / "out"
    result = prepare_mimic(PrepareOptions(notes=notes, diagnoses=dx, out=out, seed=7))
    s = result.stats
    assert s["icd9_excluded"] == 3 and s["without_first_diagnosis"] == 1
    assert s["icd10_admissions"] == 64 and s["excluded_short_admission_note"] == 1 and s["kept"] == 63
    assert s["discharge_notes"] == 69  # the addendum is counted, not used
    assert s["missing_sections"]["past_medical_history"] == 17  # i % 4 == 0 for i in 0..62, plus the empty note
    assert s["missing_sections"]["allergies"] == 14  # i % 5 == 0 for i in 0..62, plus the empty note
    assert s["missing_sections"]["social_history"] == 64
    # 6 codes x 10 -> 7 / 1 / 2 each; the 2 rare codes (3 samples) go to train
    assert s["samples"] == {"train": 45, "validation": 6, "test": 12, "all": 63}
    assert s["rare_codes_to_train"] == 2 and s["rare_samples_to_train"] == 3
    assert s["classes"]["code"] == {"all": 8, "train": 8, "validation": 6, "test": 6}
    assert s["classes"]["chapter"]["all"] == 8  # chapters 1, 4, 9, 10, 11, 13, 14, 19
    rl = pq.read_table(out / "rl" / "train.parquet").to_pylist()
    row = next(r for r in rl if r["extra_info"]["code_nodot"] == "S72001A")
    assert row["data_source"] == "mimic-iv-icd10" and row["ability"] == "medicine"
    assert row["reward_model"] == {"style": "rule", "ground_truth": "S72.001A"}
    assert [m["role"] for m in row["prompt"]] == ["system", "user"]
    assert row["extra_info"]["note"] in row["prompt"][1]["content"]
    assert "LEAKED" not in row["prompt"][1]["content"]
    assert row["extra_info"]["split"] == "train" and row["extra_info"]["chapter"] == 19
    first = [r for r in rl + pq.read_table(out / "rl" / "test.parquet").to_pylist()
             + pq.read_table(out / "rl" / "validation.parquet").to_pylist() if r["extra_info"]["hadm_id"] == 20000001]
    assert len(first) == 1 and first[0]["extra_info"]["id"] == "10000000-DS-0"  # note_seq 1, not the addendum
    sft = pq.read_table(out / "sft" / "test.parquet").to_pylist()
    assert sft[0]["messages"][-1] == {"role": "assistant",
                                      "content": f"<think>\n</think>\n<diagnosis>{sft[0]['code']}</diagnosis>"}
    # the training engineer's checks accept both layouts
    from icdreason.training.data import check_rl_parquet, check_sft_parquet

    assert check_rl_parquet(out / "rl" / "train.parquet").rows == 45
    assert check_sft_parquet(out / "sft" / "validation.parquet").rows == 6
    codes = (out / "labels" / "code.tsv").read_text().splitlines()
    assert codes[0] == "label\tn\tn_train\tn_validation\tn_test"
    assert "I21.4\t10\t7\t1\t2" in codes and "M51.16\t1\t1\t0\t0" in codes
    chapters = (out / "labels" / "chapter.tsv").read_text()
    assert "19\tXIX\tS00-T88\tInjury, poisoning" in chapters
    assert json.loads((out / "stats.json").read_text())["samples"]["all"] == 63


def test_rerun_reuses_admission_notes_and_the_split_is_seeded(mimic, tmp_path):
    notes, dx = mimic
    out = tmp_path / "out"
    messages = []
    prepare_mimic(PrepareOptions(notes=notes, diagnoses=dx, out=out, seed=1), progress=messages.append)
    ids_a = sorted(r["id"] for r in pq.read_table(out / "sft" / "test.parquet").to_pylist())
    prepare_mimic(PrepareOptions(notes=notes, diagnoses=dx, out=out, seed=1), progress=messages.append)
    assert any(m.startswith("reusing") for m in messages)
    assert sorted(r["id"] for r in pq.read_table(out / "sft" / "test.parquet").to_pylist()) == ids_a
    prepare_mimic(PrepareOptions(notes=notes, diagnoses=dx, out=out, seed=2))
    assert sorted(r["id"] for r in pq.read_table(out / "sft" / "test.parquet").to_pylist()) != ids_a


def test_stratified_split_proportions():
    keys = list(range(1000))
    labels = [f"C{k % 10}" for k in keys]  # 10 codes x 100
    result = stratified_split(keys, labels, seed=3)
    assert result.sizes == {"train": 700, "validation": 100, "test": 200}
    per_code = {s: sum(1 for k in keys if labels[k] == "C0" and result.assignment[k] == s) for s in result.sizes}
    assert per_code == {"train": 70, "validation": 10, "test": 20}


def test_cli_prepare_prints_the_paper_statistics(mimic, tmp_path, runner):
    notes, dx = mimic
    result = runner.invoke(app, ["data", "prepare", "--notes", str(notes), "--diagnoses", str(dx),
                                 "--out", str(tmp_path / "o")])
    assert result.exit_code == 0, result.output
    rows = {}
    for line in result.stdout.replace("┃", "│").splitlines():
        if line.count("│") >= 3:
            parts = [c.strip() for c in line.split("│")[1:-1]]
            rows[parts[0]] = parts[1:]
    assert rows["first diagnosis ICD-9 (excluded)"] == ["3"] and rows["samples kept"] == ["63"]
    assert rows["past_medical_history"] == ["17", "26.6%"]  # of 64 sectioned notes
    assert rows["samples"] == ["45", "6", "12", "63"] and rows["code labels"] == ["8", "6", "6", "8"]


def test_cli_errors_name_the_fix(tmp_path, runner):
    bad = write_gz_csv(tmp_path / "notes.csv.gz", ["id", "body"], [["1", "x"]])
    dx = write_gz_csv(tmp_path / "dx.csv.gz", ["subject_id", "hadm_id", "seq_num", "icd_code", "icd_version"],
                      [[1, 1, 1, "I10", 10]])
    result = runner.invoke(app, ["data", "prepare", "--notes", str(bad), "--diagnoses", str(dx), "--out",
                                 str(tmp_path / "o")])
    assert result.exit_code == 2
    assert "lacks column(s) note_id, subject_id, hadm_id, text" in result.stderr
    missing = runner.invoke(app, ["data", "prepare", "--notes", str(tmp_path / "nope.csv.gz"), "--diagnoses",
                                  str(dx), "--out", str(tmp_path / "o")])
    assert missing.exit_code == 2 and "--notes file not found" in missing.stderr


def test_prepare_reads_an_authors_style_csv_prompt_and_names_it(mimic, tmp_path):
    import hashlib

    notes, dx = mimic
    prompt = tmp_path / "single.csv"  # our own text, in the shape of the authors' src/prompts/*.csv
    prompt.write_text('role,content\nsystem,Code the admission.\nuser,"Note:\n{note}"\nassistant,<think>\n')
    out = tmp_path / "out"
    result = prepare_mimic(PrepareOptions(notes=notes, diagnoses=dx, out=out, seed=7, prompt_template=str(prompt)))
    row = pq.read_table(out / "rl" / "train.parquet").to_pylist()[0]
    assert row["prompt"] == [{"role": "system", "content": "Code the admission."},
                             {"role": "user", "content": "Note:\n" + row["extra_info"]["note"]}]
    assert result.stats["prompt"] == {"name": str(prompt), "sha256": hashlib.sha256(prompt.read_bytes()).hexdigest(),
                                      "source": str(prompt.resolve())}
    assert json.loads((out / "stats.json").read_text())["prompt"] == result.stats["prompt"]
