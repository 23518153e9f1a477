"""Code validation against the code table: one status per code, with suggestions for codes that are not billable.

Statuses:
- ``billable``: in the table and a leaf (valid on a claim);
- ``header``: in the table but not billable (a category or subcategory with codes below it);
- ``unknown``: well-formed but not in the table;
- ``malformed``: not shaped like an ICD-10-CM code after normalisation (``codes.ICD10CM_PATTERN``: a letter, a digit
  (or the A of QA0), a letter or digit, then up to four letters or digits).

The paper's stricter pattern ``^[A-Z][0-9]{2}[A-Z0-9]{0,4}$`` would call real codes such as ``Z3A.01`` malformed; each
verdict reports it separately in ``paper_pattern`` so that both views are available.
"""

from __future__ import annotations

import bisect
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ..codes import CODE_PATTERN, ICD10CM_PATTERN, _STRAY, dotted, normalize_with_notes

if TYPE_CHECKING:
    import duckdb

STATUSES = ("billable", "header", "unknown", "malformed")
_STATUS_NAMES = np.array(STATUSES, dtype=object)


@dataclass
class Validation:
    """The verdict on one code."""

    input: str
    code: str
    status: str
    description: str | None = None
    chapter: int | None = None
    category: str | None = None
    billable_below: int = 0
    paper_pattern: bool = False
    suggestions: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    message: str = ""

    @property
    def ok(self) -> bool:
        return self.status == "billable"

    def to_dict(self) -> dict:
        return asdict(self)


