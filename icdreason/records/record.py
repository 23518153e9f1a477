"""The prediction record (one per note) and the one table of its column types.

:data:`COLUMNS` is derived once from the :class:`Record` fields: each field's kind (from its annotation, or its
``kind`` metadata where the annotation does not say enough) gives the Arrow type of the Parquet column, the DuckDB
type of a newly added column, and how a CSV cell decodes. Writers and readers of every format use it; nothing else
keeps a list of types.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..encodable import make_encodable

__all__ = ["Record", "FIELDS", "JSON_FIELDS", "COLUMNS", "ColumnType", "PARAMETER_KINDS", "TEXT_REPLACED",
           "make_records_encodable", "MODEL_PARAMETERS", "upgrade_row"]

#: The flag of a record some of whose text could not be encoded (a lone surrogate, replaced by U+FFFD).
TEXT_REPLACED = "text_replaced"


def _kind(name: str) -> dict[str, str]:
    return {"kind": name}


@dataclass
class Record:
    """One prediction: what the engine said about one note, checked against the code table.

    **Fields that describe a model or a prompt are null for engines that use neither** (the retriever,
    ``uses_llm`` false): ``format_ok`` and ``parse_note`` (no model output was checked), ``confidence`` (no samples
    were drawn, so there is no vote) and, in ``parameters``, the sampling settings and the prompt template (see
    :data:`MODEL_PARAMETERS`). Such an engine's share of its own candidate scores is ``candidate_share``, which is
    null for the language-model engines. A record written before ``candidate_share`` existed is read with its
    retriever ``confidence`` moved there (:func:`upgrade_row`).

    ``enrichment_source`` says where the enrichment fields came from: ``scraped`` (``symptoms``/``guideline`` from
    ``icdreason scrape`` / ``kb import-guidelines``), ``tabular`` (only the Tabular List's own notes,
    ``tabular_notes``: the knowledge base has no scraped text for the code), or null (enrichment off, or no code).
    """

    id: str
    source: str
    run_id: str
    engine: str
    model: str | None
    uses_llm: bool
    parameters: dict[str, Any] = field(default_factory=dict, metadata=_kind("parameters"))
    # the note text given to the engine; omitted with --no-note. In a CSV an empty cell is an empty note.
    note: str | None = field(default=None, metadata={"csv_empty": ""})
    trace: str = ""
    code_raw: str | None = None
    code: str | None = None  # dotted, normalised
    format_ok: bool | None = False  # the paper's format check; None: no model output to check (retriever)
    parse_note: str | None = None  # how the tolerant fallback found the code, when the format did not hold
    status: str = "no_output"  # billable | header | unknown | malformed | no_output
    description: str | None = None
    chapter: int | None = field(default=None, metadata=_kind("int32"))
    category: str | None = None
    suggestions: list[str] = field(default_factory=list)
    # the share of the n samples (self-consistency) that voted for the code, its category, its chapter: not a
    # calibrated probability (docs/usage-predict.md); None for engines that draw no samples (the retriever)
    confidence: dict[str, float] | None = field(
        default_factory=lambda: {"code": 0.0, "category": 0.0, "chapter": 0.0},
        metadata={"kind": "confidence", "csv_empty": None})
    top_k: list[dict[str, Any]] = field(default_factory=list, metadata=_kind("top_k"))  # [{"code", "support"}]
    symptoms: str | None = None
    symptoms_from: str | None = None
    guideline: str | None = None
    guideline_section: str | None = None
    tokens_in: int = 0
    tokens_out: int = 0
    seconds: float = 0.0
    flags: list[str] = field(default_factory=list)
    error: str | None = None
    raw: list[str] | None = None  # raw model output, only with --keep-raw
    # the Tabular List's notes for the code and its parents, when no scraped symptom or guideline text applies
    tabular_notes: str | None = None
    enrichment_source: str | None = None  # scraped | tabular | None (see the class docstring)
    # the retriever's share of its candidates' scores held by the code, its category, its chapter (not a probability;
    # None for the language-model engines, whose vote share is ``confidence``)
    candidate_share: dict[str, float] | None = field(default=None, metadata=_kind("confidence"))

    def to_dict(self) -> dict[str, Any]:
        """The record as a plain dict; ``note`` and ``raw`` are left out when they are None."""
        out = dataclasses.asdict(self)
        for optional in ("note", "raw"):
            if out[optional] is None:
                del out[optional]
        return out


#: The ``parameters`` of a record that describe a model or a prompt: null for engines that use neither.
MODEL_PARAMETERS = ("n", "temperature", "top_p", "top_k", "min_p", "repetition_penalty", "max_new_tokens", "seed",
                    "constrain", "prompt_template", "prompt_template_sha256", "prompt_source", "max_prompt_tokens")


def upgrade_row(row: dict[str, Any]) -> dict[str, Any]:
    """A record row as this version writes it, from a file any earlier version wrote (changed in place).

    Before ``candidate_share``, a retriever record (``uses_llm`` false) kept its candidate share in ``confidence``
    and said ``format_ok: true`` and its sampling settings: the share moves to ``candidate_share``, and
    ``confidence``, ``format_ok`` and the model parameters become null, as this version writes them."""
    if row.get("uses_llm") is False or str(row.get("uses_llm")).lower() == "false":
        if row.get("candidate_share") is None and isinstance(row.get("confidence"), dict) and row["confidence"]:
            row["candidate_share"] = row["confidence"]
        row["confidence"] = None
        if "format_ok" in row:
            row["format_ok"] = None
        params = row.get("parameters")
        if isinstance(params, dict):
            for key in MODEL_PARAMETERS:
                if key in params:
                    params[key] = None
    return row


def _bool_cell(text: str) -> bool:
    return text.strip().lower() in ("true", "1")


def _int_cell(text: str) -> int:
    return int(float(text))


@dataclass(frozen=True)
class Kind:
    """How one kind of value is stored: Arrow type (built lazily: pyarrow is imported only when writing Parquet or
    DuckDB), DuckDB type, and the decoding of a CSV cell."""

    arrow: Callable[[Any], Any]  # pyarrow module -> DataType
    sql: str
    from_csv: Callable[[str], Any]
    json: bool = False  # lists and dicts: JSON text in CSV cells and in DuckDB JSON columns


_FLOAT_STRUCT = ("code", "category", "chapter")
#: The known keys of ``Record.parameters`` (what ``icdreason predict`` records of a run) and their kinds: a struct
#: column in Parquet, so that DuckDB reads ``parameters.temperature``. Any other key (an engine's own) goes to the
#: struct's ``extra`` map, its value as JSON text (see :mod:`icdreason.records.arrow`).
PARAMETER_KINDS: dict[str, str] = {
    "n": "int64", "temperature": "float64", "top_p": "float64", "top_k": "int64", "max_new_tokens": "int64",
    "seed": "int64", "constrain": "bool", "prompt_template": "text", "prompt_template_sha256": "text",
    "max_note_chars": "int64", "kb_release": "text", "enrichment": "text", "min_p": "float64",
    "repetition_penalty": "float64", "prompt_source": "text", "max_prompt_tokens": "int64", "preset": "text",
    "long_prompts": "text",
}


def _parameters_type(pa):
    scalar = {"int64": pa.int64(), "float64": pa.float64(), "bool": pa.bool_(), "text": pa.string()}
    return pa.struct([(k, scalar[kind]) for k, kind in PARAMETER_KINDS.items()]
                     + [("extra", pa.map_(pa.string(), pa.string()))])


KINDS: dict[str, Kind] = {
    "text": Kind(lambda pa: pa.string(), "VARCHAR", str),
    "bool": Kind(lambda pa: pa.bool_(), "BOOLEAN", _bool_cell),
    "int32": Kind(lambda pa: pa.int32(), "INTEGER", _int_cell),
    "int64": Kind(lambda pa: pa.int64(), "BIGINT", _int_cell),
    "float64": Kind(lambda pa: pa.float64(), "DOUBLE", float),
    # a dict of any shape: JSON text in Parquet too
    "json": Kind(lambda pa: pa.string(), "JSON", json.loads, json=True),
    # the parameters of a run: a struct of the known keys (and an ``extra`` map) in Parquet, JSON elsewhere
    "parameters": Kind(_parameters_type, "JSON", json.loads, json=True),
    "strings": Kind(lambda pa: pa.list_(pa.string()), "JSON", json.loads, json=True),
    "confidence": Kind(lambda pa: pa.struct([(k, pa.float64()) for k in _FLOAT_STRUCT]), "JSON", json.loads,
                       json=True),
    "top_k": Kind(lambda pa: pa.list_(pa.struct([("code", pa.string()), ("support", pa.float64())])), "JSON",
                  json.loads, json=True),
}
#: The kind of a field by its annotation (``X | None`` is stored like ``X``); other fields name their kind.
_BY_ANNOTATION = {"str": "text", "bool": "bool", "int": "int64", "float": "float64", "list[str]": "strings",
                  "dict[str, Any]": "json"}


@dataclass(frozen=True)
class ColumnType:
    """One record column: its kind and what an empty CSV cell reads back as (CSV cannot tell None from "")."""

    name: str
    kind: str
    csv_empty: Any

    @property
    def sql(self) -> str:
        return KINDS[self.kind].sql

    @property
    def is_json(self) -> bool:
        return KINDS[self.kind].json

    def arrow_type(self):
        """The Arrow type of this column in Parquet files and in the batches inserted into DuckDB."""
        import pyarrow as pa

        return KINDS[self.kind].arrow(pa)

    def from_csv(self, cell: str | None) -> Any:
        """A CSV cell (always text) as the typed value."""
        if cell is None or cell == "":
            empty = self.csv_empty
            return type(empty)() if isinstance(empty, (list, dict)) else empty
        return KINDS[self.kind].from_csv(cell)


def _column_type(f: dataclasses.Field) -> ColumnType:
    annotation = str(f.type).removesuffix(" | None")
    kind = f.metadata.get("kind") or _BY_ANNOTATION[annotation]
    if "csv_empty" in f.metadata:
        empty = f.metadata["csv_empty"]
    elif f.default_factory is not dataclasses.MISSING:
        empty = type(f.default_factory())()  # an empty list or dict
    else:  # an empty cell is no value (not the default), except for text that defaults to ""
        empty = "" if f.default == "" else None
    return ColumnType(f.name, kind, empty)


#: Every record column in order, with its type: the one place types are kept.
COLUMNS: dict[str, ColumnType] = {f.name: _column_type(f) for f in dataclasses.fields(Record)}
FIELDS: tuple[str, ...] = tuple(COLUMNS)
#: Fields holding lists or dicts: JSON text in CSV files, JSON columns in DuckDB.
JSON_FIELDS = frozenset(name for name, col in COLUMNS.items() if col.is_json)


def make_records_encodable(records: list[Record]) -> list[Record]:
    """Replace, in place, every lone surrogate in the records' text (ids, notes, model output, server messages) with
    U+FFFD, and flag the records that had one (``text_replaced``); every writer calls this before writing."""
    for record in records:
        changed = False
        for name in FIELDS:
            value = getattr(record, name)
            if isinstance(value, (str, list, dict)):
                clean, replaced = make_encodable(value)
                if replaced:
                    setattr(record, name, clean)
                    changed = True
        if changed and TEXT_REPLACED not in record.flags:
            record.flags.append(TEXT_REPLACED)
    return records
