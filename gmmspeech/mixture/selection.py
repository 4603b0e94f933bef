"""Gaussian selection: numba kernels that evaluate only a few components per frame.

EM on a large UBM spends its time evaluating every component on every frame, although a
frame's posterior mass lies on a few dozen of them. Here each frame carries a short list of
candidate components (Kaldi's ``gselect``); the kernel evaluates and accumulates only those,
in float64, and can return the best ``n_keep`` of them as the frame's next selection.
Selections are carried through splits (the children of a frame's selected components are
its candidates), so the dense pass over all K is paid once, at a small K.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from .gmm import DiagGMM
from .stats import SufficientStats, accumulate_selecting

__all__ = [
    "AUTO_MIN_COMPONENTS",
    "MIN_POST",
    "N_PARTS",
    "SelectionPass",
    "accumulate_selected_shard",
    "N_SELECT",
    "accumulate_candidates",
    "load_kernels",
    "expand_candidates",
    "selection_quality",
    "top_rows",
    "selection_dtype",
]

#: components kept per frame (Kaldi's ``num_gselect``)
N_SELECT = 30
#: posteriors below this are left out of selected statistics (the rest renormalised)
MIN_POST = 1e-4
#: ``selection: auto`` selects from this many components on (below, a dense pass is cheap)
AUTO_MIN_COMPONENTS = 256
#: frames per kernel call (shard chunks are joined up to this size)
_KERNEL_FRAMES = 65536
#: fixed number of partial-sum slots per call: the summation order, and so the model, does
#: not depend on how many threads numba runs
N_PARTS = 8
# terms more than this far below a frame's best are taken as 0 (as the dense kernel's floor)
_LOG_FLOOR = -80.0
_LOG_2PI = float(np.log(2.0 * np.pi))


# numba is imported, and the kernels compiled, when a kernel is first called
# (:func:`_kernels`): commands that never select, such as `gmmspeech score --help`, start
# without its imports. The kernels name ``prange``, which is numba's by the time they compile.
prange = range


def selection_dtype(n_components: int) -> type[np.signedinteger]:
    """The index type of selections for a K-component model (int16 while K fits)."""
    return np.int16 if n_components < 2**15 else np.int32


def _accumulate(x, cand, shift, means_c, prec, g, min_post, acc, out_sel):  # pragma: no cover
    # x (n, D) float32; cand (n, C) int, -1 = none; shift (D,) float64; means_c = means -
    # shift (K, D) and prec (K, D), float32 (the dense E-step's precision); g (K,) = log w -
    # 0.5 (D log 2pi + sum log var) float64; min_post: posteriors below it are not
    # accumulated (the rest renormalised); acc (P, K, 2D+1) float64, added to; out_sel (n, S)
    # (S = 0: not wanted). Returns the per-part log-likelihoods (over all candidates).
    n, d = x.shape
    c = cand.shape[1]
    n_parts = acc.shape[0]
    n_keep = out_sel.shape[1]
    ll = np.zeros(n_parts)
    for p in prange(n_parts):
        lo = p * n // n_parts
        hi = (p + 1) * n // n_parts
        a = acc[p]
        xd = np.empty(d)
        xc = np.empty(d, dtype=np.float32)
        lp = np.empty(c)
        e = np.empty(c)
        bv = np.empty(max(n_keep, 1))
        # the last frame that took each component: a candidate listed twice counts once
        seen = np.full(g.shape[0], -1, dtype=np.int64)
        tot = 0.0
        for t in range(lo, hi):
            for j in range(d):
                xd[j] = np.float64(x[t, j]) - shift[j]
                xc[j] = np.float32(xd[j])
            best = -np.inf
            for i in range(c):
                k = cand[t, i]
                if k < 0 or seen[k] == t:
                    lp[i] = -np.inf
                    continue
                seen[k] = t
                v = g[k] - 0.5 * np.float64(_mahalanobis(xc, means_c[k], prec[k]))
                lp[i] = v
                if v > best:
                    best = v
            total = 0.0
            for i in range(c):
                u = lp[i] - best
                if u > _LOG_FLOOR:
                    e[i] = np.exp(u)
                    total += e[i]
                else:
                    e[i] = 0.0
            tot += best + np.log(total)
            # the statistics take the posteriors of at least min_post, renormalised: most
            # of a frame's candidates hold a negligible share and cost a 2D-row update each
            lim = min_post * total
            kept = 0.0
            for i in range(c):
                if e[i] >= lim:
                    kept += e[i]
            for i in range(c):
                if e[i] >= lim and e[i] > 0.0:
                    gam = e[i] / kept
                    k = cand[t, i]
                    a[k, 2 * d] += gam
                    for j in range(d):
                        gx = gam * xd[j]
                        a[k, j] += gx
                        a[k, d + j] += gx * xd[j]
            if n_keep > 0:
                _keep_best(lp, cand[t], bv, out_sel[t])
        ll[p] = tot
    return ll


def _mahalanobis(xc, mu, prec):  # pragma: no cover - numba
    # sum_j (xc_j - mu_j)**2 prec_j in float32, compiled with reassociation so that the sum
    # is vectorised (fixed order for a given build: the result does not depend on threads)
    s = np.float32(0.0)
    for j in range(xc.shape[0]):
        diff = xc[j] - mu[j]
        s += diff * diff * prec[j]
    return s


def _keep_best(lp, cand_t, bv, out):  # pragma: no cover - numba
    # the len(out) candidates with the highest lp, best first, into out (-1: none); an
    # insertion buffer bv of their values (most candidates fail the first comparison);
    # ties: the earlier candidate wins
    s = out.shape[0]
    for r in range(s):
        bv[r] = -np.inf
        out[r] = -1
    for i in range(lp.shape[0]):
        v = lp[i]
        if v > bv[s - 1] and cand_t[i] >= 0:
            r = s - 1
            while r > 0 and bv[r - 1] < v:
                bv[r] = bv[r - 1]
                out[r] = out[r - 1]
                r -= 1
            bv[r] = v
            out[r] = cand_t[i]


def _top_rows(logp, idx, vals):  # pragma: no cover - numba
    # per row of logp (n, K): the C = idx.shape[1] largest values, best first (a sorted
    # buffer of C: most entries fail the first comparison)
    n, k = logp.shape
    c = idx.shape[1]
    for t in prange(n):
        for r in range(c):
            vals[t, r] = -np.inf
            idx[t, r] = -1
        for j in range(k):
            v = logp[t, j]
            if v > vals[t, c - 1]:
                r = c - 1
                while r > 0 and vals[t, r - 1] < v:
                    vals[t, r] = vals[t, r - 1]
                    idx[t, r] = idx[t, r - 1]
                    r -= 1
                vals[t, r] = v
                idx[t, r] = j


@functools.cache
def _kernels() -> tuple[Any, Any]:
    """The compiled ``(_accumulate, _top_rows)`` (numba's on-disk cache makes this cheap
    after the first process)."""
    import numba

    global prange, _mahalanobis, _keep_best
    prange = numba.prange
    # the helpers are compiled first and rebound, so that the kernel calls (and inlines)
    # the compiled ones; only the distance may reassociate (no assumption about inf/NaN)
    _mahalanobis = numba.njit(cache=True, fastmath={"reassoc", "contract"})(_mahalanobis)
    _keep_best = numba.njit(cache=True)(_keep_best)
    jit = numba.njit(parallel=True, cache=True, fastmath=False)
    return jit(_accumulate), jit(_top_rows)


def top_rows(logp: np.ndarray, c: int) -> tuple[np.ndarray, np.ndarray]:
    """The ``c`` largest entries of each row and their columns, best first (ties: the
    first column wins).

    Parameters
    ----------
    logp : ndarray, shape (n, K), float32 or float64
        E.g. a block of ``log w_k N_k(x_t)``; NaN entries are never chosen.
    c : int
        1 <= c <= K.

    Returns
    -------
    idx : ndarray, shape (n, c), intp
    vals : ndarray, shape (n, c), float64
    """
    n = logp.shape[0]
    idx = np.empty((n, int(c)), dtype=np.intp)
    vals = np.empty((n, int(c)), dtype=np.float64)
    _kernels()[1](np.ascontiguousarray(logp), idx, vals)
    return idx, vals


def _parameters(gmm: DiagGMM) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(shift (D,) float64, means - shift (K, D) float32, precisions (K, D) float32,
    g (K,) float64): the distances are taken in float32 about the model's centre, as the
    dense E-step's."""
    shift = gmm.center
    prec = (1.0 / gmm.variances).astype(np.float32)
    with np.errstate(divide="ignore"):
        logw = np.log(gmm.weights)
    g = logw - 0.5 * (gmm.n_features * _LOG_2PI + np.log(gmm.variances).sum(axis=1))
    means_c = np.ascontiguousarray(gmm.means - shift, dtype=np.float32)
    return shift, means_c, np.ascontiguousarray(prec), g


