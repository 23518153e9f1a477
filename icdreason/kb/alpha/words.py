"""Words as the Alphabetic Index lookup compares them: lower case, stop words out, plural and adjective endings off.

The same normaliser reads index titles and notes, so "ureteral" meets "ureter", "myocardial" meets "myocardium",
"fractures" meets "fracture". Adjacent words are also joined ("bed sore" -> "bedsore"), so a lay spelling finds a
one-word main term. Deliberately light: index titles list their own variants ("Infarct, infarction", "femur,
femoral"), and a wrong merge costs more than a missed one.
"""

from __future__ import annotations

import re

_WORD = re.compile(r"[a-z0-9]+")
#: Words that never decide an index entry (connectors and fillers; "with", "in" and "due to" make subheadings).
STOPWORDS = frozenset(
    "an the of and or to in on at by for as with from nec nos other than into onto its his her their this that "
    "is was are were be been being has have had not s".split()
)
#: Titles made only of these words are connector subheadings ("with", "due to", "in (due to)", "by"): a lookup
#: passes through them to their subterms.
CONNECTORS = frozenset("with due to in by from of as following during".split())
_ADJECTIVE_ENDINGS = ("ical", "ial", "al", "ar", "ary", "ic", "ous", "um", "us")
#: Everyday words the index does not list as main terms, read as the term it does list.
LAY_WORDS = {"broken": "fracture", "busted": "fracture", "cracked": "fracture"}
#: Words of a title that are not needed to find it ("sacral region" is found by "sacrum").
GENERIC = frozenset("region area part portion site structure current".split())
#: Clinical words and the index's own word for the same thing, added to a text's words before a lookup (the index
#: says "hemorrhage" where notes say "bleeding", "intestine, large" where they say "colon").
SYNONYMS: dict[str, tuple[str, ...]] = {
    "bleeding": ("hemorrhage",), "bleed": ("hemorrhage",), "colon": ("intestine", "large"),
    "sigmoid": ("intestine", "large"), "bowel": ("intestine",), "kidney": ("renal",), "renal": ("kidney",),
    "cardiac": ("heart",), "pulmonary": ("lung",), "hepatic": ("liver",), "clot": ("thrombosis",),
    "disc": ("intervertebral",), "disk": ("disc", "intervertebral"), "coli": ("escherichia",),
    "distal": ("lower", "end"), "proximal": ("upper", "end"), "gestation": ("pregnancy",),
    "pregnant": ("pregnancy",),
}
_cache: dict[str, str] = {}


def stem(word: str) -> str:
    """One lower-case word, normalised: plurals and a few adjective or Latin endings removed (long words only)."""
    found = _cache.get(word)
    if found is not None:
        return found
    w = LAY_WORDS.get(word, word)
    if len(w) > 4 and w.endswith("ies"):
        w = w[:-3] + "y"
    elif len(w) > 4 and w.endswith(("sses", "xes", "ches", "shes")):
        w = w[:-2]
    elif len(w) > 3 and w.endswith("s") and not w.endswith(("ss", "us", "is")):
        w = w[:-1]
    for ending in _ADJECTIVE_ENDINGS:
        if w.endswith(ending) and len(w) - len(ending) >= 4:
            w = w[: -len(ending)]
            break
    if len(_cache) < 200_000:
        _cache[word] = w
    return w


#: "type 2", "stage 3", "grade II": the number belongs to the word ("type2"), so that "type" and a "2" elsewhere in a
#: record do not make a type 2 diabetes.
_NUMBERED = re.compile(r"\b(type|stage|grade|class)\s+(\d+|i{1,3}|iv|v)\b")


def words(text: str, *, letters: bool = False) -> list[str]:
    """The normalised content words of a text, in order (stop words left out; single letters too, unless
    ``letters``: an index title's "Q fever" must not be found by "fever" alone)."""
    text = text.lower()
    if "type" in text or "stage" in text or "grade" in text or "class" in text:
        text = _NUMBERED.sub(r"\1\2", text)
    return [stem(w) for w in _WORD.findall(text) if w not in STOPWORDS and (letters or len(w) > 1 or w.isdigit())]


_TOKEN_OR_BREAK = re.compile(r"[a-z0-9]+|[,;:()\[\]]")
COMMA, BREAK = ",", ";"


def marked_words(text: str) -> list[str]:
    """:func:`words` with the punctuation that ends a phrase kept in place: ``","`` for a comma, ``";"`` for a
    semicolon, colon or bracket (one pass over a note's sentence instead of one per clause)."""
    text = text.lower()
    if "type" in text or "stage" in text or "grade" in text or "class" in text:
        text = _NUMBERED.sub(r"\1\2", text)
    out = []
    for w in _TOKEN_OR_BREAK.findall(text):
        if w == COMMA:
            out.append(COMMA)
        elif w in ";:()[]":
            out.append(BREAK)
        elif w not in STOPWORDS and (len(w) > 1 or w.isdigit()):
            out.append(stem(w))
    return out


def is_connector(title: str) -> bool:
    """True for a subheading title such as "with", "due to" or "in (due to)"."""
    found = _WORD.findall(title.lower())
    return bool(found) and all(w in CONNECTORS for w in found)


def with_joined(tokens: list[str]) -> set[str]:
    """The tokens, their index synonyms, and each pair of neighbours written as one word ("bed sore" -> "bedsore")."""
    out = set(tokens)
    out.update(a + b for a, b in zip(tokens, tokens[1:]))
    for token in tokens:
        if token in _SYNONYM_STEMS:
            out.update(_SYNONYM_STEMS[token])
    return out


_SYNONYM_STEMS = {stem(k): tuple(stem(w) for w in v) for k, v in SYNONYMS.items()}


def unaccounted(text: str, covered: frozenset[str] | set[str], expansions: dict[str, str] | None = None) -> tuple[
        str, ...]:
    """The words of ``text`` (as written) that ``covered`` does not account for, directly, through an index synonym
    or through the spelled-out form of an abbreviation in ``expansions``."""
    out = []
    for word in dict.fromkeys(w for w in _WORD.findall(text.lower()) if w not in STOPWORDS):
        forms = {stem(word), *_SYNONYM_STEMS.get(stem(word), ())}
        if expansions and word in expansions:
            forms.update(words(expansions[word]))
        if not forms & covered:
            out.append(word)
    return tuple(out)
