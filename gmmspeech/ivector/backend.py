"""i-vector back end: LDA, WCCN, length normalisation, two-covariance PLDA, cosine scoring.

scikit-learn style: ``fit(X, y)`` with ``X`` (n, dim) vectors and ``y`` (n,) speaker labels,
then ``transform`` or ``score``; fitted attributes end with ``_``. Within-speaker statistics
need at least two utterances of every speaker: a speaker with one is a :class:`DataError`
naming it (drop such speakers, or use cosine scoring, which needs no training).

Two-covariance PLDA (Brummer & de Villiers 2010; Sizov, Lee & Kinnunen 2014): a vector of
speaker s is ``x = mu + y_s + e`` with ``y_s ~ N(0, B)`` shared by the speaker's vectors and
``e ~ N(0, W)`` independent. ``B`` and ``W`` are trained by EM (started from the between- and
within-speaker scatter). A trial's score is the log-likelihood ratio of "same speaker" to
"different speakers", in closed form (see :meth:`PLDA.score`).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence
from typing import Any

import h5py
import numpy as np
import scipy.linalg

from ..config.ivector import BackendConfig
from ..errors import DataError, GmmSpeechError, ModelFormatError
from ..storage.atomic import atomic_path
from ..storage.h5io import from_json, open_checked, read_array, write_header
from .limits import TrainingSpeakers, resolve

Enrolment = np.ndarray | Sequence[np.ndarray]


def _vectors(X: Any, name: str = "X", dim: int | None = None) -> np.ndarray:
    x = np.asarray(X, dtype=np.float64)
    if x.ndim != 2 or x.shape[0] == 0:
        raise DataError(f"{name}: expected a non-empty 2-D array (n, dim), got shape {x.shape}")
    if dim is not None and x.shape[1] != dim:
        raise DataError(f"{name}: expected vectors of dimension {dim}, got {x.shape[1]}")
    if not np.isfinite(x).all():
        row = int(np.argwhere(~np.isfinite(x))[0][0])
        raise DataError(
            f"{name}: {int((~np.isfinite(x)).sum())} value(s) are NaN or infinite (the first "
            f"in row {row})"
        )
    return x


def _groups(X: Any, y: Any, what: str) -> tuple[np.ndarray, list[np.ndarray]]:
    """Validated vectors and the row indices of each speaker (two or more each), with a
    within-speaker scatter that can be full rank (``n - speakers >= dim``; a singular one
    may pass a factorisation by rounding and give garbage, so it is refused by count)."""
    x = _vectors(X)
    labels = np.asarray(y)
    if labels.shape != (x.shape[0],):
        raise DataError(f"y: expected {x.shape[0]} labels (one per row of X), got {labels.shape}")
    uniq, inverse, counts = np.unique(labels, return_inverse=True, return_counts=True)
    single = uniq[counts < 2]
    if single.size:
        names = ", ".join(repr(str(s)) for s in single[:5])
        more = f" (+{single.size - 5} more)" if single.size > 5 else ""
        raise DataError(
            f"y: {single.size} of {uniq.size} speakers have a single utterance ({names}{more}); "
            f"{what} needs two or more per speaker to estimate within-speaker variability; "
            f"drop those speakers, add utterances, or score by cosine"
        )
    if uniq.size < 2:
        raise DataError(f"y: {what} needs at least two speakers, got {uniq.size}")
    room = x.shape[0] - uniq.size
    if room < x.shape[1]:
        raise DataError(
            f"X: {what} of {x.shape[1]}-dimensional vectors needs a full-rank within-speaker "
            f"scatter, and {x.shape[0]} vectors of {uniq.size} speakers give rank {room} at "
            f"most; reduce the dimension (e.g. ivector.rank) or add utterances"
        )
    order = np.argsort(inverse, kind="stable")
    return x, np.split(order, np.cumsum(counts)[:-1])


def _scatters(x: np.ndarray, groups: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Between- and within-speaker covariances, each normalised by the number of vectors."""
    mu = x.mean(axis=0)
    d = x.shape[1]
    sb, sw = np.zeros((d, d)), np.zeros((d, d))
    for g in groups:
        xs = x[g]
        m = xs.mean(axis=0)
        c = xs - m
        sw += c.T @ c
        sb += len(g) * np.outer(m - mu, m - mu)
    return sb / x.shape[0], sw / x.shape[0]


