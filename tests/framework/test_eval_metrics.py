"""framework/eval_metrics.py against hand-computed values."""

from __future__ import annotations

import math

import pytest

from framework import eval_metrics as em


def test_pass_at_k_hand_values():
    assert em.pass_at_k(10, 3, 1) == pytest.approx(0.3)
    assert em.pass_at_k(10, 3, 4) == pytest.approx(1 - math.comb(7, 4) / math.comb(10, 4))
    assert em.pass_at_k(10, 3, 4) == pytest.approx(0.8333333)
    assert em.pass_at_k(10, 0, 5) == 0.0 and em.pass_at_k(10, 8, 3) == 1.0
    assert em.mean_pass_at_k([[True, False], [False, False]], 1) == pytest.approx(0.25)
    with pytest.raises(ValueError, match="1 <= k <= n"):
        em.pass_at_k(4, 1, 5)


def test_majority_vote_ignores_unparsed_and_breaks_ties_by_first_seen():
    assert em.majority_vote([3, None, 5, 5, 3, None]) == 3
    assert em.majority_vote([None, 7, 2, 2]) == 2
    assert em.majority_vote([None, None]) is None


def test_auroc_and_auc_pr_hand_cases():
    labels, scores = [0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8]
    # positive-negative pairs ranked right: (0.35 > 0.1), (0.8 > both), not (0.35 > 0.4)
    assert em.auroc(labels, scores) == pytest.approx(3 / 4)
    # ranked 0.8 (pos), 0.4 (neg), 0.35 (pos): AP = (1/1 + 2/3) / 2
    assert em.auc_pr(labels, scores) == pytest.approx((1 + 2 / 3) / 2)
    assert em.auroc([0, 1], [0.0, 1.0]) == 1.0
