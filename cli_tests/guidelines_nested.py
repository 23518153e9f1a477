"""Guideline files in the nested shape of the DeepICD-R1 authors' release, with our own headings and sentences.

One top-level key per file, the chapter title with its code range, over headings nested to any depth with text (or
lists of texts) at the leaves. The titles carry the irregularities the real files have: an en dash with spaces, an
alphanumeric end of range, extra codes after the range, a "Chapter N:" prefix, a stray letter before the title.
"""

from __future__ import annotations

import json
from pathlib import Path

CIRCULATORY = "Circulatory system diseases (I00-I99)"

NESTED_FILES: dict[str, dict] = {
    "chapter_5.json": {"Mental and behavioural disorders (F01 – F99)": {
        "Dementia": {
            "severity": "Code the severity documented at admission; when it worsens during the stay, code the most "
                        "severe stage.",
        },
    }},
    "chapter_9.json": {CIRCULATORY: {
        "Hypertension": {
            "description": "Hypertension and an involvement of the heart or the kidneys are taken to be linked when "
                           "the index joins them with the word 'with'.",
            "Hypertension with Heart Disease": "Choose a code from category I11 when heart failure or another heart "
                                               "condition occurs together with hypertension, and add a code from I50 "
                                               "for the kind of heart failure.",
            "Hypertensive Chronic Kidney Disease": "Use category I12 when chronic kidney disease occurs with "
                                                   "hypertension, and add a code from N18 for the stage.",
            "Hypertension, Controlled": "Hypertension kept in check by medication is still coded to I10 or to the "
                                        "category that fits.",
        },
        "Acute myocardial infarction": {
            "Type 1 STEMI and NSTEMI": "Codes I21.0–I21.4 are for type 1 infarctions, by the site of the infarction.",
            "Subsequent infarction": "A new infarction within four weeks of the first one is coded to category I22.",
        },
        "Sequelae of cerebrovascular disease": {
            "Laterality defaults": [
                "Right-handed patient, side not documented: the dominant side is affected.",
                "Left-handed patient, side not documented: the nondominant side is affected.",
                "Handedness not documented: the right side is the dominant side.",
            ],
        },
    }},
    "chapter_10.json": {"Respiratory system diseases (J00-J99), U07.0": {
        "COPD and Asthma": {
            "Acute exacerbation of chronic obstructive bronchitis and asthma":
                "An exacerbation is a worsening of the chronic disease; an infection on top of it is coded as well.",
        },
        "Lung injury from vaping": {
            "reference": "Lung damage from electronic cigarettes is coded to U07.0.",
        },
    }},
    "chapter_15.json": {"Pregnancy and childbirth (O00-O9A)": {
        "General rules": {"Precedence": "Codes from this chapter come before codes from the other chapters."},
    }},
    "chapter_18.json": {"Signs and symptoms not classified elsewhere (R00-R99)": {
        "a. Use of symptom codes": "A symptom is coded when no related definitive diagnosis has been confirmed.",
        "b. Coma scale": "The coma scale codes go with the code for the injury or illness that caused it.",
    }},
    "chapter_20.json": {"QExternal causes of harm (V00-Y99)": {
        "Place of occurrence": "Report the place where the injury happened once, at the first encounter.",
    }},
    "chapter_21.json": {"Chapter 21: Health status and contact with services (Z00–Z99)": {
        "Categories": {"Status": {"examples": {
            "Z79": "Long-term use of a prescribed drug, such as insulin, is reported with a code from category Z79.",
        }}},
    }},
}


def write_nested_guidelines(directory: Path, files: dict[str, dict] = NESTED_FILES) -> Path:
    """Write ``files`` (file name → JSON) into ``directory`` the way the authors' release is laid out; returns it."""
    directory.mkdir(parents=True, exist_ok=True)
    for name, data in files.items():
        (directory / name).write_text(json.dumps(data, ensure_ascii=False, indent=4), encoding="utf-8")
    return directory