def accumulate_candidates(
    gmm: DiagGMM,
    x: np.ndarray,
    cand: np.ndarray,
    acc: np.ndarray,
    n_keep: int = 0,
    params: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None = None,
    min_post: float = 0.0,
) -> tuple[float, np.ndarray | None]:
    """Add the statistics of frames over their candidate components to ``acc``.

    The posteriors are those of the mixture restricted to each frame's candidates
    (renormalised over them); terms more than 80 nats below a frame's best are dropped.
    Component log-densities are evaluated in float32 (as in the dense E-step), everything
    after in float64.

    Parameters
    ----------
    gmm : DiagGMM
        The model (K components, D features); statistics are taken about ``gmm.center``.
    x : ndarray, shape (n, D), float32
        Frames.
    cand : ndarray, shape (n, C), int16 or int32
        Candidate component indices per frame; -1 marks an empty slot; a component listed
        twice for a frame counts once.
    acc : ndarray, shape (P, K, 2D + 1), float64
        Partial sums, added to in place: ``[:, :, :D]`` first order, ``[:, :, D:2D]`` second
        order, ``[:, :, 2D]`` counts; slot ``p`` takes the ``p``-th of P equal runs of frames.
    n_keep : int
        Also return the ``n_keep`` best candidates of each frame (0: do not).
    params : tuple, optional
        ``_parameters(gmm)``, when the caller keeps them across calls.
    min_post : float
        Posteriors below this are left out of the statistics and the rest renormalised
        (Kaldi's ``min_post``); the log-likelihood still sums every candidate.

    Returns
    -------
    log_likelihood : float
        ``sum_t log sum_{k in cand_t} w_k N_k(x_t)``.
    selection : ndarray, shape (n, n_keep), dtype of ``cand``, or None
        Best first; -1 where a frame had fewer candidates.
    """
    shift, means_c, prec, g = params if params is not None else _parameters(gmm)
    xs = np.ascontiguousarray(x, dtype=np.float32)
    cs = np.ascontiguousarray(cand)
    out = np.empty((xs.shape[0], max(0, int(n_keep))), dtype=cs.dtype)
    ll = _kernels()[0](xs, cs, shift, means_c, prec, g, float(min_post), acc, out)
    return float(ll.sum()), (out if n_keep > 0 else None)


