"""Evaluation with the paper's hierarchical metrics (chapter, category, full code).

:func:`evaluate_codes` and :func:`evaluate_files` (``icdreason eval``) are in :mod:`.report`; the metrics core in
:mod:`.metrics`, strict and salvaged answers in :mod:`.answers`, input loading and joining in :mod:`.inputs`, bootstrap
intervals in :mod:`.bootstrap`, breakdowns in :mod:`.breakdowns`, the plot in :mod:`.plot`.
"""

from .metrics import LEVEL_TITLES, LEVELS, NIL, PRF, Encoded, LabelSpace, LevelScores, encode, score_level
from .report import Report, RunResult, evaluate_codes, evaluate_files

__all__ = ["LEVELS", "LEVEL_TITLES", "NIL", "PRF", "Encoded", "LabelSpace", "LevelScores", "Report", "RunResult",
           "encode", "evaluate_codes", "evaluate_files", "score_level"]