class CodeIndex:
    """Every code of the table (categories and below) in memory, for fast validation and suggestions."""

    def __init__(self, nodot: list[str], billable: list[bool], descriptions: list[str], chapters: list[int],
                 release: str = ""):
        self.release = release
        self.nodot = nodot
        self.billable = billable
        self.descriptions = descriptions
        self.chapters = chapters
        self.position = {code: i for i, code in enumerate(nodot)}
        order = sorted(range(len(nodot)), key=nodot.__getitem__)
        self._sorted = [nodot[i] for i in order]
        self._sorted_pos = order
        self._billable_codes = [c for c, b in zip(nodot, billable) if b]
        self._nodot_arrow = pa.array(nodot, type=pa.string())
        self._billable_np = np.asarray(billable, dtype=bool)
        # The memo starts with the canonical spellings (dotted and undotted) of every code in the table, so that
        # well-written input needs no kernel work at all; other spellings are judged once and remembered.
        self._seed = {}
        for code, is_billable in zip(nodot, billable):
            status = "billable" if is_billable else "header"
            self._seed[code] = status
            self._seed[dotted(code)] = status
        self._memo: dict[str | None, str] = dict(self._seed)

    @classmethod
    def from_db(cls, con: duckdb.DuckDBPyConnection) -> CodeIndex:
        """The index of the knowledge base open on ``con`` (its codes table and its release)."""
        cursor = con.cursor()
        try:
            table = cursor.sql(
                "SELECT code_nodot, billable, description, chapter FROM codes "
                "WHERE kind IN ('category', 'subcategory', 'code') ORDER BY code_nodot"
            ).to_arrow_table()
            release = cursor.execute("SELECT value FROM meta WHERE key = 'release'").fetchone()
        finally:
            cursor.close()
        return cls(
            table.column(0).to_pylist(), table.column(1).to_pylist(), table.column(2).to_pylist(),
            table.column(3).to_pylist(), release=release[0] if release else "",
        )

    # -- vectorised status -----------------------------------------------------------------------------------------
    _MEMO_LIMIT = 2_000_000
    #: From this many codes on, Arrow kernels over the whole batch beat per-code dictionary lookups.
    _BULK = 50_000

    def statuses(self, codes: list[str]) -> list[str]:
        """The status of each code. Large batches go through Arrow kernels whole (normalise, pattern, hash lookup);
        small ones through a memo of inputs seen before, seeded with every canonical spelling."""
        if len(codes) >= self._BULK:
            return self._judge(codes)
        memo = self._memo
        out = list(map(memo.get, codes))
        if None in out:
            missing = [i for i, status in enumerate(out) if status is None]
            todo = list({codes[i] for i in missing})
            if len(memo) + len(todo) > self._MEMO_LIMIT:
                memo.clear()
                memo.update(self._seed)
            memo.update(zip(todo, self._judge(todo)))
            for i in missing:
                out[i] = memo[codes[i]]
        return out

    def _judge(self, codes: list[str]) -> list[str]:
        raw = pa.array(codes, type=pa.string())
        norm = pc.utf8_upper(pc.utf8_trim(raw, characters=_STRAY))
        norm = pc.replace_substring(pc.replace_substring(norm, ".", ""), " ", "")
        non_ascii = pc.invert(pc.fill_null(pc.string_is_ascii(raw), True))
        if pc.any(non_ascii).as_py():
            fixed = [normalize_with_notes(c)[0] if c is not None and not c.isascii() else n
                     for c, n in zip(codes, norm.to_pylist())]
            norm = pa.array(fixed, type=pa.string())
        well_formed = pc.fill_null(pc.match_substring_regex(norm, ICD10CM_PATTERN.pattern), False).to_numpy(
            zero_copy_only=False
        )
        position = pc.index_in(norm, value_set=self._nodot_arrow)
        known = pc.is_valid(position).to_numpy(zero_copy_only=False)
        safe = pc.fill_null(position, 0).to_numpy(zero_copy_only=False)
        billable = self._billable_np[safe] & known
        result = np.where(~well_formed, 3, np.where(~known, 2, np.where(billable, 0, 1)))
        return _STATUS_NAMES[result].tolist()

    # -- one code, with explanations -------------------------------------------------------------------------------
    def validate(self, raw: str, *, suggestions: int = 5) -> Validation:
        code, notes = normalize_with_notes(raw or "")
        if not ICD10CM_PATTERN.match(code):
            shown = raw.strip() if raw else ""
            return Validation(
                input=raw, code=code, status="malformed", notes=notes,
                message=f"{shown!r} is not an ICD-10-CM code: expected a letter, a digit, a letter or digit and up "
                        "to four more letters or digits (e.g. M51.16)" if shown else "empty code",
            )
        paper = CODE_PATTERN.match(code) is not None
        i = self.position.get(code)
        if i is None:
            found = self.suggest(code, suggestions)
            hint = f"; nearest: {', '.join(found)}" if found else ""
            return Validation(
                input=raw, code=dotted(code), status="unknown", category=code[:3], suggestions=found, notes=notes,
                paper_pattern=paper,
                message=f"{dotted(code)} is not in ICD-10-CM {self.release}{hint}",
            )
        base = dict(input=raw, code=dotted(code), description=self.descriptions[i], chapter=self.chapters[i],
                    category=code[:3], notes=notes, paper_pattern=paper)
        if self.billable[i]:
            return Validation(status="billable", message="billable", **base)
        below = self.billable_below(code)
        found = [dotted(c) for c in below[:suggestions]]
        return Validation(
            status="header", billable_below=len(below), suggestions=found,
            message=f"{dotted(code)} is a header, not billable: {len(below)} billable codes below it, e.g. "
                    f"{', '.join(found)}", **base,
        )

    def validate_many(self, codes: list[str], *, suggestions: int = 5) -> list[Validation]:
        """Validate many codes; suggestions only for the codes that are not billable. Repeated codes are reused."""
        seen: dict[str, Validation] = {}
        out = []
        for raw in codes:
            v = seen.get(raw)
            if v is None:
                v = seen[raw] = self.validate(raw, suggestions=suggestions)
            out.append(v)
        return out

    # -- hierarchy helpers -----------------------------------------------------------------------------------------
    def exists(self, code: str) -> bool:
        return normalize_with_notes(code)[0] in self.position

    def is_billable(self, code: str) -> bool:
        i = self.position.get(normalize_with_notes(code)[0])
        return i is not None and self.billable[i]

    def billable_below(self, prefix: str) -> list[str]:
        """Billable codes strictly below an undotted prefix, the generic ("unspecified", shortest) ones first."""
        lo = bisect.bisect_left(self._sorted, prefix)
        found = []
        for j in range(lo, len(self._sorted)):
            code = self._sorted[j]
            if not code.startswith(prefix):
                break
            i = self._sorted_pos[j]
            if code != prefix and self.billable[i]:
                found.append(code)
        return sorted(found, key=lambda c: ("unspecified" not in self.descriptions[self.position[c]].lower(),
                                            len(c), c))

    def suggest(self, code: str, k: int = 5) -> list[str]:
        """Nearest billable codes for an unknown code: below its longest existing prefix first, then by edit distance."""
        from rapidfuzz import process
        from rapidfuzz.distance import Levenshtein

        found: list[str] = []
        for length in range(len(code) - 1, 2, -1):
            prefix = code[:length]
            if prefix in self.position:
                if self.billable[self.position[prefix]]:
                    found.append(prefix)
                found.extend(self.billable_below(prefix))
                break
        found = found[:k]
        if len(found) < k:
            for match, _, _ in process.extract(code, self._billable_codes, scorer=Levenshtein.distance, limit=k * 2):
                if match not in found:
                    found.append(match)
                if len(found) >= k:
                    break
        return [dotted(c) for c in found[:k]]