def expand_candidates(
    sel: np.ndarray, children: np.ndarray, dropped: np.ndarray | None = None
) -> np.ndarray:
    """Candidates after a split or a re-seeding: each selected component and its children.

    Parameters
    ----------
    sel : ndarray, shape (n, S)
        Selections under the model before the change (-1: empty slot).
    children : ndarray, shape (K_old,) or (K_old, m)
        ``children[k]``: the component(s) split off ``k``, or -1.
    dropped : ndarray, optional
        Components that moved (re-seeded dead ones): taken out of ``sel`` first; they come
        back as the children of the component they were split off, so no frame holds one
        twice.

    Returns
    -------
    ndarray, shape (n, (1 + m) S), dtype of ``sel``
    """
    if dropped is not None and dropped.size:
        sel = np.where(np.isin(sel, dropped), -1, sel).astype(sel.dtype)
    table = children.reshape(children.shape[0], -1)
    valid = sel >= 0
    at = np.maximum(sel, 0)
    parts = [sel]
    for col in table.T:
        parts.append(np.where(valid, col[at], -1).astype(sel.dtype))
    return np.concatenate(parts, axis=1)


def selection_quality(
    gmm: DiagGMM, x: np.ndarray, sel: np.ndarray, top: int = 5, chunk_size: int = 4096
) -> tuple[np.ndarray, float]:
    """How much of the dense posterior a selection keeps.

    Parameters
    ----------
    gmm : DiagGMM
    x : ndarray, shape (n, D)
    sel : ndarray, shape (n, S)
        Selections (-1: empty slot).
    top : int
        Size of the exact top set that should be inside the selection.

    Returns
    -------
    mass : ndarray, shape (n,), float64
        ``sum_{k in sel_t} p(k | x_t)`` under the dense model.
    contains_top : float
        Fraction of frames whose selection contains all of their ``top`` best components.
    """
    mass = np.empty(x.shape[0])
    hits = 0
    for a in range(0, x.shape[0], chunk_size):
        b = min(a + chunk_size, x.shape[0])
        logp = gmm.component_log_likelihoods(x[a:b]).astype(np.float64)
        # the exact top set by log-likelihood (posteriors tie at the denormal floor)
        best = top_rows(logp, top)[0]
        logp -= logp.max(axis=1, keepdims=True)
        post = np.exp(logp)
        post /= post.sum(axis=1, keepdims=True)
        s = sel[a:b].astype(np.int64)
        valid = s >= 0
        mass[a:b] = np.where(valid, np.take_along_axis(post, np.maximum(s, 0), axis=1), 0).sum(1)
        inside = (best[:, :, None] == np.where(valid, s, -1)[:, None, :]).any(axis=2)
        hits += int(inside.all(axis=1).sum())
    return mass, hits / max(1, x.shape[0])


