"""Stream one ICD-10-CM Alphabetic Index XML file (CMS/NCHS ``ICD10CM.index`` shape) into rows.

The same schema carries four files of a release: the Index to Diseases and Injuries (``index``), the External Cause
index (``eindex``), the Neoplasm Table (``neoplasm``) and the Table of Drugs and Chemicals (``drug``). A file is
classified by its root title or its table headings, never by its name. ``mainTerm`` and ``term`` elements nest (a
term's ``level`` equals its depth); each becomes one row in document order with a parent pointer, its title without
the nonessential modifiers (read with ``itertext``: a ``<nemod>`` can sit at the start, middle or end of a title),
the modifiers themselves, and its ``see``, ``seeAlso``, ``code``, ``manif``, ``subcat``, ``seecat`` and ``warning``
fields. Table cells (``<cell col="N">``) become rows of their own; ``-`` and ``--`` (no code) are dropped.

The file is read with ``lxml.etree.iterparse`` and each main term is cleared once read, so memory stays flat.
Entities are not resolved and nothing is fetched from the network (the file is untrusted input).
"""

from __future__ import annotations

import bz2
import gzip
import lzma
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from lxml import etree

from ...errors import InputError

#: The columns of one index term row, in table order.
TERM_COLUMNS = ("id", "source", "parent", "main", "level", "title", "nemod", "path", "code", "manif", "see",
                "see_also", "subcat", "seecat", "warning")
#: How a path is written: "Pneumonia › aspiration › due to".
PATH_SEPARATOR = " › "
_FIELDS = {"see": "see", "seeAlso": "see_also", "code": "code", "manif": "manif", "subcat": "subcat",
           "seecat": "seecat", "warning": "warning"}


@dataclass
class IndexFile:
    """Everything one index XML file holds, as column lists ready for the knowledge base."""

    kind: str = ""                                   # index | eindex | neoplasm | drug
    release: str = ""                                # the file's <version>, e.g. "2025"
    title: str = ""                                  # the root title, or the table's first heading
    columns: dict[int, str] = field(default_factory=dict)   # tables: column number -> heading
    terms: dict[str, list] = field(default_factory=lambda: {k: [] for k in TERM_COLUMNS})
    cells: dict[str, list] = field(default_factory=lambda: {"term": [], "col": [], "code": []})

    def __len__(self) -> int:
        return len(self.terms["id"])


def open_xml(path: Path) -> IO[bytes]:
    """A binary stream of the XML in ``path``, decompressed when it is xz, gzip or bzip2 (by its first bytes)."""
    try:
        with path.open("rb") as fh:
            magic = fh.read(6)
    except OSError as exc:
        raise InputError(f"cannot read the index file {path} ({exc.strerror}): check the path") from None
    if magic.startswith(b"\xfd7zXZ"):
        return lzma.open(path, "rb")
    if magic.startswith(b"\x1f\x8b"):
        return gzip.open(path, "rb")
    if magic.startswith(b"BZh"):
        return bz2.open(path, "rb")
    return path.open("rb")


def _clean(text: str | None) -> str:
    return " ".join((text or "").split())


def _title_and_nemod(element) -> tuple[str, str]:
    """A title's own text (everything outside ``<nemod>``, addenda's ``<old>`` left out) and its modifiers."""
    text, nemod = [element.text or ""], []
    for child in element:
        if child.tag == "nemod":
            nemod.append("".join(child.itertext()))
        elif child.tag != "old":
            text.append("".join(child.itertext()))
        text.append(child.tail or "")
    return _clean(" ".join(text)), _clean(" ".join(nemod))


