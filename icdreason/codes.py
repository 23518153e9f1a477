"""Pure ICD-10-CM string logic: normalisation, the paper's format pattern, hierarchy prefixes, chapter ranges.

Nothing here needs the knowledge base; everything is deterministic string work that the KB, the parser, the
rewards and the metrics share.
"""

from __future__ import annotations

import bisect
import re
import unicodedata
from dataclasses import dataclass

__all__ = [
    "CODE_PATTERN",
    "ICD10CM_PATTERN",
    "CHAPTER_RANGES",
    "Chapter",
    "normalize",
    "normalize_with_notes",
    "is_well_formed",
    "matches_paper_pattern",
    "dotted",
    "undotted",
    "category",
    "chapter_of",
    "chapter_label",
    "common_prefix",
    "common_prefix_length",
    "seventh_character_code",
]

#: The paper's format check, applied to the undotted, upper-case code. Used by the format reward and the parser's
#: ``format_ok`` exactly as published. Note that it rejects real codes whose third character is a letter
#: (categories C7A, C7B, D3A, M1A, O9A, Z3A and QA0, e.g. ``Z3A.01``).
CODE_PATTERN = re.compile(r"^[A-Z][0-9]{2}[A-Z0-9]{0,4}$")

#: The structure of every ICD-10-CM code: a letter, a digit (or the "A" of FY2026's new category QA0, followed by a
#: digit), a letter or digit (a letter in C7A, D3A, M1A, O9A, Z3A …), then up to four letters or digits. Validation
#: uses this shape, so that such codes are judged by the code table rather than rejected by the paper's pattern.
ICD10CM_PATTERN = re.compile(r"^[A-Z](?:[0-9][A-Z0-9]|A[0-9])[A-Z0-9]{0,4}$")


@dataclass(frozen=True)
class Chapter:
    """One of the 22 ICD-10-CM chapters with its official category range (inclusive)."""

    number: int
    roman: str
    first: str
    last: str
    title: str

    @property
    def range(self) -> str:
        return f"{self.first}-{self.last}"

    @property
    def label(self) -> str:
        """How a chapter is shown to a person everywhere: its number and category range, ``9 (I00-I99)``. Records
        and JSON carry the number alone (an int)."""
        return f"{self.number} ({self.range})"


#: Official chapter ranges of the ICD-10-CM tabular list (FY2026). The KB builds its `chapters` table from the XML
#: itself; a test checks that both agree. Category strings compare correctly as plain strings ("O9A" > "O99").
CHAPTER_RANGES: tuple[Chapter, ...] = (
    Chapter(1, "I", "A00", "B99", "Certain infectious and parasitic diseases"),
    Chapter(2, "II", "C00", "D49", "Neoplasms"),
    Chapter(3, "III", "D50", "D89", "Diseases of the blood and blood-forming organs and certain disorders involving the immune mechanism"),
    Chapter(4, "IV", "E00", "E89", "Endocrine, nutritional and metabolic diseases"),
    Chapter(5, "V", "F01", "F99", "Mental, Behavioral and Neurodevelopmental disorders"),
    Chapter(6, "VI", "G00", "G99", "Diseases of the nervous system"),
    Chapter(7, "VII", "H00", "H59", "Diseases of the eye and adnexa"),
    Chapter(8, "VIII", "H60", "H95", "Diseases of the ear and mastoid process"),
    Chapter(9, "IX", "I00", "I99", "Diseases of the circulatory system"),
    Chapter(10, "X", "J00", "J99", "Diseases of the respiratory system"),
    Chapter(11, "XI", "K00", "K95", "Diseases of the digestive system"),
    Chapter(12, "XII", "L00", "L99", "Diseases of the skin and subcutaneous tissue"),
    Chapter(13, "XIII", "M00", "M99", "Diseases of the musculoskeletal system and connective tissue"),
    Chapter(14, "XIV", "N00", "N99", "Diseases of the genitourinary system"),
    Chapter(15, "XV", "O00", "O9A", "Pregnancy, childbirth and the puerperium"),
    Chapter(16, "XVI", "P00", "P96", "Certain conditions originating in the perinatal period"),
    Chapter(17, "XVII", "Q00", "QA0", "Congenital malformations, deformations and chromosomal abnormalities"),
    Chapter(18, "XVIII", "R00", "R99", "Symptoms, signs and abnormal clinical and laboratory findings, not elsewhere classified"),
    Chapter(19, "XIX", "S00", "T88", "Injury, poisoning and certain other consequences of external causes"),
    Chapter(20, "XX", "V00", "Y99", "External causes of morbidity"),
    Chapter(21, "XXI", "Z00", "Z99", "Factors influencing health status and contact with health services"),
    Chapter(22, "XXII", "U00", "U85", "Codes for special purposes"),
)

_BY_FIRST = sorted(CHAPTER_RANGES, key=lambda c: c.first)
_FIRSTS = [c.first for c in _BY_FIRST]

