"""Hierarchical evaluation internals: metrics core, input loading and joining, bootstrap, breakdowns, plot.

The public entry points are in :mod:`icdreason.evaluate`.
"""

from .metrics import LEVEL_TITLES, LEVELS, NIL, PRF, Encoded, LabelSpace, LevelScores, encode, score_level

__all__ = ["LEVELS", "LEVEL_TITLES", "NIL", "PRF", "Encoded", "LabelSpace", "LevelScores", "encode", "score_level"]
