"""Text handling for the retriever: sentences, NegEx-style negation, abbreviations and a light term normaliser.

Everything here is plain Python and regular expressions, fast enough for hundreds of notes per second.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

__all__ = ["Sentence", "split_sentences", "negation_spans", "negated_terms", "terms", "normalise_terms",
           "expand_abbreviations",
           "STOPWORDS"]

_WORD = re.compile(r"(?u)\b\w\w+\b")

#: Words that carry no diagnostic meaning in notes or descriptions (plus the 33 bm25s English stopwords).
STOPWORDS = frozenset(
    """a an and are as at be but by for if in into is it no not of on or such that the their then there these they
    this to was will with were been being has have had he she his her him hers who whom which what when where while
    from than also did does do done per pt pts patient patients presents presented presenting present reports reported
    states stated noted notes note history personal year years yo old male female man woman gentleman lady admitted
    admission since day days ago week weeks month months hour hours time today yesterday hospital prior last
    recent recently approximately about over under after before during daily home seen given started found
    mg mcg ml po iv bid tid qd qid prn tab tabs unit units""".split()
)

# Clinical shorthand -> words the ICD-10-CM descriptions use (matched as whole lower-case tokens or phrases).
ABBREVIATIONS: dict[str, str] = {
    "cp": "chest pain", "sob": "shortness of breath dyspnea", "doe": "dyspnea", "n/v": "nausea vomiting",
    "abd": "abdominal", "ams": "altered mental status", "loc": "loss of consciousness", "htn": "hypertension",
    "hld": "hyperlipidemia", "dm": "diabetes mellitus", "dm2": "type 2 diabetes mellitus",
    "t2dm": "type 2 diabetes mellitus", "t1dm": "type 1 diabetes mellitus", "cad": "coronary artery disease",
    "chf": "congestive heart failure", "hf": "heart failure", "hfref": "systolic heart failure",
    "hfpef": "diastolic heart failure", "copd": "chronic obstructive pulmonary disease", "mi": "myocardial infarction",
    "nstemi": "non st elevation nstemi myocardial infarction", "stemi": "st elevation stemi myocardial infarction",
    "afib": "atrial fibrillation", "af": "atrial fibrillation", "a-fib": "atrial fibrillation",
    "ckd": "chronic kidney disease", "esrd": "end stage renal disease", "aki": "acute kidney failure",
    "arf": "acute kidney failure", "uti": "urinary tract infection", "dvt": "deep vein thrombosis",
    "pe": "pulmonary embolism", "gerd": "gastro-esophageal reflux disease", "cva": "cerebral infarction stroke",
    "tia": "transient cerebral ischemic attack", "dka": "diabetic ketoacidosis", "gib": "gastrointestinal hemorrhage",
    "ugib": "upper gastrointestinal hemorrhage", "lgib": "lower gastrointestinal hemorrhage",
    "brbpr": "rectal hemorrhage", "etoh": "alcohol", "fx": "fracture", "sz": "seizure", "ha": "headache",
    "uri": "upper respiratory infection", "cap": "pneumonia", "hcap": "pneumonia", "pna": "pneumonia",
    "ards": "acute respiratory distress syndrome", "sbo": "small intestine obstruction",
    "lbp": "low back pain", "oa": "osteoarthritis", "ra": "rheumatoid arthritis",
    "bph": "benign prostatic hyperplasia", "cellulitis": "cellulitis", "hip fx": "fracture of femur",
    "heart attack": "myocardial infarction", "stroke": "cerebral infarction stroke", "sepsis": "sepsis",
    "covid": "covid-19", "covid-19": "covid-19",
}
_ABBREV = re.compile(
    r"(?<![\w/-])(" + "|".join(re.escape(k) for k in sorted(ABBREVIATIONS, key=len, reverse=True)) + r")(?![\w/-])",
    re.IGNORECASE,
)


def expand_abbreviations(text: str) -> str:
    """Append the spelled-out form after each known abbreviation (``SOB`` -> ``SOB shortness of breath dyspnea``)."""
    return _ABBREV.sub(lambda m: f"{m.group(0)} {ABBREVIATIONS[m.group(0).lower()]}", text)


def _stem(word: str) -> str:
    """A deliberately light English normaliser: plurals and a few clinical suffix variants."""
    if len(word) <= 3 or word.isdigit():
        return word
    if word.endswith("ies") and len(word) > 4:
        return word[:-3] + "y"
    if word.endswith("sses"):
        return word[:-2]
    if word.endswith("s") and not word.endswith(("ss", "us", "is", "os")):
        return word[:-1]
    return word


#: "type 2", "stage 3", "grade 1": the number is part of the term ("type2"), so that type 1 and type 2 diabetes differ.
_NUMBERED = re.compile(r"\b(type|stage|grade|class)\s+(\d)\b")


def terms(text: str) -> list[str]:
    """Normalised, stop-word-free terms of a text, in order."""
    return [_stem(w) for w in _WORD.findall(_NUMBERED.sub(r"\1\2", text.lower())) if w not in STOPWORDS]


def normalise_terms(text: str) -> str:
    """:func:`terms` joined by spaces: what the index is built from, so documents and queries match alike."""
    return " ".join(terms(text))


# -- sentences -----------------------------------------------------------------------------------------------------
_SPLIT = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9(\[])|\n\s*\n|\n(?=\s*[-*•\d]+[.)]?\s)|\n(?=[A-Z][A-Za-z ]+:)|;\s+")


def _in_parenthesis(text: str, at: int) -> bool:
    """True when ``at`` lies inside a parenthesis or bracket that opens and closes on the same line."""
    line_start = text.rfind("\n", 0, at) + 1
    line_end = text.find("\n", at)
    line_end = len(text) if line_end < 0 else line_end
    depth = 0
    for ch in text[line_start:at]:
        if ch in "([":
            depth += 1
        elif ch in ")]" and depth:
            depth -= 1
    if not depth:
        return False
    for ch in text[at:line_end]:  # the parenthesis must close before the line ends, or it is no parenthesis
        if ch in ")]":
            depth -= 1
            if not depth:
                return True
        elif ch in "([":
            depth += 1
    return False


def split_sentences(text: str) -> list[str]:
    """Sentences and list items of a note section (split at ., !, ?, semicolons, blank lines, bullets). A
    parenthesis closed on the same line is never split: "(written for a test; not patient data)" stays one aside
    in its sentence instead of leaving a fragment "not patient data)"."""
    parts: list[str] = []
    start = 0
    for m in _SPLIT.finditer(text):
        if "\n" not in m.group(0) and _in_parenthesis(text, m.start()):
            continue
        parts.append(text[start:m.start()])
        start = m.end()
    parts.append(text[start:])
    parts = [p.strip() for p in parts]
    return [re.sub(r"\s+", " ", p) for p in parts if p and any(c.isalnum() for c in p)]


# -- negation ------------------------------------------------------------------------------------------------------
_PRE = (
    r"no evidence of|no signs? of|no history of|no complaints? of|negative for|free of|absence of|absent|without|"
    r"denies|denied|denying|deny|rules? out|ruled out|r/o|never had|not|no|nor"
)
_POST = r"(?:was|were|is|are|has been|have been) (?:ruled out|negative|absent|excluded)|unlikely|not seen|resolved"
# Pseudo-triggers negate nothing: "not" negating a verb ("did not help", "could not walk", "not improved with"),
# not a finding ("did not have fever" still negates: have, had, experience, … are left out of the verb forms).
_PSEUDO = (r"not only|no further|no change|not certain if|without difficulty|no increase|gram negative|not necessarily|"
           r"not (?:improved?|help(?:ed)?|relieved|respond(?:ed)?|resolv(?:e|ed))|"
           r"(?:did|does|do|could|would|can|will)\s*not\s+(?!have\b|had\b|experience|report|develop|show|reveal|"
           r"demonstrat|notice|complain|present|appear)[a-z]+")
_PRE_RE = re.compile(rf"\b(?:{_PSEUDO})\b|\b({_PRE})\b", re.IGNORECASE)
_POST_RE = re.compile(rf"\b({_POST})\b", re.IGNORECASE)
# A scope also ends at a bracket: a trigger inside a parenthesis negates only to its end, one outside it does not
# reach into it.
_TERMINATE = re.compile(r"\b(but|however|although|though|except|aside from|apart from|which|who|presents?|"
                        r"presented|reports?|complains? of|secondary to|due to|now|consistent with|concerning for|"
                        r"suggestive of|diagnosed with)\b|[.;:!?()\[\]]", re.IGNORECASE)
_MAX_SCOPE_WORDS = 8


@dataclass
class Sentence:
    """One sentence with the character spans judged negated and the triggers that negated them."""

    text: str
    negated: list[tuple[int, int]] = field(default_factory=list)
    triggers: list[str] = field(default_factory=list)

    def kept_text(self) -> str:
        """The sentence without its negated spans."""
        if not self.negated:
            return self.text
        out, pos = [], 0
        for start, end in self.negated:
            out.append(self.text[pos:start])
            pos = end
        out.append(self.text[pos:])
        return " ".join(p.strip() for p in out if p.strip())

    def negated_text(self) -> str:
        """The negated spans, joined by an ellipsis."""
        return " … ".join(self.mentions())

    def mentions(self) -> list[str]:
        """Each negated span as a phrase: trigger and scope, without dangling punctuation or brackets."""
        return [m for m in (_trimmed(self.text[s:e]) for s, e in self.negated) if m]



def _trimmed(text: str) -> str:
    """A span without surrounding spaces, punctuation, or a bracket that its other half does not close."""
    text = text.strip().strip(",;:.!?").strip()
    while text and text[-1] in ")]" and text.count("(") + text.count("[") < text.count(")") + text.count("]"):
        text = text[:-1].rstrip()
    while text and text[0] in "([" and text.count("(") + text.count("[") > text.count(")") + text.count("]"):
        text = text[1:].lstrip()
    return text.strip(",;:.!? ")


def negated_terms(mention: str) -> list[str]:
    """The :func:`terms` a negated mention negates: its words without the negation triggers
    (``"denies fever, cough"`` → ``["fever", "cough"]``)."""
    return terms(_POST_RE.sub(" ", _PRE_RE.sub(" ", mention)))


def _scope_end(text: str, start: int) -> int:
    stop = _TERMINATE.search(text, start)
    end = stop.start() if stop else len(text)
    words = list(re.finditer(r"\S+", text[start:end]))
    if len(words) > _MAX_SCOPE_WORDS:
        end = start + words[_MAX_SCOPE_WORDS - 1].end()
    return end


def negation_spans(sentence: str) -> Sentence:
    """Find NegEx-style negated spans: a trigger ("denies", "no evidence of", "negative for", …) negates the words
    after it up to a terminating word or punctuation (at most 8 words); a post-trigger ("was ruled out",
    "unlikely") negates the clause before it. Pseudo-triggers ("no change", "gram negative") negate nothing."""
    spans: list[tuple[int, int]] = []
    triggers: list[str] = []
    for m in _PRE_RE.finditer(sentence):
        if m.group(1) is None:
            continue
        end = _scope_end(sentence, m.end())
        if end > m.end():
            spans.append((m.start(), end))
            triggers.append(m.group(1).lower())
    for m in _POST_RE.finditer(sentence):
        clause_start = max(sentence.rfind(",", 0, m.start()), sentence.rfind(";", 0, m.start())) + 1
        words = list(re.finditer(r"\S+", sentence[clause_start:m.start()]))
        if len(words) > _MAX_SCOPE_WORDS:
            clause_start += words[-_MAX_SCOPE_WORDS].start()
        spans.append((clause_start, m.end()))
        triggers.append(m.group(1).lower())
    spans.sort()
    merged: list[tuple[int, int]] = []
    for s, e in spans:
        if merged and s <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(e, merged[-1][1]))
        else:
            merged.append((s, e))
    return Sentence(sentence, merged, triggers)
