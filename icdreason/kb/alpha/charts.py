"""Reading the Neoplasm Table and the Table of Drugs and Chemicals where an index reference sends the coder.

"Overdose → see Table of Drugs and Chemicals, by drug, poisoning": the drug named near the term gives the row, the
intent words the column (accidental unless the text says intentional, assault or undetermined: Guidelines
I.C.19.e.5.b). "Adenocarcinoma → see also Neoplasm, malignant, by site": the deepest site named gives the row, the
reference (or the text's behaviour words) the column.
"""

from __future__ import annotations

from collections.abc import Collection

from .found import IndexMatch
from .parse import PATH_SEPARATOR
from .words import words

#: Words that choose a Table of Drugs column (intent); without them, poisoning is accidental (Guidelines I.C.19.e.5.b).
DRUG_INTENT = {3: frozenset(words("intentional suicide suicidal self harm selfharm overdosed deliberately")),
               4: frozenset(words("assault assaulted homicide")),
               5: frozenset(words("undetermined"))}
#: Words that choose a Neoplasm Table column when the path did not (behaviour).
NEOPLASM_BEHAVIOUR = [(3, frozenset(words("metastatic metastasis metastases secondary"))),
                      (4, frozenset(words("situ"))), (5, frozenset(words("benign"))),
                      (2, frozenset(words("malignant malignancy cancer carcinoma adenocarcinoma sarcoma")))]


class TableReading:
    """The table lookups of :class:`~icdreason.kb.alpha.matcher.AlphabeticIndex` (which holds the rows)."""

    def _drug(self, near: Collection[str], covered: frozenset[str], shown: str, hops: int, out: list[IndexMatch],
              context: Collection[str], col: int) -> None:
        """A Table of Drugs row named in ``near``, in the column the reference and the intent words choose."""
        if col == 2:
            col = next((c for c, cue in DRUG_INTENT.items() if cue & set(context)), 2)
        mains = self.mains["drug"]
        for main in {m for w in near for m in mains.get(w, ())}:
            hit = self._matched(main, near)
            if hit is None:
                continue
            rows: list[tuple[int, frozenset[str], str]] = [(main, covered | hit, self.title[main])]
            for child in self.children[main]:
                child_hit = self._matched(child, near)
                if child_hit is not None:
                    rows.append((child, covered | hit | child_hit, f"{self.title[main]}{PATH_SEPARATOR}"
                                                                   f"{self.title[child]}"))
            for row, row_covered, title in rows:
                code = self.cells.get(row, {}).get(col)
                if code:
                    score = len(row_covered) - 0.1 * hops
                    out.append(IndexMatch(code, row, f"{shown}Table of Drugs › {title} [col {col}]", "drug",
                                          row_covered, frozenset(row_covered), score, default=False))

    def _neoplasm(self, start: int, near: Collection[str], covered: frozenset[str], shown: str, hops: int,
                  out: list[IndexMatch], context: Collection[str], col: int | None) -> None:
        """The Neoplasm Table below ``start``: the deepest site named in ``near``, in the behaviour's column."""
        if col is None:
            col = next((c for c, cue in NEOPLASM_BEHAVIOUR if cue & set(context)), 7)
        best: tuple[int, frozenset[str], str] = (start, covered, self.path[start])
        frontier = [best]
        while frontier:
            node, node_covered, node_path = frontier.pop()
            for child in self.children[node]:
                hit = self._matched(child, near)
                if hit is not None:
                    item = (child, node_covered | hit, f"{node_path}{PATH_SEPARATOR}{self.title[child]}")
                    frontier.append(item)
                    if len(item[1]) > len(best[1]) and self._cell(child, col):
                        best = item
        node, node_covered, node_path = best
        code = self._cell(node, col)
        if code:
            path_words = frozenset(w for t in node_path.split(PATH_SEPARATOR) for w in words(t))
            out.append(IndexMatch(code, node, f"{shown}{node_path} [{'col ' + str(col)}]", "neoplasm", node_covered,
                                  path_words, len(node_covered) - 0.1 * hops, default=False))

    def _cell(self, node: int | None, col: int) -> str | None:
        """A table row's code in ``col``, or its nearest ancestor's."""
        while node is not None:
            code = self.cells.get(node, {}).get(col)
            if code:
                return code
            node = self.parent[node]
        return None
