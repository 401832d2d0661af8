"""Metrics over whole evaluation sets (not batch means): pass@k, majority vote, AUROC
and AUC-PR. The ranking metrics are scikit-learn's; pass@k is the unbiased estimator
of Chen et al. (2021), computed as a stable product rather than with binomials."""

from __future__ import annotations

import collections
from collections.abc import Hashable, Sequence

import numpy as np


def pass_at_k(n: int, c: int, k: int) -> float:
    """P(at least one of k samples drawn without replacement from n, c of them correct,
    is correct) = 1 - C(n - c, k) / C(n, k)."""
    if not 0 <= c <= n or not 1 <= k <= n:
        raise ValueError(f"pass_at_k needs 0 <= c <= n and 1 <= k <= n, got n={n} c={c} k={k}.")
    if n - c < k:
        return 1.0
    # C(n-c, k) / C(n, k) = prod_{i=n-c+1}^{n} (1 - k / i)
    return float(1.0 - np.prod(1.0 - k / np.arange(n - c + 1, n + 1)))


def mean_pass_at_k(correct: Sequence[Sequence[bool]], k: int) -> float:
    """pass@k averaged over problems; correct[p] holds problem p's n samples' verdicts."""
    return float(np.mean([pass_at_k(len(c), int(np.sum(c)), k) for c in correct]))


def majority_vote(answers: Sequence[Hashable | None]) -> Hashable | None:
    """The most common non-None answer (ties: the one seen first), or None."""
    counts = collections.Counter(a for a in answers if a is not None)
    if not counts:
        return None
    best = max(counts.values())
    return next(a for a in answers if a is not None and counts[a] == best)


def auroc(labels: Sequence[int], scores: Sequence[float]) -> float:
    """Area under the ROC curve of `scores` ranking positive `labels` (1) above 0s."""
    from sklearn import metrics as sk_metrics  # 1 s to import: only where used

    return float(sk_metrics.roc_auc_score(np.asarray(labels), np.asarray(scores)))


def auc_pr(labels: Sequence[int], scores: Sequence[float]) -> float:
    """Area under the precision-recall curve (average precision, scikit-learn's)."""
    from sklearn import metrics as sk_metrics

    return float(sk_metrics.average_precision_score(np.asarray(labels), np.asarray(scores)))
