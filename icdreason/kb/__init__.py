"""The ICD-10-CM knowledge base: one DuckDB file built from the CMS tabular XML."""

from .build import build_kb
from .store import CodeInfo, KnowledgeBase, open_kb
from .validation import STATUSES, Validation

__all__ = ["CodeInfo", "KnowledgeBase", "STATUSES", "Validation", "build_kb", "open_kb"]
