"""Percentile bootstrap confidence intervals for the macro metrics and accuracy, all levels resampled together.

Resampling n rows with replacement only changes how often each distinct (chapter, category, code) x (gold, predicted)
combination occurs, and those multiplicities follow a multinomial distribution over the distinct combinations with
their observed frequencies. So each replicate draws one multinomial vector over the (usually few thousand) distinct
combinations and weights ``bincount`` with it: the same distribution as resampling rows, at a fraction of the cost.
"""

from __future__ import annotations

import numpy as np

from .metrics import LEVELS, Encoded, class_counts, scores_from_counts

__all__ = ["METRICS", "bootstrap_intervals"]

#: The statistics that get an interval, per level.
METRICS = ("macro_p", "macro_r", "macro_f1", "accuracy")


def bootstrap_intervals(
    encoded: dict[str, Encoded], n_resamples: int, *, seed: int = 0, confidence: float = 0.95
) -> dict[str, dict[str, list[float]]]:
    """``{level: {metric: [low, high]}}`` from ``n_resamples`` seeded resamples of the rows (percentile method)."""
    if n_resamples <= 0:
        return {}
    first = encoded[LEVELS[0]]
    n = len(first.y_true)
    if n == 0:
        return {}
    columns = []
    for level in LEVELS:
        e = encoded[level]
        columns.append(e.y_true * e.n_classes + e.y_pred)
    combos, counts = np.unique(np.stack(columns, axis=1), axis=0, return_counts=True)
    probs = counts / counts.sum()
    rng = np.random.default_rng(seed)
    pairs = {level: (combos[:, j] // encoded[level].n_classes, combos[:, j] % encoded[level].n_classes)
             for j, level in enumerate(LEVELS)}
    samples = {level: {m: np.empty(n_resamples) for m in METRICS} for level in LEVELS}
    for b in range(n_resamples):
        weights = rng.multinomial(n, probs).astype(np.float64)
        for level in LEVELS:
            e = encoded[level]
            y_true, y_pred = pairs[level]
            s = scores_from_counts(*class_counts(y_true, y_pred, e.n_classes, weights), e.nil)
            for m in METRICS:
                samples[level][m][b] = s[m]
    alpha = (1.0 - confidence) / 2.0
    return {
        level: {m: [float(np.quantile(v, alpha)), float(np.quantile(v, 1.0 - alpha))] for m, v in by_metric.items()}
        for level, by_metric in samples.items()
    }
