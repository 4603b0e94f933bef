"""Cohort normalisation of i-vector scores against the formulas written out by hand."""

from __future__ import annotations

import numpy as np
import pytest

from gmmspeech.config.sections import BackendConfig
from gmmspeech.ivector.backend import Backend
from gmmspeech.pipeline.ivector_cohort import normalize_trials


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.sqrt(np.sum(x * x))


def _cos(enrol: list[np.ndarray], x: np.ndarray, mu: np.ndarray) -> float:
    """Cosine of the mean of the unit-length centred enrolment vectors and the centred test."""
    e = np.zeros_like(mu)
    for v in enrol:
        e += _unit(v - mu) / len(enrol)
    return float(np.sum(_unit(e) * _unit(x - mu)))


def _mean_std(values: list[float]) -> tuple[float, float]:
    m = sum(values) / len(values)
    return m, (sum((v - m) ** 2 for v in values) / len(values)) ** 0.5


@pytest.fixture
def case() -> dict:
    rng = np.random.default_rng(3)
    r = 5
    train = rng.standard_normal((30, r)) + 0.5
    vec = {f"u{i}": rng.standard_normal(r) for i in range(30)}
    enroll = {"m0": ["u0", "u1"], "m1": ["u2", "u3"], "m2": ["u4", "u5"]}
    tests = ["u6", "u7", "u8", "u9"]
    cohort = {f"c{j}": [f"u{10 + 3 * j + k}" for k in range(3)] for j in range(4)}
    keys = [(m, t) for m in enroll for t in tests][:-1]  # one pair left out
    be = Backend(BackendConfig(scorer="cosine", length_norm=False)).fit(train)
    mu = train.mean(axis=0)
    raw = np.array([_cos([vec[u] for u in enroll[m]], vec[t], mu) for m, t in keys])
    return {"vec": vec, "enroll": enroll, "cohort": cohort, "keys": keys, "be": be, "mu": mu,
            "raw": raw, "tests": tests}  # fmt: skip


def _oracle(case: dict, method: str, top_n: int | None = None) -> list[float]:
    vec, mu, cohort = case["vec"], case["mu"], case["cohort"]
    cohort_utts = [(spk, u) for spk, utts in cohort.items() for u in utts]
    c_models = {spk: [vec[u] for u in utts[:2]] for spk, utts in cohort.items()}

    def z_side(m: str) -> list[float]:
        return [_cos([vec[u] for u in case["enroll"][m]], vec[u], mu) for _, u in cohort_utts]

    def t_side(t: str) -> list[float]:
        return [_cos(c_models[spk], vec[t], mu) for spk in cohort]

    def top(values: list[float]) -> list[float]:
        return sorted(values, reverse=True)[:top_n] if top_n else values

    out = []
    for (m, t), s in zip(case["keys"], case["raw"], strict=True):
        mz, sz = _mean_std(top(z_side(m)))
        mt, st = _mean_std(top(t_side(t)))
        if method == "z":
            out.append((s - mz) / sz)
        elif method == "t":
            out.append((s - mt) / st)
        elif method in ("s", "as"):
            out.append(0.5 * ((s - mz) / sz + (s - mt) / st))
        else:  # zt: each cohort model's T score Z-normalised by its other-speaker cohort scores
            zt = []
            for spk in cohort:
                own = [_cos(c_models[spk], vec[u], mu) for other, u in cohort_utts if other != spk]
                mc, sc = _mean_std(own)
                zt.append((_cos(c_models[spk], vec[t], mu) - mc) / sc)
            m2, s2 = _mean_std(zt)
            out.append(((s - mz) / sz - m2) / s2)
    return out


@pytest.mark.parametrize(("method", "top_n"), [("z", None), ("t", None), ("zt", None),
                                               ("s", None), ("as", 3)])  # fmt: skip
def test_ivector_cohort_norm_equals_the_formulas(case: dict, method: str, top_n: int | None):
    got = normalize_trials(
        method, case["raw"], case["keys"], be=case["be"], enroll=case["enroll"],
        vectors=case["vec"], cohort=case["cohort"], per_model=2, top_n=top_n or 200,
    )  # fmt: skip
    np.testing.assert_allclose(got, _oracle(case, method, top_n), rtol=1e-10, atol=1e-12)


def test_norm_none_copies(case: dict) -> None:
    got = normalize_trials(
        "none", case["raw"], case["keys"], be=case["be"], enroll=case["enroll"],
        vectors=case["vec"], cohort=case["cohort"], per_model=2, top_n=200,
    )  # fmt: skip
    assert np.array_equal(got, case["raw"]) and got is not case["raw"]
