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
from collections import deque
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from itertools import islice
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import ArrayLike
from tqdm.auto import tqdm

from ..config.sections import SCORING_METHODS
from ..corpus.idcodes import blocks_by_test, count_codes
from ..corpus.trials import TrialList
from ..engine import Engine, LocalEngine, blas_threads
from ..errors import DataError, ModelMismatchError
from ..features.frames import COMPUTE_DTYPE, as_frames
from ..features.store import FeatureStore
from ..mixture.gmm import DiagGMM, log_normalize
from ..mixture.modelbank import ModelBank
from ..mixture.selection import top_rows
from ..mixture.speakermodels import SpeakerModels
from ..storage.provenance import check_features

log = logging.getLogger(__name__)

METHODS = SCORING_METHODS
DEFAULT_TOP_C = 5
#: float32 elements allowed in the largest work buffer (64 MB)
DEFAULT_MEMORY_BUDGET = 16 * 1024 * 1024


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
        self.method = method
        if method == "linear":
            self._prepare_linear(ubm, x, chunk_size)
        elif method == "exact":
            self._prepare_exact(ubm, x, chunk_size)
        else:
            self._prepare_topc(ubm, x, top_c, chunk_size)

    def _prepare_linear(self, ubm: DiagGMM, x: np.ndarray, chunk_size: int | None) -> None:
        """``v`` (K*D,): UBM statistics about the centre c, counts N_k and
        ``first_k = sum_t g_tk (x_t - c)``, as
        ``v_k = Sigma_k^{-1} (F_k - N_k mu_k) / T = Sigma_k^{-1} (first_k - N_k (mu_k - c)) / T``.
        """
        k, d = ubm.n_components, ubm.n_features
        first = np.zeros((k, d))
        counts = np.zeros(k)
        for blk in ubm.blocks(x, chunk_size=chunk_size):
            log_normalize(blk.logp, posteriors=True)
            counts += blk.logp.sum(axis=0, dtype=np.float64)
            first += (blk.logp.T @ blk.z[:, :d]).astype(np.float64)
        centred = first - counts[:, None] * (ubm.means - ubm.center)
        self.v = (centred / ubm.variances / self.n).astype(COMPUTE_DTYPE).ravel()

    def _prepare_exact(self, ubm: DiagGMM, x: np.ndarray, chunk_size: int | None) -> None:
        """``z`` (T, 2D), the UBM's component log-likelihoods (T, K) and mean frame score."""
        self.z = np.empty((self.n, 2 * ubm.n_features), dtype=COMPUTE_DTYPE)
        self.ubm_comp = np.empty((self.n, ubm.n_components), dtype=COMPUTE_DTYPE)
        ubm_frame = np.empty(self.n, dtype=np.float64)
        for blk in ubm.blocks(x, chunk_size=chunk_size):
            self.ubm_comp[blk.start : blk.stop] = blk.logp
            self.z[blk.start : blk.stop] = blk.z
            ubm_frame[blk.start : blk.stop], _ = log_normalize(blk.logp)
        self.ubm_mean = float(ubm_frame.mean())

    def _prepare_topc(
        self, ubm: DiagGMM, x: np.ndarray, top_c: int, chunk_size: int | None
    ) -> None:
        """``z`` (T, 2D), the top-C UBM components per frame ``idx`` (T, C) and ``logpi``
        (T, C), the log of the UBM's posterior among those C components."""
        self.z = np.empty((self.n, 2 * ubm.n_features), dtype=COMPUTE_DTYPE)
        self.idx = np.empty((self.n, top_c), dtype=np.intp)
        self.logpi = np.empty((self.n, top_c), dtype=np.float64)
        for start, stop, r, z in ubm.blocks(x, chunk_size=chunk_size):
            self.z[start:stop] = z
            # one scan per row in numba, not an argpartition (which cost 2.4x the GEMM)
            idx, vals = top_rows(r, top_c)
            self.idx[start:stop] = idx
            self.logpi[start:stop] = vals - log_normalize(vals.copy())[0][:, None]

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
                tot += log_normalize(spk)[0].sum(axis=1)
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
            tot += log_normalize(corr64, axis=1)[0].sum(axis=0)
        return tot / n


def _is_range(a: np.ndarray) -> bool:
    """True when ``a`` is a run of consecutive integers (a slice, no copy needed)."""
    return bool(a.size) and int(a[-1]) - int(a[0]) == a.size - 1 and bool(np.all(np.diff(a) == 1))