@dataclass(frozen=True)
class SelectionPass:
    """The shared part of one selected E-step (sent once per iteration to every worker).

    Attributes
    ----------
    gmm : DiagGMM
    chunk_size : int
        Block size of the shards' ``chunks``.
    mode : {"dense", "expand", "reuse"}
        ``dense``: evaluate every component and select the ``n_select`` best per frame;
        ``expand``: candidates are the carried selection and its components' children
        (``children``), the ``n_select`` best become the new selection; ``reuse``: evaluate
        the carried selection only.
    n_select : int
    children : ndarray, shape (K_old,) or (K_old, m), optional
        For ``expand``: the components split off each old component, or -1.
    dropped : ndarray, optional
        For ``expand``: re-seeded components, taken out of the carried selections.
    min_post : float
        Posteriors below this are left out of the statistics (``dense`` passes keep all).
    """

    gmm: DiagGMM
    chunk_size: int
    mode: str
    n_select: int = N_SELECT
    children: np.ndarray | None = None
    dropped: np.ndarray | None = None
    min_post: float = 0.0


def _top_columns(logp: np.ndarray, n: int) -> np.ndarray:
    """The columns of the ``n`` largest entries of each row (the numba scan)."""
    return top_rows(logp, n)[0]


def _joined(chunks: Iterable[np.ndarray], target: int) -> Iterator[np.ndarray]:
    """Consecutive chunks joined into blocks of at least ``target`` frames (the last may be
    shorter), in order. Each chunk is copied: a source may hand out every chunk in one
    reused buffer (feature stores and lists of utterances do)."""
    parts: list[np.ndarray] = []
    size = 0
    for c in chunks:
        parts.append(np.array(c, dtype=np.float32, copy=True))
        size += parts[-1].shape[0]
        if size >= target:
            yield np.concatenate(parts) if len(parts) > 1 else parts[0]
            parts, size = [], 0
    if parts:
        yield np.concatenate(parts) if len(parts) > 1 else parts[0]


