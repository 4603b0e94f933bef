"""Frame-averaged log-likelihood-ratio scoring of test utterances against speaker models.

Three methods, all returning ``(1/T) sum_t [log p_spk(x_t) - log p_ubm(x_t)]`` or an
approximation of it:

``exact``
    Every component of both models. Speaker component log-likelihoods are computed as the
    UBM's plus a correction (``log w'_k N'_k(x) - log w_k N_k(x) = z . delta_k + dg_k`` with
    ``z = [x - c, (x - c)^2]`` about the UBM centre ``c``), so mean-only models cost one
    (T, D) x (D, K) product per model.
``topc`` (Reynolds 2000)
    Per frame, the ``C`` best UBM components (by ``log w_k N_k(x_t)``); the speaker model is
    evaluated on those components only (a gather, never all K), and the score is
    ``mean_t [log sum_{c in top_t} w'_c N'_c(x_t) - log sum_{c in top_t} w_c N_c(x_t)]``.
    With ``C = K`` it equals ``exact``.
``linear`` (Glembek et al. 2009)
    The first-order Taylor expansion of the log-likelihood in the mean supervector around the
    UBM: with the UBM's zeroth and first order statistics of the test utterance,
    ``N_k = sum_t gamma_tk`` and ``F_k = sum_t gamma_tk x_t``,
    ``score = (1/T) sum_k (mu'_k - mu_k)^T Sigma_k^{-1} (F_k - N_k mu_k)``.
    It uses only the speaker means (adapted weights and variances are ignored) and no
    quadratic term; a dot product per model.

For a trial list (:func:`score_trials`), each test utterance's features, UBM log-likelihoods,
top-C indices or statistics are computed once and reused for every model it is tried
against, and the work is vectorised over those models. Frames are processed in chunks and
models in blocks, so the working memory is bounded by ``memory_budget`` and independent of
the number of trials (only the trial list and the scores, a few bytes per trial, grow).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .atomic import atomic_path
from .engine import blas_threads
from .errors import DataError, ModelMismatchError
from .frames import COMPUTE_DTYPE, as_frames
from .gmm import DiagGMM
from .speakermodels import SpeakerModels

log = logging.getLogger(__name__)

METHODS = ("exact", "topc", "linear")
DEFAULT_TOP_C = 5
#: float32 elements allowed in the largest work buffer (64 MB)
DEFAULT_MEMORY_BUDGET = 16 * 1024 * 1024

_TARGET_WORDS = {"target": True, "tgt": True, "1": True, "true": True, "yes": True}
_NONTARGET_WORDS = {
    "nontarget": False,
    "non-target": False,
    "nontgt": False,
    "imp": False,
    "impostor": False,
    "0": False,
    "false": False,
    "no": False,
}


# ---------------------------------------------------------------------------- trial lists
@dataclass
class TrialList:
    """A list of trials ``(model_id, test_id[, is_target])`` with their source lines.

    Attributes
    ----------
    model_ids, test_ids : list of str, length n
    is_target : ndarray of bool, shape (n,), or None when the list has no labels
    lines : list of int
        1-based line numbers in ``source`` (positions for in-memory lists).
    source : str
        File name (or ``"trials"``) used in error messages.
    """

    model_ids: list[str]
    test_ids: list[str]
    is_target: np.ndarray | None = None
    lines: list[int] = field(default_factory=list)
    source: str = "trials"

    def __post_init__(self) -> None:
        if not self.lines:
            self.lines = list(range(1, len(self.model_ids) + 1))

    def __len__(self) -> int:
        return len(self.model_ids)

    def where(self, i: int) -> str:
        """``source:line`` of trial ``i``."""
        return f"{self.source}:{self.lines[i]}"

    @classmethod
    def from_tuples(cls, trials: Iterable[Sequence[Any]], source: str = "trials") -> TrialList:
        """From ``(model_id, test_id)`` or ``(model_id, test_id, is_target)`` tuples."""
        if isinstance(trials, TrialList):
            return trials
        if hasattr(trials, "trials") and not isinstance(trials, (list, tuple)):
            trials = trials.trials  # a data dir
            if callable(trials):
                trials = trials()
        models: list[str] = []
        tests: list[str] = []
        labels: list[bool] = []
        n_labelled = 0
        for i, t in enumerate(trials):
            if hasattr(t, "model_id") and hasattr(t, "test_id"):  # datadir.Trial
                t = (t.model_id, t.test_id, getattr(t, "target"))  # noqa: B009
            t = tuple(t)
            if len(t) not in (2, 3):
                raise DataError(
                    f"{source}:{i + 1}: expected (model_id, test_id[, is_target]), got {t!r}"
                )
            models.append(str(t[0]))
            tests.append(str(t[1]))
            if len(t) == 3:
                labels.append(_parse_label(t[2], f"{source}:{i + 1}"))
                n_labelled += 1
        if n_labelled not in (0, len(models)):
            raise DataError(f"{source}: some trials have a target label and some do not")
        is_target = np.array(labels, dtype=bool) if n_labelled else None
        return cls(models, tests, is_target, source=source)


def _parse_label(value: Any, where: str) -> bool:
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    key = str(value).strip().lower()
    if key in _TARGET_WORDS:
        return True
    if key in _NONTARGET_WORDS:
        return False
    raise DataError(
        f"{where}: trial label {value!r} is neither 'target' nor 'nontarget' "
        f"(also accepted: tgt/imp/1/0/true/false)"
    )


def read_trials(path: str | os.PathLike[str]) -> TrialList:
    """Read a Kaldi-style trials file: ``<model> <test> [target|nontarget]`` per line.

    ``path`` may also be a data dir holding a ``trials`` file. Line numbers are kept for
    error messages.

    Blank lines and lines starting with ``#`` are skipped.
    """
    p = Path(path)
    if p.is_dir() and (p / "trials").is_file():
        p = p / "trials"  # a data dir
    if not p.is_file():
        raise DataError(f"{p}: no such trials file")
    models: list[str] = []
    tests: list[str] = []
    labels: list[bool] = []
    lines: list[int] = []
    with open(p, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            parts = line.split()
            if not parts or parts[0].startswith("#"):
                continue
            if len(parts) not in (2, 3):
                raise DataError(
                    f"{p}:{n}: expected '<model> <test> [target|nontarget]', got {line.strip()!r}"
                )
            if len(parts) == 3:
                labels.append(_parse_label(parts[2], f"{p}:{n}"))
            elif labels:
                raise DataError(f"{p}:{n}: missing the target/nontarget label of earlier lines")
            models.append(parts[0])
            tests.append(parts[1])
            lines.append(n)
    if not models:
        raise DataError(f"{p}: no trials (empty file)")
    if labels and len(labels) != len(models):
        raise DataError(f"{p}: some lines have a target/nontarget label and some do not")
    return TrialList(models, tests, np.array(labels, dtype=bool) if labels else None, lines, str(p))


def write_scores(
    path: str | os.PathLike[str],
    model_ids: Sequence[str],
    test_ids: Sequence[str],
    scores: Any,
) -> None:
    """Write ``<model> <test> <score>`` lines atomically (scores with 9 significant digits)."""
    s = np.asarray(scores, dtype=np.float64)
    if not len(model_ids) == len(test_ids) == s.shape[0]:
        raise DataError(
            f"write_scores: {len(model_ids)} model ids, {len(test_ids)} test ids and "
            f"{s.shape[0]} scores; they must be equally many"
        )
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8") as f:
        for m, t, v in zip(model_ids, test_ids, s, strict=True):
            f.write(f"{m} {t} {v:.9g}\n")


def read_scores(path: str | os.PathLike[str]) -> dict[tuple[str, str], float]:
    """Read ``<model> <test> <score>`` lines into ``{(model, test): score}``."""
    p = Path(path)
    if not p.is_file():
        raise DataError(f"{p}: no such scores file")
    out: dict[tuple[str, str], float] = {}
    with open(p, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            parts = line.split()
            if not parts or parts[0].startswith("#"):
                continue
            if len(parts) != 3:
                raise DataError(f"{p}:{n}: expected '<model> <test> <score>', got {line.strip()!r}")
            try:
                v = float(parts[2])
            except ValueError:
                raise DataError(f"{p}:{n}: score {parts[2]!r} is not a number") from None
            if not np.isfinite(v):
                raise DataError(f"{p}:{n}: score {parts[2]!r} is not finite")
            key = (parts[0], parts[1])
            if key in out:
                raise DataError(f"{p}:{n}: trial {key[0]} {key[1]} scored twice")
            out[key] = v
    return out


def align_scores(scores: Mapping[tuple[str, str], float], trials: TrialList) -> np.ndarray:
    """Scores in the order of ``trials``; :class:`DataError` naming the first missing trial."""
    out = np.empty(len(trials))
    for i, (m, t) in enumerate(zip(trials.model_ids, trials.test_ids, strict=True)):
        try:
            out[i] = scores[(m, t)]
        except KeyError:
            raise DataError(
                f"{trials.where(i)}: trial {m} {t} has no score; score the same trials list"
            ) from None
    return out


# ---------------------------------------------------------------------------- model bank
class ModelBank:
    """Many models of one UBM's layout as float32 corrections to the UBM, for fast scoring.

    For model ``m`` and component ``k`` (``c`` the UBM centre, ``z = [x - c, (x - c)^2]``),
    ``log w'_mk N'_mk(x) = log w_k N_k(x) + z . delta[m, k] + dg[m, k]``. When only the
    means differ, ``delta`` holds only the linear half (E = D columns), else E = 2D.

    Parameters
    ----------
    ubm : DiagGMM
    models : SpeakerModels or sequence of DiagGMM
        Models with the UBM's K and D.
    """

    def __init__(self, ubm: DiagGMM, models: SpeakerModels | Sequence[DiagGMM]) -> None:
        self.ubm = ubm
        k, d = ubm.n_components, ubm.n_features
        if isinstance(models, SpeakerModels):
            if models.n_features != d or models.n_components != k:
                raise ModelMismatchError(
                    f"models have K={models.n_components}, D={models.n_features}, the UBM "
                    f"K={k}, D={d}; use the UBM the models were enrolled with"
                )
            n = len(models)
            self.ids = list(models.ids)
            get = models.parameters
            mean_only = models.weights is None and models.variances is None
        else:
            models = list(models)
            for i, m in enumerate(models):
                if m.n_features != d or m.n_components != k:
                    raise ModelMismatchError(
                        f"models[{i}]: K={m.n_components}, D={m.n_features}, but the UBM has "
                        f"K={k}, D={d}; top-C, linear and bank scoring need models adapted "
                        f"from this UBM"
                    )
            n = len(models)
            self.ids = [str(i) for i in range(n)]

            def get(i: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
                m = models[i]
                return m.weights, m.means, m.variances

            mean_only = all(
                np.array_equal(m.weights, ubm.weights)
                and np.array_equal(m.variances, ubm.variances)
                for m in models
            )
        self.mean_only = bool(mean_only)
        e = d if self.mean_only else 2 * d
        c = ubm.weights @ ubm.means
        prec_u = 1.0 / ubm.variances
        mc_u = ubm.means - c
        with np.errstate(divide="ignore"):
            logw_u = np.log(ubm.weights)
        g_u = logw_u - 0.5 * (np.log(ubm.variances).sum(1) + (mc_u * mc_u * prec_u).sum(1))
        lin_u = mc_u * prec_u
        self.delta = np.empty((n, k, e), dtype=COMPUTE_DTYPE)
        self.dg = np.empty((n, k), dtype=COMPUTE_DTYPE)
        self.dmeans = np.empty((n, k, d), dtype=COMPUTE_DTYPE)
        for i in range(n):
            w, mu, var = get(i)
            prec = 1.0 / var
            mc = mu - c
            with np.errstate(divide="ignore", invalid="ignore"):
                logw = np.log(w)
                g = logw - 0.5 * (np.log(var).sum(1) + (mc * mc * prec).sum(1))
                dg = np.where(np.isneginf(logw_u) & np.isneginf(logw), 0.0, g - g_u)
            self.delta[i, :, :d] = mc * prec - lin_u
            if not self.mean_only:
                self.delta[i, :, d:] = -0.5 * (prec - prec_u)
            self.dg[i] = dg
            self.dmeans[i] = mu - ubm.means
        self._by_component: tuple[np.ndarray, np.ndarray] | None = None
        self._by_model: np.ndarray | None = None

    def __len__(self) -> int:
        return int(self.delta.shape[0])

    @property
    def width(self) -> int:
        """E: D for mean-only models, 2D otherwise."""
        return int(self.delta.shape[2])

    def by_model(self) -> np.ndarray:
        """``delta`` as (M, E, K): the layout of the exact products, cached."""
        if self._by_model is None:
            self._by_model = np.ascontiguousarray(self.delta.transpose(0, 2, 1))
        return self._by_model

    def by_component(self) -> tuple[np.ndarray, np.ndarray]:
        """``(delta (K, E, M), dg (K, M))``: the layout for top-C gathers, cached."""
        if self._by_component is None:
            self._by_component = (
                np.ascontiguousarray(self.delta.transpose(1, 2, 0)),
                np.ascontiguousarray(self.dg.T),
            )
        return self._by_component


# ---------------------------------------------------------------------------- per utterance
def _check_method(method: str, top_c: int | None, k: int) -> tuple[str, int]:
    if method not in METHODS:
        raise DataError(f"method: expected one of {', '.join(METHODS)}, got {method!r}")
    c = DEFAULT_TOP_C if top_c is None else int(top_c)
    if method == "topc" and not 1 <= c <= k:
        raise DataError(f"top_c: must be between 1 and the UBM's K={k}, got {top_c!r}")
    return method, c


class _TestUtterance:
    """One test utterance's UBM quantities, computed once and shared by all its models."""

    def __init__(
        self, ubm: DiagGMM, x: np.ndarray, method: str, top_c: int, chunk_size: int | None
    ) -> None:
        self.n = x.shape[0]
        if self.n == 0:
            raise DataError("no frames to score")
        d = ubm.n_features
        k = ubm.n_components
        self.method = method
        if method == "linear":
            # UBM statistics about the centre c: counts N_k and first_k = sum_t g_tk (x_t - c);
            # v_k = Sigma_k^{-1} (F_k - N_k mu_k) / T = Sigma_k^{-1} (first_k - N_k (mu_k - c)) / T
            first = np.zeros((k, d))
            counts = np.zeros(k)
            for _, _, r, z in ubm._chunks(x, chunk_size):
                r -= r.max(axis=1, keepdims=True)
                np.exp(r, out=r)
                r /= r.sum(axis=1, keepdims=True)
                counts += r.sum(axis=0, dtype=np.float64)
                first += (r.T @ z[:, :d]).astype(np.float64)
            centred = first - counts[:, None] * (ubm.means - ubm.center)
            self.v = (centred / ubm.variances / self.n).astype(COMPUTE_DTYPE).ravel()
            return
        self.z = np.empty((self.n, 2 * d), dtype=COMPUTE_DTYPE)
        if method == "exact":
            self.ubm_comp = np.empty((self.n, k), dtype=COMPUTE_DTYPE)
            self.ubm_frame = np.empty(self.n, dtype=np.float64)
            for start, stop, r, z in ubm._chunks(x, chunk_size):
                self.ubm_comp[start:stop] = r
                self.z[start:stop] = z
                self.ubm_frame[start:stop] = _lse(r, axis=1)
            self.ubm_mean = float(self.ubm_frame.mean())
            return
        # top-C
        self.idx = np.empty((self.n, top_c), dtype=np.intp)
        self.logpi = np.empty((self.n, top_c), dtype=np.float64)
        for start, stop, r, z in ubm._chunks(x, chunk_size):
            self.z[start:stop] = z
            if top_c < k:
                idx = np.argpartition(-r, top_c - 1, axis=1)[:, :top_c]
            else:
                idx = np.broadcast_to(np.arange(k), (stop - start, k))
            vals = np.take_along_axis(r, idx, axis=1).astype(np.float64)
            self.idx[start:stop] = idx
            # log of the UBM's posterior among the selected components
            self.logpi[start:stop] = vals - _lse(vals, axis=1)[:, None]

    def scores(self, bank: ModelBank, sel: np.ndarray, budget: int) -> np.ndarray:
        """Frame-averaged LLRs of the models at positions ``sel`` (shape (S,)), float64."""
        if self.method == "linear":
            flat = bank.dmeans.reshape(len(bank), -1)
            if sel.size == len(bank) and np.array_equal(sel, np.arange(len(bank))):
                return (flat @ self.v).astype(np.float64)
            return (flat[sel] @ self.v).astype(np.float64)
        if self.method == "exact":
            return self._exact(bank, sel, budget)
        return self._topc(bank, sel, budget)

    def _exact(self, bank: ModelBank, sel: np.ndarray, budget: int) -> np.ndarray:
        n, k = self.ubm_comp.shape
        e = bank.width
        out = np.empty(sel.size, dtype=np.float64)
        frame_step = max(1, min(n, budget // max(1, k)))
        block = max(1, budget // (frame_step * k))
        for b0 in range(0, sel.size, block):
            ms = sel[b0 : b0 + block]
            # (S, E, K) corrections, then (S, n, K) speaker component log-likelihoods
            wt = bank.by_model()[ms[0] : ms[-1] + 1] if _is_range(ms) else bank.by_model()[ms]
            dg = bank.dg[ms][:, None, :]
            tot = np.zeros(ms.size, dtype=np.float64)
            for f0 in range(0, n, frame_step):
                f1 = min(n, f0 + frame_step)
                spk = np.matmul(self.z[f0:f1, :e], wt)
                spk += dg
                spk += self.ubm_comp[None, f0:f1]
                tot += _lse_inplace(spk).sum(axis=1)
            out[b0 : b0 + ms.size] = tot / n - self.ubm_mean
        return out

    def _topc(self, bank: ModelBank, sel: np.ndarray, budget: int) -> np.ndarray:
        """Top-C scores: the correction ``z . delta[m, c] + dg[m, c]`` is computed only for the
        selected (frame, component) pairs, grouped by component so that each group is one
        small (n_c, E) x (E, S) product with no copy of the model parameters."""
        delta_t, dg_t = bank.by_component()
        n, c = self.idx.shape
        e = bank.width
        all_models = sel.size == len(bank) and np.array_equal(sel, np.arange(len(bank)))
        s = sel.size
        frame_step = max(1, min(n, budget // max(1, c * max(e, s))))
        tot = np.zeros(s, dtype=np.float64)
        for f0 in range(0, n, frame_step):
            f1 = min(n, f0 + frame_step)
            idx = self.idx[f0:f1].ravel()  # (P,) with P = frames * C, frame-major
            order = np.argsort(idx, kind="stable")
            sorted_idx = idx[order]
            zs = self.z[f0:f1, :e][order // c]  # (P, E), grouped by component
            comps, starts = np.unique(sorted_idx, return_index=True)
            ends = np.append(starts[1:], sorted_idx.size)
            corr_sorted = np.empty((idx.size, s), dtype=COMPUTE_DTYPE)
            for comp, a, b in zip(comps.tolist(), starts.tolist(), ends.tolist(), strict=True):
                w = delta_t[comp] if all_models else delta_t[comp][:, sel]
                np.matmul(zs[a:b], w, out=corr_sorted[a:b])
            corr = np.empty_like(corr_sorted)
            corr[order] = corr_sorted
            corr += dg_t[idx] if all_models else dg_t[idx][:, sel]
            corr64 = corr.astype(np.float64).reshape(f1 - f0, c, s)
            corr64 += self.logpi[f0:f1, :, None]
            tot += _lse(corr64, axis=1).sum(axis=0)
        return tot / n


def _is_range(a: np.ndarray) -> bool:
    """True when ``a`` is a run of consecutive integers (a slice, no copy needed)."""
    return bool(a.size) and int(a[-1]) - int(a[0]) == a.size - 1 and bool(np.all(np.diff(a) == 1))


def _lse(a: np.ndarray, axis: int) -> np.ndarray:
    """log-sum-exp along ``axis`` in float64 (input float32 or float64)."""
    m = a.max(axis=axis, keepdims=True)
    s = np.exp(a - m).sum(axis=axis, dtype=np.float64)
    return np.log(s) + np.squeeze(m, axis=axis).astype(np.float64)


def _lse_inplace(a: np.ndarray) -> np.ndarray:
    """log-sum-exp over the last axis of a float32 work array (overwritten), float64 out."""
    m = a.max(axis=-1, keepdims=True)
    a -= m
    np.exp(a, out=a)
    s = a.sum(axis=-1)  # terms in [0, 1], the largest 1: float32 is accurate enough here
    return np.log(s.astype(np.float64)) + m[..., 0].astype(np.float64)


# ---------------------------------------------------------------------------- public API
def llr(
    ubm: DiagGMM,
    model: DiagGMM,
    X: Any,
    *,
    top_c: int | None = None,
    method: str | None = None,
    chunk_size: int | None = None,
) -> float:
    """Frame-averaged log-likelihood ratio ``mean_t [log p_model(x_t) - log p_ubm(x_t)]``.

    Parameters
    ----------
    ubm : DiagGMM
    model : DiagGMM
        A model with the UBM's K and D (adapted from it); for ``exact`` any model of the
        same D.
    X : array-like, shape (N, D)
        Test frames.
    top_c : int, optional
        Use top-C scoring with this C (Reynolds 2000); ``None`` scores exactly.
    method : {"exact", "topc", "linear"}, optional
        Overrides the choice made by ``top_c`` (``topc`` then uses ``top_c`` or 5).
    chunk_size : int, optional
        Frames per block.

    Returns
    -------
    float
    """
    if method is None:
        method = "exact" if top_c is None else "topc"
    method, c = _check_method(method, top_c, ubm.n_components)
    if model.n_features != ubm.n_features:
        raise ModelMismatchError(
            f"model has D={model.n_features} features, the UBM D={ubm.n_features}"
        )
    x = as_frames(X, ubm.n_features)
    if x.shape[0] == 0:
        raise DataError("X: no frames to score")
    if method == "exact" and model.n_components != ubm.n_components:
        return float(
            np.mean(
                model.log_likelihood(x, chunk_size=chunk_size)
                - ubm.log_likelihood(x, chunk_size=chunk_size)
            )
        )
    bank = ModelBank(ubm, [model])
    utt = _TestUtterance(ubm, x, method, c, chunk_size)
    return float(utt.scores(bank, np.arange(1), DEFAULT_MEMORY_BUDGET)[0])


def score_matrix(
    ubm: DiagGMM,
    models: SpeakerModels | ModelBank,
    features: Any,
    utt_ids: Sequence[str],
    *,
    method: str = "topc",
    top_c: int | None = DEFAULT_TOP_C,
    chunk_size: int | None = None,
    memory_budget: int = DEFAULT_MEMORY_BUDGET,
    progress: bool = False,
) -> np.ndarray:
    """Scores of every model against every utterance (e.g. for cohorts), shape (M, U)."""
    from tqdm.auto import tqdm

    method, c = _check_method(method, top_c, ubm.n_components)
    bank = models if isinstance(models, ModelBank) else ModelBank(ubm, models)
    out = np.empty((len(bank), len(utt_ids)))
    sel = np.arange(len(bank))
    for j, utt in enumerate(tqdm(utt_ids, desc="score", unit="utt", disable=not progress)):
        x = _features_of(features, utt, ubm.n_features, f"utterance {utt!r}")
        out[:, j] = _TestUtterance(ubm, x, method, c, chunk_size).scores(bank, sel, memory_budget)
    return out


def score_trials(
    ubm: DiagGMM,
    models: SpeakerModels | ModelBank,
    features: Any,
    trials: Any,
    *,
    method: str = "topc",
    top_c: int | None = DEFAULT_TOP_C,
    chunk_size: int | None = None,
    memory_budget: int = DEFAULT_MEMORY_BUDGET,
    progress: bool = False,
    engine: Any = None,
) -> np.ndarray:
    """Score a trial list.

    Parameters
    ----------
    ubm : DiagGMM
    models : SpeakerModels (or a prepared ModelBank)
        Models adapted from ``ubm``.
    features : mapping utt_id -> array of shape (n_frames, D)
        A :class:`gmmspeech.FeatureStore` or a dict.
    trials : TrialList, or iterable of (model_id, test_id[, is_target])
    method : {"exact", "topc", "linear"}
    top_c : int
        C for ``topc``.
    chunk_size : int, optional
        Frames per block for the UBM pass.
    memory_budget : int
        float32 elements allowed in the largest work buffer (frames and models are blocked
        to stay within it).
    progress : bool
        Show a progress bar over test utterances.
    engine : Engine, optional
        Where the work runs (:class:`~gmmspeech.LocalEngine` by default). With a process
        pool or Dask, groups of test utterances are scored in parallel; workers read a
        :class:`~gmmspeech.FeatureStore` themselves. Scores are identical on every engine.

    Returns
    -------
    ndarray, shape (n_trials,), float64
        In the order of ``trials``.

    Raises
    ------
    DataError
        A trial names an unknown model or test utterance (``source:line`` in the message).
    ModelMismatchError
        Test features with another dimension than the models'.
    """
    from tqdm.auto import tqdm

    method, c = _check_method(method, top_c, ubm.n_components)
    tl = TrialList.from_tuples(trials)
    bank = models if isinstance(models, ModelBank) else ModelBank(ubm, models)
    pos = {m: i for i, m in enumerate(bank.ids)}
    groups: dict[str, tuple[list[int], list[int]]] = {}
    for i, (m, t) in enumerate(zip(tl.model_ids, tl.test_ids, strict=True)):
        j = pos.get(m)
        if j is None:
            raise DataError(
                f"{tl.where(i)}: model {m!r} is not among the {len(bank)} enrolled models "
                f"(e.g. {', '.join(repr(x) for x in bank.ids[:3])}); enroll it or fix the trials"
            )
        g = groups.setdefault(t, ([], []))
        g[0].append(i)
        g[1].append(j)
    first_line = {t: tl.where(g[0][0]) for t, g in groups.items()}
    for t in groups:
        if not _has(features, t):
            raise DataError(
                f"{first_line[t]}: test utterance {t!r} is not in the feature archive; "
                f"extract its features or fix the trials"
            )
    scores = np.empty(len(tl), dtype=np.float64)
    log.info(
        "scoring %d trials (%d test utterances x %d models) with method=%s%s",
        len(tl),
        len(groups),
        len(bank),
        method,
        f", C={c}" if method == "topc" else "",
    )
    if engine is not None and getattr(engine, "name", "local") != "local":
        _score_on_engine(
            engine,
            ubm,
            bank,
            features,
            groups,
            first_line,
            scores,
            (method, c, chunk_size, memory_budget),
        )
        return scores
    with blas_threads(1):  # per-utterance matrices are small: see engine.blas_threads
        for t, (rows, cols) in tqdm(
            groups.items(), desc="score", unit="utt", disable=not progress, total=len(groups)
        ):
            x = _features_of(features, t, ubm.n_features, f"test utterance {t!r} ({first_line[t]})")
            uniq, inv = np.unique(np.asarray(cols, dtype=np.intp), return_inverse=True)
            try:
                s = _TestUtterance(ubm, x, method, c, chunk_size).scores(bank, uniq, memory_budget)
            except DataError as exc:
                raise DataError(f"test utterance {t!r} ({first_line[t]}): {exc}") from None
            scores[np.asarray(rows)] = s[inv]
    return scores


_UTTS_PER_TASK = 32


@dataclass
class _ScoreTask:
    """Some test utterances and, for each, the bank rows to score it against."""

    utts: list[str]
    cols: list[np.ndarray]
    lines: list[str]
    store_path: str | None = None
    arrays: list[np.ndarray] | None = None


def _score_task(task: _ScoreTask, shared: tuple[Any, ...]) -> list[np.ndarray]:
    """Engine map task: scores of each utterance of ``task`` against its models."""
    ubm, bank, (method, c, chunk_size, memory_budget) = shared
    out: list[np.ndarray] = []
    store: Any = None
    if task.store_path is not None:
        from .featstore import FeatureStore

        store = FeatureStore(task.store_path)
    try:
        for i, (t, cols) in enumerate(zip(task.utts, task.cols, strict=True)):
            name = f"test utterance {t!r} ({task.lines[i]})"
            raw = store[t] if store is not None else task.arrays[i]  # type: ignore[index]
            x = as_frames(raw, ubm.n_features, name=name)
            try:
                out.append(
                    _TestUtterance(ubm, x, method, c, chunk_size).scores(bank, cols, memory_budget)
                )
            except DataError as exc:
                raise DataError(f"{name}: {exc}") from None
    finally:
        if store is not None:
            store.close()
    return out


def _score_on_engine(
    engine: Any,
    ubm: DiagGMM,
    bank: ModelBank,
    features: Any,
    groups: dict[str, tuple[list[int], list[int]]],
    first_line: dict[str, str],
    scores: np.ndarray,
    options: tuple[Any, ...],
) -> None:
    """Fill ``scores`` by mapping groups of test utterances over ``engine``."""
    from .featstore import FeatureStore

    store_path = str(Path(features.path).resolve()) if isinstance(features, FeatureStore) else None
    items = list(groups.items())
    tasks, inverses = [], []
    for start in range(0, len(items), _UTTS_PER_TASK):
        part = items[start : start + _UTTS_PER_TASK]
        cols, invs = [], []
        for _, (_, c) in part:
            uniq, inv = np.unique(np.asarray(c, dtype=np.intp), return_inverse=True)
            cols.append(uniq)
            invs.append(inv)
        utts = [t for t, _ in part]
        arrays = None
        if store_path is None:
            arrays = [
                _features_of(features, t, ubm.n_features, f"test utterance {t!r}") for t in utts
            ]
        tasks.append(_ScoreTask(utts, cols, [first_line[t] for t in utts], store_path, arrays))
        inverses.append(invs)
    results = engine.map(_score_task, tasks, (ubm, bank, options))
    for task, invs, res in zip(tasks, inverses, results, strict=True):
        for t, inv, s in zip(task.utts, invs, res, strict=True):
            scores[np.asarray(groups[t][0])] = s[inv]


def _has(features: Any, key: str) -> bool:
    try:
        return key in features
    except TypeError:
        return True


def _features_of(features: Any, utt: str, d: int, name: str) -> np.ndarray:
    try:
        x = features[utt]
    except KeyError:
        raise DataError(f"{name} is not in the feature archive") from None
    return as_frames(x, d, name=name)