# ---------------------------------------------------------------------------- public API
def llr(
    ubm: DiagGMM,
    model: DiagGMM,
    X: ArrayLike,
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

    Examples
    --------
    A model adapted to a speaker's frames explains them better than the UBM:

    >>> from gmmspeech import DiagGMM, llr, map_adapt
    >>> ubm = DiagGMM([0.5, 0.5], [-2.0, 2.0], [1.0, 1.0])
    >>> X = np.full((16, 1), 3.0)
    >>> spk = map_adapt(ubm, X)
    >>> bool(llr(ubm, spk, X, method="exact") > 0), bool(llr(ubm, ubm, X, method="exact") == 0)
    (True, True)
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
    features: Mapping[str, np.ndarray],
    utt_ids: Sequence[str],
    *,
    method: str = "topc",
    top_c: int | None = DEFAULT_TOP_C,
    chunk_size: int | None = None,
    memory_budget: int = DEFAULT_MEMORY_BUDGET,
    progress: bool = False,
    engine: Engine | None = None,
) -> np.ndarray:
    """Scores of every model against every utterance (e.g. for cohorts).

    Parameters
    ----------
    ubm, models, features, method, top_c, chunk_size, memory_budget, progress, engine
        As for :func:`score_trials`.
    utt_ids : sequence of str, length U
        Test utterances, keys of ``features``.

    Returns
    -------
    ndarray, shape (M, U), float64
        ``[m, u]`` is the score of model ``m`` (in the bank's order) against ``utt_ids[u]``.
    """
    method, c = _check_method(method, top_c, ubm.n_components)
    check_features(features, ubm.feature_config, "the UBM")
    bank = models if isinstance(models, ModelBank) else ModelBank(ubm, models)
    out = np.empty((len(bank), len(utt_ids)))
    every_model = np.arange(len(bank))
    work = ((utt, every_model, f"utterance {utt!r}") for utt in utt_ids)
    options = (method, c, chunk_size, memory_budget)
    runs = _run(engine, ubm, bank, features, work, len(utt_ids), options, progress)
    for j, s in enumerate(runs):
        out[:, j] = s
    return out