def length_normalize(X: Any) -> np.ndarray:
    """Scale each row to unit Euclidean length; shape (n, dim) -> (n, dim).

    Examples
    --------
    >>> from gmmspeech import length_normalize
    >>> length_normalize([[3.0, 4.0], [0.0, 2.0]]).tolist()
    [[0.6, 0.8], [0.0, 1.0]]
    """
    x = _vectors(X)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    if (norms == 0).any():
        raise DataError(f"X: row {int(np.argmin(norms))} is all zeros; it has no direction")
    return x / norms


class LDA:
    """Linear discriminant analysis: project on the top generalised eigenvectors of (Sb, Sw).

    Parameters
    ----------
    n_components : int
        Output dimension, at most ``min(dim, n_speakers - 1)``.

    Attributes
    ----------
    mean_ : ndarray, shape (dim,)
    scalings_ : ndarray, shape (dim, n_components)
        Eigenvectors, normalised so that ``scalings_' Sw scalings_ = I``, best first.
    eigenvalues_ : ndarray, shape (n_components,)
        Between- to within-speaker variance ratios, descending.

    Examples
    --------
    Two speakers apart along the first axis only: the one LDA direction is that axis:

    >>> from gmmspeech import LDA
    >>> rng = np.random.default_rng(0)
    >>> X = np.concatenate([rng.normal([-3, 0, 0], 1, (50, 3)), rng.normal([3, 0, 0], 1, (50, 3))])
    >>> lda = LDA(1).fit(X, np.repeat(["a", "b"], 50))
    >>> w = lda.scalings_[:, 0] / np.linalg.norm(lda.scalings_[:, 0])
    >>> bool(abs(w[0]) > 0.95), lda.transform(X).shape
    (True, (100, 1))
    """

    def __init__(self, n_components: int) -> None:
        if int(n_components) < 1:
            raise DataError(f"n_components: must be >= 1, got {n_components}")
        self.n_components = int(n_components)

    def fit(self, X: Any, y: Any) -> LDA:
        x, groups = _groups(X, y, "LDA")
        limit = min(x.shape[1], len(groups) - 1)
        if self.n_components > limit:
            raise DataError(
                f"n_components: at most min(dim={x.shape[1]}, speakers - 1={len(groups) - 1}) "
                f"= {limit}, got {self.n_components}"
            )
        sb, sw = _scatters(x, groups)
        try:
            vals, vecs = scipy.linalg.eigh(sb, sw)
        except np.linalg.LinAlgError:
            raise DataError(
                "X: the within-speaker covariance is singular (fewer independent vectors "
                "than dimensions); reduce the dimension first or add utterances"
            ) from None
        self.mean_ = x.mean(axis=0)
        self.eigenvalues_ = vals[::-1][: self.n_components]
        self.scalings_ = vecs[:, ::-1][:, : self.n_components]
        return self

    def transform(self, X: Any) -> np.ndarray:
        """Projected vectors, shape (n, n_components)."""
        return (_vectors(X, dim=self.mean_.size) - self.mean_) @ self.scalings_

    def fit_transform(self, X: Any, y: Any) -> np.ndarray:
        return self.fit(X, y).transform(X)


class WCCN:
    """Within-class covariance normalisation (Hatch et al. 2006).

    ``W = (1/S) sum_s (1/n_s) sum_i (x_i - m_s)(x_i - m_s)'`` (each speaker weighs the same);
    ``transform`` maps ``x`` to ``B' x`` with ``B B' = W^-1`` (``B`` lower Cholesky).

    Attributes
    ----------
    within_ : ndarray, shape (dim, dim)
    projection_ : ndarray, shape (dim, dim)
        ``B``.

    Examples
    --------
    After WCCN the within-speaker covariance of the training vectors is the identity:

    >>> from gmmspeech import WCCN
    >>> rng = np.random.default_rng(0)
    >>> y = np.repeat(np.arange(20), 10)
    >>> X = rng.normal(size=(20, 2))[y] * 5 + rng.normal(size=(200, 2)) * [3.0, 0.5]
    >>> Z = WCCN().fit_transform(X, y)
    >>> W = sum(np.cov(Z[y == s].T, bias=True) for s in range(20)) / 20
    >>> bool(np.allclose(W, np.eye(2)))
    True
    """

    def fit(self, X: Any, y: Any) -> WCCN:
        x, groups = _groups(X, y, "WCCN")
        d = x.shape[1]
        w = np.zeros((d, d))
        for g in groups:
            c = x[g] - x[g].mean(axis=0)
            w += c.T @ c / len(g)
        self.within_ = w / len(groups)
        try:
            self.projection_ = np.linalg.cholesky(np.linalg.inv(self.within_))
        except np.linalg.LinAlgError:
            raise DataError(
                "X: the within-speaker covariance is singular; apply LDA first or add utterances"
            ) from None
        return self

    def transform(self, X: Any) -> np.ndarray:
        """Normalised vectors, shape (n, dim)."""
        return _vectors(X, dim=self.projection_.shape[0]) @ self.projection_

    def fit_transform(self, X: Any, y: Any) -> np.ndarray:
        return self.fit(X, y).transform(X)


