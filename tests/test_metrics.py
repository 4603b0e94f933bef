"""Metrics on hand-worked cases and against brute-force definitions."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import norm

from gmmspeech import DataError
from gmmspeech.decisions.metrics import (
    act_dcf,
    cllr,
    confusion_matrix,
    det_curve,
    eer,
    identification_accuracy,
    min_cllr,
    min_dcf,
)


def test_separable_and_identical() -> None:
    s = np.array([0.1, 0.2, 0.3, 1.0, 2.0, 3.0])
    t = np.array([0, 0, 0, 1, 1, 1], dtype=bool)
    assert eer(s, t) == 0.0
    assert min_dcf(s, t) == 0.0
    assert min_cllr(s, t) == 0.0
    same = np.ones(6)
    assert eer(same, t) == 0.5
    assert min_dcf(same, t, p_target=0.5) == 1.0
    assert min_cllr(same, t) == pytest.approx(1.0)


def test_hand_worked_eer() -> None:
    # targets {1, 3}, non-targets {0, 2}. Sorted labels n t n t; PAV pools (1, 2) into one
    # block with 1 target and 1 non-target. Hull vertices (P_fa, P_miss):
    # (1, 0) -> (0.5, 0) -> (0, 0.5) -> (0, 1). The middle segment is P_fa + P_miss = 0.5,
    # crossing P_fa = P_miss at 0.25.
    assert eer([1, 3, 0, 2], [1, 1, 0, 0]) == pytest.approx(0.25)
    # targets {2, 4, 6}, non-targets {1, 3, 5}: labels n t n t n t; PAV blocks
    # [n] [t n] [t n] [t]: vertices (1,0) (2/3,0) (1/3,1/3) (0,2/3) (0,1); EER 1/3
    assert eer([2, 4, 6, 1, 3, 5], [1, 1, 1, 0, 0, 0]) == pytest.approx(1 / 3)


def test_eer_is_max_over_priors_of_min_bayes_error() -> None:
    """Independent characterisation of the ROCCH-EER, by brute force over thresholds."""
    rng = np.random.default_rng(0)
    tar = rng.normal(1.5, 1.0, 60)
    non = rng.normal(0.0, 1.0, 200)
    s = np.concatenate([tar, non])
    t = np.concatenate([np.ones(60, bool), np.zeros(200, bool)])
    thr = np.concatenate([[-np.inf], np.sort(s), [np.inf]])
    pm = np.array([(tar < th).mean() for th in thr])
    pf = np.array([(non >= th).mean() for th in thr])
    priors = np.linspace(0.0, 1.0, 20001)
    bayes = np.min(priors[:, None] * pm[None] + (1 - priors[:, None]) * pf[None], axis=1)
    assert eer(s, t) == pytest.approx(bayes.max(), abs=1e-4)


def test_min_dcf_hand_worked_and_brute_force() -> None:
    # targets {1, 3}, non {0, 2}, P_tar = 0.5: thresholds give (P_miss, P_fa) in
    # {(0,1), (0,.5), (.5,.5), (.5,0), (1,0)}; best cost 0.5*0 + 0.5*0.5 = 0.25, normalised
    # by min(0.5, 0.5) -> 0.5
    assert min_dcf([1, 3, 0, 2], [1, 1, 0, 0], p_target=0.5) == pytest.approx(0.5)
    rng = np.random.default_rng(1)
    s = rng.normal(size=300)
    t = rng.random(300) < 0.3
    s[t] += 1.0
    for p, cm, cf in ((0.01, 1, 1), (0.05, 10, 1), (0.5, 1, 3)):
        costs = [
            cm * p * (s[t] < th).mean() + cf * (1 - p) * (s[~t] >= th).mean()
            for th in np.concatenate([np.unique(s), [np.inf]])
        ]
        ref = min(min(costs) / min(cm * p, cf * (1 - p)), 1.0)
        assert min_dcf(s, t, p_target=p, c_miss=cm, c_fa=cf) == pytest.approx(ref)


def test_act_dcf_and_cllr_hand_worked() -> None:
    s = np.array([2.0, -1.0, 0.0, -3.0])
    t = np.array([1, 1, 0, 0], dtype=bool)
    # threshold 0 (P_tar 0.5): miss 1/2 (-1 < 0), fa 1/2 (0 >= 0): 0.5*.5 + .5*.5 = 0.5 / 0.5
    assert act_dcf(s, t, p_target=0.5) == pytest.approx(1.0)
    ref = 0.5 * (np.mean(np.log2(1 + np.exp(-s[t]))) + np.mean(np.log2(1 + np.exp(s[~t]))))
    assert cllr(s, t) == pytest.approx(ref)
    assert cllr(np.zeros(4), t) == pytest.approx(1.0)
    # min Cllr never above Cllr, and invariant to monotone transforms
    assert min_cllr(s, t) <= cllr(s, t)
    assert min_cllr(np.exp(s), t) == pytest.approx(min_cllr(s, t))


def test_det_curve_counts() -> None:
    p_miss, p_fa, thr = det_curve([1, 3, 0, 2, 2], [1, 1, 0, 0, 1])
    assert thr.tolist() == [-np.inf, 0, 1, 2, 3]
    assert p_miss.tolist() == pytest.approx([0, 0, 1 / 3, 2 / 3, 1])
    assert p_fa.tolist() == pytest.approx([1, 0.5, 0.5, 0, 0])


def test_gaussian_eer_close_to_theory() -> None:
    rng = np.random.default_rng(2)
    n = 20000
    s = np.concatenate([rng.normal(2.0, 1.0, n), rng.normal(0.0, 1.0, n)])
    t = np.concatenate([np.ones(n, bool), np.zeros(n, bool)])
    assert eer(s, t) == pytest.approx(norm.cdf(-1.0), abs=0.006)


def test_identification() -> None:
    true = ["a", "b", "b", "c", "a"]
    pred = ["a", "b", "c", "c", "b"]
    assert identification_accuracy(true, pred) == pytest.approx(3 / 5)
    m, labels = confusion_matrix(true, pred)
    assert labels == ["a", "b", "c"]
    assert m.tolist() == [[1, 1, 0], [0, 1, 1], [0, 0, 1]]


def test_bad_input() -> None:
    with pytest.raises(DataError, match="both target and non-target"):
        eer([1, 2], [1, 1])
    with pytest.raises(DataError, match="same length"):
        min_dcf([1, 2, 3], [1, 0])
    with pytest.raises(DataError, match="p_target"):
        min_dcf([1, 2], [1, 0], p_target=1.5)


def test_act_dcf_target_exactly_at_threshold_is_accepted() -> None:
    # accept when score >= threshold: a target at the threshold is no miss, a non-target at
    # the threshold is a false alarm. Bayes threshold for p_target 0.2: log(0.8 / 0.2).
    thr = float(np.log(4.0))
    s = np.array([thr, thr + 1.0, thr, thr - 1.0, thr - 2.0])
    t = np.array([1, 1, 0, 0, 0], dtype=bool)
    # p_miss 0/2, p_fa 1/3: (0.8 * 1/3) / min(0.2, 0.8)
    assert act_dcf(s, t, p_target=0.2) == pytest.approx((0.8 / 3) / 0.2)
    assert act_dcf(s, t, threshold=thr, p_target=0.2) == pytest.approx((0.8 / 3) / 0.2)
    # a hair above: the target at thr is now a miss and the non-target no false alarm
    above = float(np.nextafter(thr, np.inf))
    assert act_dcf(s, t, threshold=above, p_target=0.2) == pytest.approx((0.2 * 0.5) / 0.2)


def test_balanced_accuracy_and_per_class_recall_hand_worked() -> None:
    from gmmspeech.decisions.metrics import balanced_accuracy, per_class_recall

    # 8 of class a (all right), 2 of class b (one right): accuracy 9/10, recalls 1 and 1/2
    true = ["a"] * 8 + ["b", "b"]
    pred = ["a"] * 8 + ["b", "a"]
    assert per_class_recall(true, pred) == {"a": 1.0, "b": 0.5}
    assert balanced_accuracy(true, pred) == 0.75
    # a classifier that always says the majority class: accuracy 0.8, balanced 0.5
    assert balanced_accuracy(true, ["a"] * 10) == 0.5
    # a class that is only predicted, never true, has no recall of its own
    assert per_class_recall(["x", "y"], ["z", "y"]) == {"x": 0.0, "y": 1.0}