def score_trials(
    ubm: DiagGMM,
    models: SpeakerModels | ModelBank,
    features: Mapping[str, np.ndarray],
    trials: Any,
    *,
    method: str = "topc",
    top_c: int | None = DEFAULT_TOP_C,
    chunk_size: int | None = None,
    memory_budget: int = DEFAULT_MEMORY_BUDGET,
    progress: bool = False,
    engine: Engine | None = None,
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
        Test features with another dimension or feature config than the models'.
    """
    method, c = _check_method(method, top_c, ubm.n_components)
    check_features(features, ubm.feature_config, "the UBM")
    tl = TrialList.from_tuples(trials)
    bank = models if isinstance(models, ModelBank) else ModelBank(ubm, models)
    pos = {m: i for i, m in enumerate(bank.ids)}
    bank_row = np.array([pos.get(m, -1) for m in tl.model_vocab], dtype=np.intp)
    unknown = np.flatnonzero(bank_row < 0)
    if unknown.size:
        i = int(np.argmax(np.isin(tl.model_codes, unknown)))
        m = tl.model_vocab[tl.model_codes[i]]
        raise DataError(
            f"{tl.where(i)}: model {m!r} is not among the {len(bank)} enrolled models "
            f"(e.g. {', '.join(repr(x) for x in bank.ids[:3])}); enroll it or fix the trials"
        )
    used = count_codes(tl.test_codes, len(tl.test_vocab)) > 0
    for code in np.flatnonzero(used).tolist():
        t = tl.test_vocab[code]
        if not _has(features, t):
            i = int(np.argmax(tl.test_codes == code))
            raise DataError(
                f"{tl.where(i)}: test utterance {t!r} is not in the feature archive; "
                f"extract its features or fix the trials"
            )
    log.info(
        "scoring %d trials (%d test utterances x %d models) with method=%s%s",
        len(tl),
        int(used.sum()),
        len(bank),
        method,
        f", C={c}" if method == "topc" else "",
    )
    scores = np.empty(len(tl), dtype=np.float64)
    rows_of: deque[np.ndarray] = deque()
    work = _groups(tl, bank_row, rows_of)
    options = (method, c, chunk_size, memory_budget)
    runs = _run(engine, ubm, bank, features, work, int(used.sum()), options, progress)
    for s in runs:
        scores[rows_of.popleft()] = s
    return scores


def _groups(
    tl: TrialList, bank_row: np.ndarray, rows_of: deque[np.ndarray]
) -> Iterator[tuple[str, np.ndarray, str]]:
    """The work of a trial list by test utterance, ``(utt_id, bank rows, name)``, made as it
    is consumed; the trial rows of each item are appended to ``rows_of`` in the same order,
    so that the caller puts each result in place with no per-trial index kept."""
    for rows in blocks_by_test(tl.test_codes, len(tl.test_vocab)):
        codes = tl.test_codes[rows]
        order = np.argsort(codes, kind="stable")
        rows, codes = rows[order], codes[order]
        starts = np.flatnonzero(np.r_[True, codes[1:] != codes[:-1]])
        ends = np.r_[starts[1:], codes.size]
        for a, b in zip(starts.tolist(), ends.tolist(), strict=True):
            group = rows[a:b]
            t = tl.test_vocab[int(codes[a])]
            rows_of.append(group)
            cols = bank_row[tl.model_codes[group]]
            yield t, cols, f"test utterance {t!r} ({tl.where(int(group.min()))})"


# ---------------------------------------------------------------------------- engine tasks
_UTTS_PER_TASK = 32


@dataclass
class _ScoreTask:
    """Some test utterances and, for each, the bank rows to score it against.

    The frames travel either as arrays or, for a :class:`~gmmspeech.FeatureStore`, as its
    path, so that workers read the features where they are.
    """

    utts: list[str]
    cols: list[np.ndarray]
    names: list[str]
    store_path: str | None = None
    arrays: list[np.ndarray] | None = None


# One open store per process, reused by the tasks of a run: opening reads the whole index,
# which per task would cost O(n_utterances) each time.
_open_store: dict[str, tuple[tuple[str, int, int], FeatureStore]] = {}


def _worker_store(path: str) -> FeatureStore:
    """The store at ``path``, opened once per process (reopened if the file was replaced)."""
    st = os.stat(path)
    key = (path, st.st_mtime_ns, st.st_size)
    held = _open_store.get("store")
    if held is not None and held[0] == key:
        return held[1]
    _close_worker_store()
    store = FeatureStore(path)
    _open_store["store"] = (key, store)
    return store


def _close_worker_store() -> None:
    held = _open_store.pop("store", None)
    if held is not None:
        held[1].close()


def _score_task(
    task: _ScoreTask, shared: tuple[DiagGMM, ModelBank, tuple[str, int, int | None, int]]
) -> list[np.ndarray]:
    """Engine map task: for each utterance of ``task``, the scores against ``cols``."""
    ubm, bank, (method, c, chunk_size, memory_budget) = shared
    store = _worker_store(task.store_path) if task.store_path is not None else None
    out: list[np.ndarray] = []
    for i, (t, cols) in enumerate(zip(task.utts, task.cols, strict=True)):
        name = task.names[i]
        raw = store[t] if store is not None else task.arrays[i]  # type: ignore[index]
        x = as_frames(raw, ubm.n_features, name=name)
        uniq, inv = np.unique(cols, return_inverse=True)
        try:
            s = _TestUtterance(ubm, x, method, c, chunk_size).scores(bank, uniq, memory_budget)
        except DataError as exc:
            raise DataError(f"{name}: {exc}") from None
        out.append(s[inv])
    return out


def _tasks(
    features: Mapping[str, np.ndarray], d: int, work: Iterable[tuple[str, np.ndarray, str]]
) -> Iterator[_ScoreTask]:
    """``work`` as tasks of a few utterances, made as they are consumed (bounded memory)."""
    store_path = str(Path(features.path).resolve()) if isinstance(features, FeatureStore) else None
    items = iter(work)
    while part := list(islice(items, _UTTS_PER_TASK)):
        utts = [t for t, _, _ in part]
        names = [name for _, _, name in part]
        arrays = None
        if store_path is None:
            arrays = [_features_of(features, t, d, name) for t, _, name in part]
        yield _ScoreTask(utts, [cols for _, cols, _ in part], names, store_path, arrays)


def _run(
    engine: Engine | None,
    ubm: DiagGMM,
    bank: ModelBank,
    features: Mapping[str, np.ndarray],
    work: Iterable[tuple[str, np.ndarray, str]],
    total: int,
    options: tuple[str, int, int | None, int],
    progress: bool,
) -> Iterator[np.ndarray]:
    """Score each ``(utt_id, bank rows, name for messages)`` of ``work`` on ``engine``
    (:class:`~gmmspeech.LocalEngine` by default); yields the scores in the order of ``work``.
    """
    engine = engine if engine is not None else LocalEngine()
    tasks = _tasks(features, ubm.n_features, work)
    window = 4 * max(1, int(getattr(engine, "parallelism", 1)))
    with (
        tqdm(total=total, desc="score", unit="utt", disable=not progress) as bar,
        blas_threads(1),  # per-utterance matrices are small: see engine.blas_threads
    ):
        try:
            for result in engine.imap(_score_task, tasks, (ubm, bank, options), window=window):
                bar.update(len(result))
                yield from result
        finally:
            _close_worker_store()


def _has(features: Mapping[str, np.ndarray], key: str) -> bool:
    try:
        return key in features
    except TypeError:
        return True


def _features_of(features: Mapping[str, np.ndarray], utt: str, d: int, name: str) -> np.ndarray:
    try:
        x = features[utt]
    except KeyError:
        raise DataError(f"{name} is not in the feature archive") from None
    return as_frames(x, d, name=name)