def _enrolment(enroll: Enrolment, dim: int) -> list[np.ndarray]:
    """One (n_i, dim) array per model; a 2-D array is one single-vector model per row."""
    if isinstance(enroll, np.ndarray) and enroll.ndim == 2:
        return [row[None, :] for row in _vectors(enroll, "enroll", dim)]
    models = [_vectors(np.atleast_2d(e), f"enroll[{i}]", dim) for i, e in enumerate(enroll)]
    if not models:
        raise DataError("enroll: no models")
    return models


def _logdet(a: np.ndarray) -> float:
    return float(2.0 * np.log(np.diag(np.linalg.cholesky(a))).sum())


class PLDA:
    """Two-covariance PLDA, trained by EM.

    Parameters
    ----------
    n_iter : int
        EM iterations after the moment-based start.

    Attributes
    ----------
    mean_ : ndarray, shape (dim,)
        The mean of the training vectors (kept fixed by EM).
    between_ : ndarray, shape (dim, dim)
        ``B``, the covariance of speaker means ``y_s``.
    within_ : ndarray, shape (dim, dim)
        ``W``, the covariance of a vector about its speaker's mean.
    history_ : list of float
        Training log-likelihood per iteration (of the model entering it); never decreases.
    """

    def __init__(self, n_iter: int = 10) -> None:
        if int(n_iter) < 0:
            raise DataError(f"n_iter: must be >= 0, got {n_iter}")
        self.n_iter = int(n_iter)

    def fit(self, X: Any, y: Any) -> PLDA:
        x, groups = _groups(X, y, "PLDA")
        if len(groups) <= x.shape[1]:
            raise DataError(
                f"X: PLDA of {x.shape[1]}-dimensional vectors needs more than {x.shape[1]} "
                f"speakers to estimate a full-rank between-speaker covariance, got "
                f"{len(groups)}; reduce the dimension with LDA first"
            )
        self.mean_ = x.mean(axis=0)
        self.between_, self.within_ = _scatters(x, groups)
        self.history_: list[float] = []
        for _ in range(self.n_iter):
            self.history_.append(self.log_likelihood(x, groups))
            self._em_step(x - self.mean_, groups)
        return self

    def _em_step(self, xc: np.ndarray, groups: list[np.ndarray]) -> None:
        """One EM iteration on centred vectors (posteriors of ``y_s`` grouped by count)."""
        d = xc.shape[1]
        b_inv, w_inv = np.linalg.inv(self.between_), np.linalg.inv(self.within_)
        sums = np.stack([xc[g].sum(axis=0) for g in groups])
        counts = np.array([len(g) for g in groups])
        yy = np.zeros((d, d))  # sum_s E[y_s y_s']
        nyy = np.zeros((d, d))  # sum_s n_s E[y_s y_s']
        yf = np.zeros((d, d))  # sum_s E[y_s] f_s'
        for n in np.unique(counts):
            sel = counts == n
            cov = np.linalg.inv(b_inv + n * w_inv)
            ys = sums[sel] @ w_inv @ cov  # posterior means (W^-1 and cov are symmetric)
            second = sel.sum() * cov + ys.T @ ys
            yy += second
            nyy += n * second
            yf += ys.T @ sums[sel]
        within = (xc.T @ xc - yf - yf.T + nyy) / xc.shape[0]
        self.between_ = 0.5 * (yy + yy.T) / len(groups)
        self.within_ = 0.5 * (within + within.T)

    def log_likelihood(self, X: Any, groups: list[np.ndarray]) -> float:
        """Exact log-likelihood of vectors ``X`` (n, dim) grouped by speaker (row indices).

        Per speaker of n vectors with mean m and within-scatter S_w, the joint Gaussian
        (covariance ``I_n (x) W + 1 1' (x) B``) factorises as
        ``-0.5 (n d log 2pi + (n-1) log|W| + d log n + log|B + W/n| + tr(W^-1 S_w)
        + m' (B + W/n)^-1 m)``.
        """
        x = _vectors(X, dim=self.mean_.size) - self.mean_
        d = x.shape[1]
        w_inv = np.linalg.inv(self.within_)
        logdet_w = _logdet(self.within_)
        total = 0.0
        for g in groups:
            n = len(g)
            m = x[g].mean(axis=0)
            c = x[g] - m
            mc = self.between_ + self.within_ / n
            total -= 0.5 * (
                n * d * np.log(2.0 * np.pi)
                + (n - 1) * logdet_w
                + d * np.log(n)
                + _logdet(mc)
                + np.einsum("ij,jk,ik->", c, w_inv, c)
                + m @ np.linalg.solve(mc, m)
            )
        return float(total)

    def score(self, enroll: Enrolment, test: Any) -> np.ndarray:
        """Verification log-likelihood ratios, shape (n_models, n_test).

        Parameters
        ----------
        enroll : ndarray (n_models, dim), or a list of (n_i, dim) arrays
            One vector per model, or several per model. Several vectors are scored exactly
            (not averaged): ``log p(t | e_1..e_n, same) - log p(t)``, the ratio of the joint
            Gaussian of all ``n + 1`` vectors under one speaker to the product of the
            enrolment's joint and the test's marginal.
        test : ndarray, shape (n_test, dim)
        """
        d = self.mean_.size
        models = _enrolment(enroll, d)
        t = _vectors(test, "test", d) - self.mean_
        tot = self.between_ + self.within_
        tot_p = np.linalg.inv(tot)
        base = -0.5 * (_logdet(tot) + np.einsum("ij,jk,ik->i", t, tot_p, t))
        b_inv, w_inv = np.linalg.inv(self.between_), np.linalg.inv(self.within_)
        counts = np.array([m.shape[0] for m in models])
        sums = np.stack([(m - self.mean_).sum(axis=0) for m in models])
        out = np.empty((len(models), t.shape[0]))
        for n in np.unique(counts):
            sel = np.flatnonzero(counts == n)
            post = np.linalg.inv(b_inv + n * w_inv)
            yhat = sums[sel] @ w_inv @ post
            pred = post + self.within_
            p = np.linalg.inv(pred)
            tt = np.einsum("ij,jk,ik->i", t, p, t)
            yy = np.einsum("ij,jk,ik->i", yhat, p, yhat)
            quad = tt[None, :] - 2.0 * (yhat @ p @ t.T) + yy[:, None]
            out[sel] = -0.5 * (_logdet(pred) + quad) - base[None, :]
        return out