def _classify(root_title: str, columns: dict[int, str], path: Path) -> str:
    title = root_title.upper()
    if "EXTERNAL CAUSE" in title:
        return "eindex"
    if "DISEASES" in title or "INDEX" in title:
        return "index"
    first = columns.get(1, "").lower()
    if first.startswith("neoplasm"):
        return "neoplasm"
    if first.startswith(("substance", "drug")):
        return "drug"
    raise InputError(f"{path} is an ICD10CM.index file of an unknown kind (title {root_title!r}, first column "
                     f"{columns.get(1)!r}): pass the Index to Diseases and Injuries, the External Cause index, the "
                     "Neoplasm Table or the Table of Drugs and Chemicals")


def read_index(path: str | Path, *, first_id: int = 0) -> IndexFile:
    """Read one index XML file (plain or compressed); term ids start at ``first_id`` and follow document order."""
    path = Path(path)
    out = IndexFile()
    reader = _TermReader(out.terms, out.cells, first_id)
    with open_xml(path) as stream:
        events = etree.iterparse(stream, events=("start", "end"), tag=("ICD10CM.index", "mainTerm", "head"),
                                 resolve_entities=False, no_network=True, huge_tree=False, remove_comments=True)
        try:
            root = None
            for event, element in events:
                if event == "start":
                    if root is None:
                        root = element
                    continue
                if element.tag == "mainTerm":
                    reader.read(element, None)
                    element.clear(keep_tail=False)
                    letter = element.getparent()
                    while element.getprevious() is not None:
                        del letter[0]
                elif element.tag == "head":
                    out.columns[int(element.get("col", "0"))] = _clean("".join(element.itertext()))
            if root is None:
                raise InputError(f"{path} is not an ICD-10-CM index XML (no <ICD10CM.index> root): for the tabular "
                                 "list use `icdreason kb build --source`")
            out.release = _clean(root.findtext("version"))
            out.title = _clean(root.findtext("title"))
        except etree.XMLSyntaxError as exc:
            raise InputError(f"{path} is not well-formed XML ({exc}): pass an ICD-10-CM index XML file") from None
        except (lzma.LZMAError, EOFError, OSError) as exc:
            raise InputError(f"cannot decompress {path} ({exc}): pass the XML or an intact .xz/.gz file") from None
    if not out.terms["id"]:
        raise InputError(f"{path} holds no index terms: pass an ICD-10-CM index XML file")
    out.kind = _classify(out.title, out.columns, path)
    if not out.title:
        out.title = out.columns.get(1, "")
    out.terms["source"] = [out.kind] * len(out.terms["id"])
    return out


class _TermReader:
    """Turns one ``mainTerm`` subtree into rows (depth first, so ids follow document order)."""

    def __init__(self, rows: dict[str, list], cells: dict[str, list], first_id: int):
        self.rows, self.cells, self.next_id = rows, cells, first_id

    def read(self, element, parent: tuple[int, int, str] | None) -> None:
        """Append the row of ``element`` (a mainTerm or term) and, below it, of its terms."""
        term_id = self.next_id
        self.next_id += 1
        main = parent[1] if parent else term_id
        row = dict.fromkeys(_FIELDS.values())
        title = nemod = ""
        children = []
        for child in element:
            tag = child.tag
            if tag == "term":
                children.append(child)
            elif tag in ("title", "diff"):
                title, nemod = _title_and_nemod(child)
            elif tag in _FIELDS:
                row[_FIELDS[tag]] = _clean("".join(child.itertext())) or None
            elif tag == "cell":
                value = _clean("".join(child.itertext()))
                if value.strip("-"):
                    self.cells["term"].append(term_id)
                    self.cells["col"].append(int(child.get("col", "0")))
                    self.cells["code"].append(value)
        path = f"{parent[2]}{PATH_SEPARATOR}{title}" if parent else title
        rows = self.rows
        rows["id"].append(term_id)
        rows["parent"].append(parent[0] if parent else None)
        rows["main"].append(main)
        rows["level"].append(path.count(PATH_SEPARATOR))
        rows["title"].append(title)
        rows["nemod"].append(nemod)
        rows["path"].append(path)
        for column, value in row.items():
            rows[column].append(value)
        for child in children:
            self.read(child, (term_id, main, path))
