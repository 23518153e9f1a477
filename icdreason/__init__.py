"""icdreason: batch inference, evaluation, training and audit tooling for DeepICD-R1-style ICD-10-CM reasoning models.

Research software. Its output must not be used for diagnosis, clinical decisions or billing without expert review.

The public Python API. Heavy dependencies (torch, transformers, vllm, trl, verl) are imported only by the parts
that need them, so ``import icdreason`` stays light.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .codes import (
    CHAPTER_RANGES,
    CODE_PATTERN,
    Chapter,
    category,
    chapter_of,
    common_prefix_length,
    dotted,
    is_well_formed,
    normalize,
)
from .errors import IcdreasonError

__version__ = "0.1.0"

DISCLAIMER = (
    "Research use only: icdreason output must not be used for diagnosis, clinical decision support or billing "
    "without review by a qualified expert."
)

if TYPE_CHECKING:
    from .kb import KnowledgeBase, Validation

__all__ = [
    "CHAPTER_RANGES",
    "CODE_PATTERN",
    "Chapter",
    "DISCLAIMER",
    "IcdreasonError",
    "KnowledgeBase",
    "Validation",
    "__version__",
    "category",
    "chapter_of",
    "common_prefix_length",
    "dotted",
    "is_well_formed",
    "normalize",
    "open_kb",
]


def __getattr__(name: str):
    # The knowledge-base API pulls in duckdb and pyarrow: load it on first use, not on `import icdreason`.
    if name in ("KnowledgeBase", "Validation", "open_kb"):
        from . import kb

        return getattr(kb, name)
    raise AttributeError(f"module 'icdreason' has no attribute {name!r}")