def cosine_score(enroll: Enrolment, test: Any) -> np.ndarray:
    """Cosine similarity, shape (n_models, n_test); several enrolment vectors are
    length-normalised and averaged into one.

    Examples
    --------
    >>> from gmmspeech import cosine_score
    >>> cosine_score(np.array([[1.0, 0.0]]), np.array([[2.0, 0.0], [0.0, 3.0]])).round(6).tolist()
    [[1.0, 0.0]]
    """
    t = length_normalize(test)
    models = _enrolment(enroll, t.shape[1])
    e = np.stack([length_normalize(m).mean(axis=0) for m in models])
    return length_normalize(e) @ t.T


BACKEND_FORMAT = "gmmspeech.Backend"
BACKEND_VERSION = 1


class Backend:
    """The configured back end: centre, LDA, WCCN, length normalisation, then PLDA or cosine.

    Parameters
    ----------
    config : BackendConfig

    Attributes
    ----------
    lda_ : LDA or None
    wccn_ : WCCN or None
    mean_ : ndarray, shape (dim,)
        Mean of the projected training vectors, removed before length normalisation.
    plda_ : PLDA or None
    """

    def __init__(self, config: BackendConfig) -> None:
        self.config = config
        #: The :attr:`~gmmspeech.ivector.tv.TotalVariability.fingerprint` of the model that
        #: extracted the training i-vectors (None: unknown).
        self.tv_fingerprint_: str | None = None

    def fit(self, X: Any, y: Any | None = None) -> Backend:
        """Train on vectors ``X`` (n, R) of speakers ``y`` (n,); ``y`` may be None when
        ``config.needs_speakers`` is false (cosine without LDA and WCCN).

        ``auto`` options are chosen on these speakers (:func:`.limits.resolve`); then
        :attr:`config` holds the choice and :attr:`choices_` the reasons. An experiment
        resolves them beforehand over all of its back ends, so that they agree.
        """
        x = _vectors(X)
        self.choices_: dict[str, str] = {}
        if not self.config.resolved:
            labels = np.arange(x.shape[0]) if y is None else np.asarray(y)
            _, counts = np.unique(labels, return_counts=True)
            sets = [TrainingSpeakers("the back end", tuple(int(n) for n in counts))]
            choice = resolve(self.config, x.shape[1], sets)
            self.config, self.choices_ = choice.config, choice.reasons
        c = self.config
        if c.needs_speakers and y is None:
            raise DataError("y: speaker labels are needed for LDA, WCCN and PLDA")
        self.lda_ = LDA(c.lda_dim).fit(x, y) if isinstance(c.lda_dim, int) else None
        x = self.lda_.transform(x) if self.lda_ is not None else x
        self.wccn_ = WCCN().fit(x, y) if c.wccn else None
        x = self.wccn_.transform(x) if self.wccn_ is not None else x
        self.mean_ = x.mean(axis=0)
        x = self._finish(x)
        self.plda_ = PLDA(c.plda_iter).fit(x, y) if c.scorer == "plda" else None
        return self

    def _finish(self, x: np.ndarray) -> np.ndarray:
        x = x - self.mean_
        return length_normalize(x) if self.config.length_norm else x

    @property
    def input_dim(self) -> int:
        """The dimension of the i-vectors this back end takes."""
        if self.lda_ is not None:
            return int(self.lda_.mean_.size)
        if self.wccn_ is not None:
            return int(self.wccn_.projection_.shape[0])
        return int(self.mean_.size)

    def transform(self, X: Any) -> np.ndarray:
        """Vectors as the scorer sees them, shape (n, dim)."""
        x = _vectors(X, "i-vectors", self.input_dim)
        if self.lda_ is not None:
            x = self.lda_.transform(x)
        if self.wccn_ is not None:
            x = self.wccn_.transform(x)
        return self._finish(x)

    def score(self, enroll: Sequence[np.ndarray], test: Any) -> np.ndarray:
        """Scores (n_models, n_test) of models enrolled on the (n_i, R) i-vectors ``enroll``
        against the (n_test, R) i-vectors ``test`` (see :meth:`PLDA.score`, :func:`cosine_score`)."""
        models = [self.transform(np.atleast_2d(e)) for e in enroll]
        t = self.transform(test)
        if self.plda_ is not None:
            return self.plda_.score(models, t)
        return cosine_score(models, t)

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the fitted parameters to HDF5 (atomically)."""
        arrays: dict[str, np.ndarray] = {"mean": self.mean_}
        if self.lda_ is not None:
            arrays |= {"lda_mean": self.lda_.mean_, "lda_scalings": self.lda_.scalings_}
        if self.wccn_ is not None:
            arrays["wccn_projection"] = self.wccn_.projection_
        if self.plda_ is not None:
            p = self.plda_
            arrays |= {"plda_mean": p.mean_, "plda_between": p.between_, "plda_within": p.within_}
        with atomic_path(path) as tmp, h5py.File(tmp, "w") as f:
            write_header(f, BACKEND_FORMAT, BACKEND_VERSION, dataclasses.asdict(self.config))
            for name, a in arrays.items():
                f.create_dataset(name, data=a)
            if self.tv_fingerprint_:
                f.attrs["tv_fingerprint"] = self.tv_fingerprint_

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Backend:
        """Read a back end written by :meth:`save`.

        The datasets are checked against the back end's own config (LDA, WCCN and PLDA
        present exactly when it asks for them) and against each other, from their shapes,
        before any is read; dimensions above :data:`MAX_DIM` are refused, which bounds what
        a compressed dataset may expand to. Values must be finite.
        """
        with open_checked(path, BACKEND_FORMAT, BACKEND_VERSION) as f:
            try:
                be = cls(BackendConfig(**from_json(f.attrs.get("config"), {})))
            except (TypeError, GmmSpeechError) as exc:
                raise ModelFormatError(f"{path}: its back-end config is invalid ({exc})") from None
            if not be.config.resolved:
                raise ModelFormatError(
                    f"{path}: its back-end config has 'auto' options, which a fitted back end "
                    f"resolves; the file is damaged or forged: train it again"
                )
            shapes = {k: tuple(f[k].shape) for k in f if isinstance(f[k], h5py.Dataset)}
            dims = _check_layout(path, be.config, shapes)

            def arr(name: str) -> np.ndarray:
                return read_array(f, name, shapes[name], where=path, kinds="f", finite=True)

            be.lda_ = be.wccn_ = be.plda_ = None
            if "lda_scalings" in shapes:
                be.lda_ = LDA(dims["lda"])
                be.lda_.scalings_, be.lda_.mean_ = arr("lda_scalings"), arr("lda_mean")
            if "wccn_projection" in shapes:
                be.wccn_ = WCCN()
                be.wccn_.projection_ = arr("wccn_projection")
            be.mean_ = arr("mean")
            if "plda_between" in shapes:
                be.plda_ = PLDA(be.config.plda_iter)
                be.plda_.mean_ = arr("plda_mean")
                be.plda_.between_, be.plda_.within_ = arr("plda_between"), arr("plda_within")
            tv = f.attrs.get("tv_fingerprint")
            be.tv_fingerprint_ = str(tv) if tv else None
        return be


#: The largest i-vector or projected dimension a back-end file may declare.
MAX_DIM = 4096


def _check_layout(
    path: str | os.PathLike[str], c: BackendConfig, shapes: dict[str, tuple[int, ...]]
) -> dict[str, int]:
    """The dimensions of a back-end file from its dataset shapes, checked against its config
    and each other (nothing is read); a :class:`ModelFormatError` says what disagrees."""

    def bad(what: str) -> ModelFormatError:
        return ModelFormatError(f"{path}: {what}; the file is damaged or forged: train it again")

    def shape(name: str, ndim: int) -> tuple[int, ...]:
        if name not in shapes:
            raise bad(f"missing dataset {name!r}")
        got = shapes[name]
        if len(got) != ndim or any(not 0 < n <= MAX_DIM for n in got):
            raise bad(
                f"dataset {name!r} has shape {got}, expected {ndim} dimension(s) of 1..{MAX_DIM}"
            )
        return got

    groups = {
        "lda": ("lda_scalings", "lda_mean"),
        "wccn": ("wccn_projection",),
        "plda": ("plda_mean", "plda_between", "plda_within"),
    }
    wanted = {"lda": c.lda_dim is not None, "wccn": c.wccn, "plda": c.scorer == "plda"}
    for g, names in groups.items():
        present = [n for n in names if n in shapes]
        if (wanted[g] and len(present) < len(names)) or (not wanted[g] and present):
            say = "asks for" if wanted[g] else "has no"
            raise bad(
                f"its config {say} {g.upper()} but the file holds {present or 'none'} of "
                f"{list(names)}"
            )
    dims: dict[str, int] = {}
    d = shape("mean", 1)[0]
    if wanted["lda"]:
        r, k = shape("lda_scalings", 2)
        if k != c.lda_dim or shape("lda_mean", 1) != (r,):
            raise bad(
                f"LDA datasets of shapes {shapes['lda_scalings']} and {shapes['lda_mean']} "
                f"for lda_dim {c.lda_dim}"
            )
        dims["lda"] = k
    if wanted["wccn"]:
        w = shape("wccn_projection", 2)
        if w[0] != w[1] or (wanted["lda"] and w[0] != dims["lda"]):
            raise bad(f"dataset 'wccn_projection' has shape {w}")
    if wanted["plda"]:
        for name, nd in (("plda_mean", 1), ("plda_between", 2), ("plda_within", 2)):
            if shape(name, nd) != (d,) * nd:
                raise bad(f"dataset {name!r} has shape {shapes[name]}, expected {(d,) * nd}")
    out = dims.get("lda", shapes["wccn_projection"][0] if wanted["wccn"] else d)
    if out != d:
        raise bad(f"dataset 'mean' has {d} values but the projections give dimension {out}")
    return dims


__all__ = ["LDA", "PLDA", "WCCN", "Backend", "cosine_score", "length_normalize"]