def accumulate_selected_shard(
    item: tuple[Any, np.ndarray | None], shared: SelectionPass
) -> tuple[SufficientStats, np.ndarray]:
    """E-step over one shard with Gaussian selection: the engines' map task.

    Parameters
    ----------
    item : (shard, selection)
        A shard (anything with ``chunks(chunk_size)``) and its frames' selections, shape
        (n_frames, S), from the previous pass (None for ``dense``).
    shared : SelectionPass

    Returns
    -------
    stats : SufficientStats
        About ``gmm.center``; ``log_likelihood`` is that of the mixture restricted to each
        frame's candidates (the dense one for ``dense``).
    selection : ndarray, shape (n_frames, S)
        The selection for the next pass.
    """
    shard, sel = item
    gmm, cs = shared.gmm, shared.chunk_size
    k, d = gmm.n_components, gmm.n_features
    if shared.mode == "dense":
        total = SufficientStats.zeros(k, d, gmm.center)
        parts = []
        for block in shard.chunks(cs):
            st, s = accumulate_selecting(
                gmm, block, shared.n_select, chunk_size=cs, top=_top_columns
            )
            total = total + st
            parts.append(s)
        width = min(shared.n_select, k)
        dtype = selection_dtype(k)
        return total, (np.concatenate(parts) if parts else np.empty((0, width), dtype=dtype))
    if sel is None:
        raise ValueError("accumulate_selected_shard: a carried selection is needed")
    params = _parameters(gmm)
    acc = np.zeros((N_PARTS, k, 2 * d + 1))
    ll = 0.0
    pos = 0
    new_parts = []
    for block in _joined(shard.chunks(cs), _KERNEL_FRAMES):
        n = block.shape[0]
        cand = sel[pos : pos + n]
        mp = shared.min_post
        if shared.mode == "expand" and shared.children is not None:
            cand = expand_candidates(cand, shared.children, shared.dropped)
            part_ll, new = accumulate_candidates(
                gmm, block, cand, acc, shared.n_select, params, min_post=mp
            )
            if new is not None:
                new_parts.append(new)
        else:
            part_ll, _ = accumulate_candidates(gmm, block, cand, acc, 0, params, min_post=mp)
        ll += part_ll
        pos += n
    a = acc.sum(axis=0)
    stats = SufficientStats(
        zeroth=a[:, 2 * d].copy(),
        first=a[:, :d].copy(),
        second=a[:, d : 2 * d].copy(),
        shift=gmm.center,
        log_likelihood=ll,
        n_frames=pos,
    )
    if shared.mode == "expand":
        return stats, (np.concatenate(new_parts) if new_parts else sel[:0])
    return stats, sel


def load_kernels() -> float:
    """Compile the kernels (or load them from numba's on-disk cache) for the argument types
    training uses; returns the seconds this took. Once per process: a bench calls it first
    so that its timings are of the training, not of loading numba."""
    t0 = time.perf_counter()
    gmm = DiagGMM(np.full(2, 0.5), np.zeros((2, 1)), np.ones((2, 1)))
    x = np.zeros((4, 1), dtype=np.float32)
    acc = np.zeros((N_PARTS, 2, 3))
    for dtype in (np.int16, np.int32):
        accumulate_candidates(gmm, x, np.zeros((4, 2), dtype=dtype), acc, n_keep=1)
    top_rows(np.zeros((4, 2), dtype=np.float32), 1)
    top_rows(np.zeros((4, 2), dtype=np.float64), 1)
    return time.perf_counter() - t0


def n_threads() -> int:
    """Threads the kernels run on (numba's setting)."""
    import numba

    return int(numba.get_num_threads())
