"""Admission notes from MIMIC-IV discharge summaries: keep what is known at admission, drop what leaks the outcome.

A discharge summary is split at *known* section headers only (a line starting with ``Heading:``), so the many
``General:``/``HEENT:``/``VS:`` sub-lines inside a section never split it. Each header maps to a section kind; the
admission note is the kept kinds in a fixed order under canonical headings. Everything else — discharge diagnosis,
brief hospital course, discharge medications/condition/instructions/disposition, pertinent results (labs, imaging and
microbiology after admission), procedures, the discharge exam, follow-up, and the administrative header lines — is
dropped. Inside the physical exam, an admission sub-header (``ADMISSION PHYSICAL EXAM:``) continues the kept exam and
a discharge sub-header (``DISCHARGE PHYSICAL EXAM:``, ``ON DISCHARGE:``) starts a dropped section.

Unknown headers do not start a section: their text stays with the section before. The leaking header list is
therefore broad (``docs/usage-rewards-data.md`` lists it).
"""

from __future__ import annotations

import re
from functools import lru_cache
from dataclasses import dataclass, field

__all__ = ["KEPT_SECTIONS", "HEADINGS", "AdmissionNote", "admission_note", "classify_heading"]

#: The sections kept, in output order, with their canonical heading.
KEPT_SECTIONS: dict[str, str] = {
    "chief_complaint": "Chief Complaint",
    "present_illness": "History of Present Illness",
    "past_medical_history": "Past Medical History",
    "past_surgical_history": "Past Surgical History",
    "social_history": "Social History",
    "family_history": "Family History",
    "allergies": "Allergies",
    "medications_on_admission": "Medications on Admission",
    "physical_exam": "Physical Exam (admission)",
}

_KEEP = {
    "chief_complaint": ["chief complaint", "cc", "chief complaints", "reason for admission", "presenting complaint"],
    "present_illness": ["history of present illness", "history of the present illness", "hpi", "present illness",
                        "history of presenting illness"],
    "past_medical_history": ["past medical history", "pmh", "pmhx", "past medical hx", "medical history",
                             "past medical/surgical history", "past medical and surgical history", "past history"],
    "past_surgical_history": ["past surgical history", "psh", "surgical history", "past surgical hx"],
    "social_history": ["social history", "sh", "social hx"],
    "family_history": ["family history", "fh", "family hx"],
    "allergies": ["allergies", "allergy", "allergies on admission"],
    "medications_on_admission": ["medications on admission", "medication on admission", "admission medications",
                                 "home medications", "preadmission medications", "meds on admission",
                                 "outpatient medications", "medications prior to admission"],
    "physical_exam": ["physical exam", "physical examination", "exam", "admission physical exam",
                      "physical exam on admission", "admission exam", "exam on admission", "admission physical",
                      "physical examination on admission", "admission physical examination", "admit exam",
                      "admission pe", "pe on admission"],
}
_DROP = {
    "discharge_diagnosis": ["discharge diagnosis", "discharge diagnoses", "final diagnosis", "final diagnoses",
                            "primary diagnosis", "primary diagnoses", "secondary diagnosis", "secondary diagnoses",
                            "diagnosis", "diagnoses"],
    "hospital_course": ["brief hospital course", "hospital course", "summary of hospital course", "icu course",
                        "active issues", "chronic issues", "transitional issues", "assessment and plan",
                        "assessment/plan", "a/p", "impression", "assessment"],
    "discharge_medications": ["discharge medications", "discharge medication", "medications on discharge",
                              "new medications", "changes to medications"],
    "discharge_condition": ["discharge condition", "condition at discharge", "condition on discharge"],
    "discharge_instructions": ["discharge instructions", "followup instructions", "follow-up instructions",
                               "follow up instructions", "followup", "follow-up", "discharge disposition",
                               "disposition", "facility"],
    "results": ["pertinent results", "results", "labs", "laboratory", "laboratory data", "imaging", "studies",
                "microbiology", "micro", "pathology", "radiology", "ekg", "ecg", "echo", "admission labs",
                "discharge labs", "pertinent labs", "labs on admission", "labs on discharge"],
    "procedures": ["major surgical or invasive procedure", "procedures", "procedure", "operations",
                   "invasive procedures"],
    "discharge_exam": ["discharge physical exam", "discharge exam", "physical exam on discharge",
                       "exam on discharge", "discharge physical examination", "physical examination on discharge",
                       "discharge pe", "pe on discharge"],
    "administrative": ["name", "unit no", "admission date", "discharge date", "date of birth", "sex", "service",
                       "attending", "completed by", "provider"],
}
#: Only inside the physical exam: short sub-headers that switch between the admission and the discharge exam.
_EXAM_ONLY = {"on admission": "physical_exam", "admission": "physical_exam", "on discharge": "discharge_exam",
              "discharge": "discharge_exam", "at discharge": "discharge_exam", "prior to discharge": "discharge_exam",
              "on day of discharge": "discharge_exam"}

HEADINGS: dict[str, str] = {h: kind for table in (_KEEP, _DROP) for kind, hs in table.items() for h in hs}

_HEADER = re.compile(r"^[ \t]*([A-Za-z][^:\n]{0,60}):", re.MULTILINE)
_SPACES = re.compile(r"\s+")


@lru_cache(maxsize=65536)
def classify_heading(heading: str, *, in_exam: bool = False) -> str | None:
    """The section kind of a header text (``"HPI"`` -> ``present_illness``), or None when it is not a known header."""
    key = _SPACES.sub(" ", heading.strip().lower()).strip(" .")
    kind = HEADINGS.get(key)
    if kind is None and in_exam:
        kind = _EXAM_ONLY.get(key)
    return kind


@dataclass
class AdmissionNote:
    """The admission note built from one discharge summary."""

    text: str
    sections: dict[str, str] = field(default_factory=dict)  # kept kind -> text
    dropped: list[str] = field(default_factory=list)  # kinds that were dropped, in note order

    @property
    def missing(self) -> list[str]:
        """Kept kinds this note lacks (no header, or an empty section)."""
        return [k for k in KEPT_SECTIONS if not self.sections.get(k)]


def admission_note(text: str) -> AdmissionNote:
    """Build the admission note of a discharge summary (see the module docstring)."""
    text = text.replace("\r\n", "\n")
    parts: dict[str, list[str]] = {}
    dropped: list[str] = []
    kind: str | None = None  # text before the first known header is administrative
    pos = 0
    for m in _HEADER.finditer(text):
        new = classify_heading(m.group(1), in_exam=kind == "physical_exam")
        if new is None:
            continue
        if kind in KEPT_SECTIONS:
            parts.setdefault(kind, []).append(text[pos:m.start()])
        kind, pos = new, m.end()
        if new not in KEPT_SECTIONS:
            dropped.append(new)
    if kind in KEPT_SECTIONS:
        parts.setdefault(kind, []).append(text[pos:])
    sections = {}
    for k in KEPT_SECTIONS:
        if k in parts:
            body = "\n".join(p.strip("\n ").rstrip() for p in parts[k] if p.strip())
            if body.strip(" _\n\t"):  # de-identified placeholders alone ("___") carry nothing
                sections[k] = body.strip()
    out = "\n\n".join(f"{KEPT_SECTIONS[k]}:\n{sections[k]}" for k in KEPT_SECTIONS if k in sections)
    return AdmissionNote(out, sections, dropped)
