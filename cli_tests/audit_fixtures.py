"""Prediction records for the audit tests, written as JSONL following the record contract."""

from __future__ import annotations

import json
import time
from pathlib import Path

import duckdb

DESCRIPTIONS = {
    "I21.4": "Non-ST elevation (NSTEMI) myocardial infarction",
    "E11.9": "Type 2 diabetes mellitus without complications",
    "J18.9": "Pneumonia, unspecified organism",
    "K35.80": "Unspecified acute appendicitis",
    "N39.0": "Urinary tract infection, site not specified",
}
NOTES = [
    ("n1", "I21.4", "billable", 9, "I21", 0.8,
     "67 year old man admitted from the emergency department. He describes crushing chest pain radiating to the left "
     "arm since this morning. Troponin elevated at 2.3 ng/mL. ECG shows ST depression in V4-V6. Enjoys gardening.",
     "The patient describes crushing chest pain radiating to the left arm. Troponin is elevated and the ECG shows ST "
     "depression in V4-V6. This fits a non-ST elevation myocardial infarction."),
    ("n2", "E11.9", "billable", 4, "E11", 0.4,
     "54 year old woman with polyuria and polydipsia for three weeks. Fasting glucose 210 mg/dL. HbA1c 8.9 percent. "
     "No ketones in the urine.",
     "Polyuria and polydipsia with fasting glucose 210 and HbA1c 8.9 point to diabetes. No ketones, so no "
     "ketoacidosis. Type 2 diabetes without complications."),
    ("n3", "J18.9", "billable", 10, "J18", 0.6,
     "Fever 39.1 C, productive cough with rusty sputum, right lower lobe crackles. Chest x-ray shows right lower "
     "lobe consolidation.",
     "Fever, productive cough and right lower lobe consolidation on chest x-ray indicate pneumonia."),
    ("n4", "K35.80", "billable", 11, "K35", 0.9,
     "Periumbilical pain migrating to the right lower quadrant, nausea, anorexia. Rebound tenderness at McBurney "
     "point. WBC 14.",
     "Pain migrating to the right lower quadrant with rebound tenderness at McBurney point and WBC 14: acute "
     "appendicitis."),
    ("n5", "N39.0", "billable", 14, "N39", 0.3,
     "Dysuria, urinary frequency and suprapubic pain. Urinalysis positive for nitrites and leukocyte esterase.",
     "Dysuria and frequency with positive nitrites and leukocyte esterase: urinary tract infection."),
]


def record(case_id, code, status, chapter, category, confidence, note, trace, **extra) -> dict:
    rec = {
        "id": case_id, "source": "notes.jsonl", "run_id": "20260412T101500-3f9a1c", "engine": "transformers",
        "model": "tiny", "uses_llm": True, "parameters": {}, "note": note, "trace": trace, "code_raw": code,
        "code": code, "format_ok": True, "parse_note": None, "status": status, "description": DESCRIPTIONS.get(code),
        "chapter": chapter, "category": category, "suggestions": [],
        "confidence": {"code": confidence, "category": min(1.0, confidence + 0.1), "chapter": 1.0},
        "top_k": [{"code": code, "support": confidence}, {"code": "R69", "support": round(1 - confidence, 2)}],
        "symptoms": None, "symptoms_from": None, "guideline": None, "guideline_section": None,
        "tokens_in": 100, "tokens_out": 50, "seconds": 0.1, "flags": [], "error": None,
    }
    rec.update(extra)
    return rec


def write_predictions(path: Path, records: list[dict] | None = None) -> Path:
    """Write the five fixture records (or ``records``) as JSONL."""
    rows = records if records is not None else [record(*n) for n in NOTES]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def rows(db: Path, sql: str = "SELECT reviewer, case_id, decision, expert_code, reason, comment, flagged "
                                 "FROM decisions ORDER BY id") -> list[tuple]:
    """Rows of an audit database, read while a session or a server may hold its write lock for a moment."""
    deadline = time.monotonic() + 20
    while True:
        try:
            con = duckdb.connect(str(db), read_only=True)
        except duckdb.IOException:  # the session holds the write lock for a moment
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)
            continue
        try:
            return con.execute(sql).fetchall()
        finally:
            con.close()
