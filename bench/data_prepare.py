"""Benchmark: `icdreason data prepare` rows/s on a generated MIMIC-shaped fixture (default 100,000 notes).

Run: python bench/data_prepare.py [--notes 100000] [--dir /tmp/icdreason-bench-mimic]
The fixture (discharge.csv.gz + diagnoses_icd.csv.gz, ~3 diagnoses per admission, 10% ICD-9 admissions, rotating
header spellings, ~3,000-character notes, two admissions per patient, real codes of the MIMIC-IV years) is generated
once and reused. Prints the time per stage and rows/s, the gold check against the knowledge base and the patient split.
"""

from __future__ import annotations

import argparse
import csv
import gzip
import random
import sys
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "cli_tests"))

# Real ICD-10-CM codes of the years MIMIC-IV was coded in; E87.2, I26.9, I71.6, K56.60, M48.06, E78.0, N18.3 (headers)
# and T81.4XXA (gone) were later expanded or replaced, as in the real cohort.
CODES = ("A419 A4151 A0472 B20 C3490 C7931 C189 D649 D62 E871 E1110 E1165 E861 E872 F10239 F329 G4089 G9340 I214 I2510 "
         "I5033 I5023 I110 I130 I4891 I609 I639 I269 I716 J189 J441 J440 J9601 J690 K5660 K8000 K8510 K922 K7031 "
         "L03116 M1711 M4806 N179 N390 N186 O9A211 R0789 R531 R55 S72001A S065X0A T814XXA T43212A Z5111 Z3800 U071 "
         "J1282 K3580 E780 N183").split()
HEADERS = [("Chief Complaint:", "History of Present Illness:", "Past Medical History:", "Physical Exam:"),
           ("CHIEF COMPLAINT:", "HPI:", "PMH:", "PHYSICAL EXAM ON ADMISSION:"),
           ("Chief complaint:", "HISTORY OF PRESENT ILLNESS:", "PAST MEDICAL HISTORY:", "Admission Physical Exam:")]
SENTENCE = ("Patient reports progressive dyspnea on exertion and intermittent chest pressure, denies fever, "
            "with a history notable for hypertension, hyperlipidemia and type 2 diabetes. ")


def note(i: int, rng: random.Random) -> str:
    cc, hpi, pmh, exam = HEADERS[i % 3]
    body = SENTENCE * rng.randint(4, 10)
    return (f" \nName:  ___   Unit No:   ___\n \nAdmission Date:  ___   Discharge Date:   ___\nService: MEDICINE\n"
            f"Allergies: \nNo Known Allergies\n \n{cc}\nshortness of breath\n \n{hpi}\n{body}\n \n{pmh}\n"
            f"1. HTN\n2. HLD\n \nSocial History:\n___\nFamily History:\nnoncontributory\n \n{exam}\n"
            f"VS: 98.1 120/80 80 18 97RA\nGeneral: NAD\nDISCHARGE PHYSICAL EXAM:\nunchanged\n \nPertinent Results:\n"
            f"___ 10:25PM BLOOD WBC-5.0\n \nBrief Hospital Course:\n{SENTENCE * 6}\nMedications on Admission:\n"
            f"1. Lisinopril 10 mg PO DAILY\n \nDischarge Medications:\n1. Lisinopril\nDischarge Diagnosis:\nCHF\n"
            f"Discharge Condition:\nstable\nDischarge Instructions:\nfollow up\nFollowup Instructions:\n___\n")


def generate(directory: Path, n: int) -> tuple[Path, Path]:
    notes, dx = directory / "discharge.csv.gz", directory / "diagnoses_icd.csv.gz"
    marker = directory / f".complete-{n}"
    if marker.exists():
        return notes, dx
    directory.mkdir(parents=True, exist_ok=True)
    rng = random.Random(0)
    with gzip.open(notes, "wt", newline="", compresslevel=1) as fn, gzip.open(dx, "wt", newline="",
                                                                              compresslevel=1) as fd:
        wn, wd = csv.writer(fn), csv.writer(fd)
        wn.writerow(["note_id", "subject_id", "hadm_id", "note_type", "note_seq", "charttime", "storetime", "text"])
        wd.writerow(["subject_id", "hadm_id", "seq_num", "icd_code", "icd_version"])
        for i in range(n):
            hadm, subject = 20000000 + i, 10000000 + i // 2
            wn.writerow([f"{subject}-DS-{i}", subject, hadm, "DS", 1, "2180-01-01", "2180-01-02", note(i, rng)])
            version = 9 if i % 10 == 0 else 10
            first = "4280" if version == 9 else CODES[int(rng.paretovariate(1.2)) % len(CODES)]
            for seq, code in enumerate([first, "I10", "E785"][: rng.randint(1, 3)], start=1):
                wd.writerow([subject, hadm, seq, code, version if seq == 1 else 10])
    marker.touch()
    return notes, dx


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--notes", type=int, default=100_000)
    ap.add_argument("--dir", type=Path, default=Path("/tmp/icdreason-bench-mimic"))
    args = ap.parse_args()
    from icdreason.data import PrepareOptions, prepare_mimic

    t0 = time.perf_counter()
    notes, dx = generate(args.dir / str(args.notes), args.notes)
    t_gen = time.perf_counter() - t0
    marks: list[tuple[str, float]] = []
    start = time.perf_counter()

    def progress(message: str) -> None:
        if message.startswith("cohort") or message.startswith("wrote"):
            marks.append((message.split(":")[0].split(" ")[0], time.perf_counter() - start))

    out = args.dir / f"out-{args.notes}"
    result = prepare_mimic(PrepareOptions(notes=notes, diagnoses=dx, out=out, force=True, batch_rows=4000),
                           progress=progress)
    total = time.perf_counter() - start
    cohort_t = marks[0][1]
    stats = result.stats
    table = Table(title=f"data prepare on {args.notes:,} generated notes ({notes.stat().st_size / 1e6:.0f} MB gzip; "
                        f"fixture generated in {t_gen:.0f} s)")
    for col in ("stage", "seconds", "rows/s"):
        table.add_column(col, justify="left" if col == "stage" else "right")
    kept = stats["kept"]
    table.add_row("cohort (DuckDB: one note and the seq_num=1 code per admission)", f"{cohort_t:.1f}",
                  f"{args.notes / cohort_t:,.0f}")
    table.add_row("total (cohort, sectioning, split, RL+SFT Parquet, labels)", f"{total:.1f}",
                  f"{args.notes / total:,.0f}")
    table.add_row(f"kept samples: {kept:,} (train {stats['samples']['train']:,} / validation "
                  f"{stats['samples']['validation']:,} / test {stats['samples']['test']:,})", "", "")
    gold = stats["gold_status"]
    table.add_row(f"gold codes in release {stats['kb_release']}: " + ", ".join(f"{n:,} {k}" for k, n in gold.items()),
                  "", "")
    split = stats["split"]
    table.add_row(f"split by {stats['split_by']}: patients {split['patients']['train']:,} / "
                  f"{split['patients']['validation']:,} / {split['patients']['test']:,}, "
                  f"{split['patients_in_several_splits']} in several splits", "", "")
    Console().print(table)


if __name__ == "__main__":
    main()