# Letters from other scripts that look like Latin capitals or digits, as they arrive from PDFs and word processors.
_LOOKALIKES = str.maketrans(
    {
        # Cyrillic
        "А": "A", "В": "B", "С": "C", "Е": "E", "Н": "H", "І": "I", "Ј": "J", "К": "K", "М": "M",
        "О": "O", "Р": "P", "Ѕ": "S", "Т": "T", "Х": "X", "У": "Y",
        "а": "A", "в": "B", "с": "C", "е": "E", "н": "H", "і": "I", "ј": "J", "к": "K", "м": "M",
        "о": "O", "р": "P", "ѕ": "S", "т": "T", "х": "X", "у": "Y",
        # Greek
        "Α": "A", "Β": "B", "Ε": "E", "Η": "H", "Ι": "I", "Κ": "K", "Μ": "M", "Ν": "N", "Ο": "O",
        "Ρ": "P", "Τ": "T", "Χ": "X", "Υ": "Y", "Ζ": "Z",
        # dots and dashes that are not ASCII
        "·": ".", "․": ".", "。": ".", "‧": ".",
    }
)
# Punctuation that surrounds codes in spreadsheets and prose: quotes, commas, brackets, semicolons.
_STRAY = " \t\r\n\"'`,;:()[]{}<>|*"


def normalize_with_notes(raw: str) -> tuple[str, list[str]]:
    """Normalise a code and say what was changed (for messages shown to a coder).

    Applies Unicode NFKC, maps look-alike letters from other scripts, strips surrounding whitespace and stray
    punctuation, upper-cases and removes the dot. The result is undotted, e.g. ``" i21.4,"`` -> ``"I214"``.
    """
    notes: list[str] = []
    text = unicodedata.normalize("NFKC", raw)
    mapped = text.translate(_LOOKALIKES)
    if mapped != text:
        notes.append("look-alike characters from another script replaced")
    stripped = mapped.strip(_STRAY)
    if stripped != mapped.strip():
        notes.append("surrounding punctuation removed")
    upper = stripped.upper()
    if upper != stripped:
        notes.append("upper-cased")
    code = upper.replace(".", "").replace(" ", "")
    return code, notes


def normalize(raw: str) -> str:
    """Undotted upper-case form of a code as a coder or a model wrote it: ``"m51.16 "`` -> ``"M5116"``."""
    if raw.isascii():
        return raw.strip(_STRAY).upper().replace(".", "").replace(" ", "")
    return normalize_with_notes(raw)[0]


def is_well_formed(code: str) -> bool:
    """True when the normalised code has the ICD-10-CM shape (see :data:`ICD10CM_PATTERN`)."""
    return ICD10CM_PATTERN.match(normalize(code)) is not None


def matches_paper_pattern(code: str) -> bool:
    """True when the normalised code matches the paper's pattern ``^[A-Z][0-9]{2}[A-Z0-9]{0,4}$``."""
    return CODE_PATTERN.match(normalize(code)) is not None


def undotted(code: str) -> str:
    """Undotted form; alias of :func:`normalize`."""
    return normalize(code)


def dotted(code: str) -> str:
    """Dotted display form of a code: ``"S72001A"`` -> ``"S72.001A"``; categories stay without a dot."""
    c = normalize(code)
    return c if len(c) <= 3 else f"{c[:3]}.{c[3:]}"


def category(code: str) -> str:
    """The three-character category of a code (``"M51.16"`` -> ``"M51"``)."""
    return normalize(code)[:3]


def chapter_label(number: int | str | None) -> str:
    """The display form of a chapter number (``9`` -> ``9 (I00-I99)``); ``-`` for none, the value itself when it is
    not a chapter number."""
    if number is None or number == "":
        return "-"
    try:
        return CHAPTER_RANGES[int(number) - 1].label if 1 <= int(number) <= len(CHAPTER_RANGES) else str(number)
    except (TypeError, ValueError):
        return str(number)


def chapter_of(code: str) -> Chapter | None:
    """The chapter whose official category range contains the code, or None for codes outside every range."""
    cat = normalize(code)[:3]
    if len(cat) < 3:
        return None
    i = bisect.bisect_right(_FIRSTS, cat) - 1
    if i < 0:
        return None
    chapter = _BY_FIRST[i]
    return chapter if cat <= chapter.last else None


def common_prefix(a: str, b: str) -> int:
    """Length of the longest common prefix of two strings as they are (the rewards compare undotted codes)."""
    n = 0
    for x, y in zip(a, b):
        if x != y:
            break
        n += 1
    return n


def common_prefix_length(a: str, b: str) -> int:
    """Length of the longest common prefix of two normalised codes (the paper's O_prefix)."""
    return common_prefix(normalize(a), normalize(b))


def seventh_character_code(code: str, seventh: str) -> str:
    """Append a 7th character, padding with the placeholder ``X`` to six characters first (``T36.0`` + ``1A``-style).

    ``seventh_character_code("T36.0X1", "A") == "T36.0X1A"``; ``seventh_character_code("S32.9", "A") == "S32.9XXA"``.
    """
    c = normalize(code).ljust(6, "X")
    return dotted(c + seventh)
