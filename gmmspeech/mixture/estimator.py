"""``GaussianMixture``: a scikit-learn estimator for diagonal-covariance mixtures.

It runs the toolkit's own EM (the float32 block kernel of :func:`gmmspeech.accumulate`, the
M-step with variance floor and dead-component repair of :func:`gmmspeech.em.estimate`, and the
binary splitting of UBM training), behind scikit-learn's ``fit`` / ``predict`` /
``score_samples`` interface, and converts to and from :class:`~gmmspeech.DiagGMM`.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
from scipy import sparse
from sklearn.base import BaseEstimator, DensityMixin
from sklearn.exceptions import NotFittedError
from sklearn.utils.validation import check_is_fitted, check_random_state, validate_data

from ..errors import ConfigError, ConvergenceWarning, DataError
from ..features.framesource import ArraySource, shard_moments
from .em import estimate, floor_scale, split_components, split_plan, variance_floor
from .gmm import DiagGMM
from .stats import SufficientStats, accumulate

__all__ = ["GaussianMixture", "ModelNotFittedError", "check_fitted"]

_INITS = ("split", "kmeans", "random")
# the robust scale of the variance floor is taken from at most this many samples (every n-th)
_ROBUST_SAMPLE = 100_000


class ModelNotFittedError(DataError, NotFittedError):
    """An estimator was used before ``fit`` (both a DataError and scikit-learn's
    NotFittedError, so either ``except`` catches it)."""


def check_fitted(est: BaseEstimator, attribute: str) -> None:
    """Raise :class:`ModelNotFittedError` (naming the estimator) if ``est`` lacks ``attribute``."""
    try:
        check_is_fitted(est, attribute)
    except NotFittedError:
        name = type(est).__name__
        raise ModelNotFittedError(
            f"{name}: this instance is not fitted yet; call fit() before using it"
        ) from None


class GaussianMixture(DensityMixin, BaseEstimator):
    """Diagonal-covariance Gaussian mixture fitted by the toolkit's EM.

    The E-step is the float32 block kernel with float64 accumulators; every M-step floors
    the variances (relative to a robust per-dimension scale of the data) and re-seeds dead
    components by splitting the heaviest live one, so a fit never yields NaN.

    Parameters
    ----------
    n_components : int
        Number of mixture components K.
    init : {"kmeans", "split", "random"}
        How EM starts (default ``"kmeans"``, which on clustered data starts nearer the
        optimum than splitting, at a fraction of its cost). ``"split"``: from one Gaussian, binary splitting along each
        component's widest dimension with up to ``split_iterations`` EM iterations after
        each split, as in UBM training (deterministic, so only one of ``n_init`` runs is
        made).
        ``"kmeans"``: from the hard clusters of scikit-learn's ``KMeans`` on at most
        ``init_max_samples`` random samples (then EM on all of them). ``"random"``:
        means at K distinct random samples, variances those of the data divided by K,
        equal weights.
    n_init : int
        Initialisations to try; the one with the highest final ``lower_bound_`` is kept.
    max_iter : int
        EM iterations at the full size K (the split stages before it are initialisation).
    tol : float
        Convergence threshold on the change of the mean per-sample log-likelihood between
        iterations (as scikit-learn's ``tol``).
    random_state : int, RandomState instance or None
        Seed of ``"kmeans"`` and ``"random"`` initialisation and of :meth:`sample`.
    var_floor_ratio : float
        Variance floor as a fraction of the data's median-based variance per dimension
        (``(1.4826 MAD)**2``, capped by the plain variance), applied at every M-step.
    min_count, min_weight : float
        A component with fewer (soft) samples or a smaller weight is dead and is re-seeded.
    split_epsilon : float
        Offset of a split, in standard deviations along the widest dimension.
    split_iterations : tuple of int
        At most this many EM iterations after each split before the final size (the last
        entry repeats); a stage ends early once an iteration gains less than ``tol``.
    chunk_size : int
        Samples per block of the E-step (memory is O(chunk_size x K)).
    init_max_samples : int, optional
        ``"kmeans"`` clusters a random subset of this many samples (default: 50 per
        component, at least 10 000); k-means on all of them would cost more than EM.

    Attributes
    ----------
    weights_ : ndarray, shape (n_components,)
    means_ : ndarray, shape (n_components, n_features)
    covariances_ : ndarray, shape (n_components, n_features)
        Diagonal variances.
    precisions_ : ndarray, shape (n_components, n_features)
        ``1 / covariances_``.
    var_floor_ : ndarray, shape (n_features,)
        The variance floor used in training.
    converged_ : bool
    n_iter_ : int
        EM iterations of the best run at full size.
    lower_bound_ : float
        Mean per-sample log-likelihood at the last E-step of the best run.
    lower_bounds_ : list of float
        That value at every iteration of the best run.
    n_repairs_ : int
        Dead components re-seeded during the best run.
    n_features_in_ : int

    Examples
    --------
    Two groups on a line, found again:

    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> X = np.concatenate([rng.normal(-3, 1, 500), rng.normal(3, 1, 500)])[:, None]
    >>> gm = GaussianMixture(n_components=2, random_state=0).fit(X)
    >>> np.sort(gm.means_.ravel()).round(0).tolist()
    [-3.0, 3.0]
    >>> gm.predict([[-2.5], [2.5]]).tolist() == [int(np.argmin(gm.means_)), int(np.argmax(gm.means_))]
    True
    """

    def __init__(
        self,
        n_components: int = 1,
        *,
        init: str = "kmeans",
        n_init: int = 1,
        max_iter: int = 100,
        tol: float = 1e-3,
        random_state: Any = None,
        var_floor_ratio: float = 1e-3,
        min_count: float = 1.0,
        min_weight: float = 1e-5,
        split_epsilon: float = 0.5,
        split_iterations: tuple[int, ...] = (10,),
        chunk_size: int = 2048,
        init_max_samples: int | None = None,
    ) -> None:
        self.n_components = n_components
        self.init = init
        self.n_init = n_init
        self.max_iter = max_iter
        self.tol = tol
        self.random_state = random_state
        self.var_floor_ratio = var_floor_ratio
        self.min_count = min_count
        self.min_weight = min_weight
        self.split_epsilon = split_epsilon
        self.split_iterations = split_iterations
        self.chunk_size = chunk_size
        self.init_max_samples = init_max_samples

    # ------------------------------------------------------------------ checks
    def _check_params(self) -> None:
        def need(ok: bool, name: str, what: str) -> None:
            if not ok:
                raise ConfigError(
                    f"GaussianMixture: {name} must be {what}, got {getattr(self, name)!r}"
                )

        def is_int(v: Any) -> bool:
            return isinstance(v, (int, np.integer)) and not isinstance(v, bool)

        need(is_int(self.n_components) and self.n_components >= 1, "n_components", "an int >= 1")
        need(self.init in _INITS, "init", f"one of {', '.join(map(repr, _INITS))}")
        need(is_int(self.n_init) and self.n_init >= 1, "n_init", "an int >= 1")
        need(is_int(self.max_iter) and self.max_iter >= 1, "max_iter", "an int >= 1")
        need(is_int(self.chunk_size) and self.chunk_size >= 1, "chunk_size", "an int >= 1")
        m = self.init_max_samples
        need(m is None or (is_int(m) and m >= 1), "init_max_samples", "None or an int >= 1")
        need(float(self.tol) >= 0, "tol", ">= 0")
        need(0 <= float(self.var_floor_ratio) < 1, "var_floor_ratio", "in [0, 1)")
        need(float(self.min_count) >= 0, "min_count", ">= 0")
        need(0 <= float(self.min_weight) < 1, "min_weight", "in [0, 1)")
        need(0 < float(self.split_epsilon) <= 5, "split_epsilon", "in (0, 5]")
        its = tuple(self.split_iterations)
        need(
            len(its) >= 1 and all(is_int(i) and i >= 0 for i in its),
            "split_iterations",
            "a non-empty tuple of ints >= 0",
        )

    # ------------------------------------------------------------------ EM
    def _em(
        self, gmm: DiagGMM, X: np.ndarray, floor: np.ndarray, n_iter: int, tol: float | None
    ) -> tuple[DiagGMM, list[float], int, bool]:
        """Up to ``n_iter`` EM iterations (stop early when the change is below ``tol``).

        Returns the model, the mean log-likelihood of each E-step, the repairs, converged.
        """
        lls: list[float] = []
        repairs = 0
        for _ in range(n_iter):
            stats = accumulate(gmm, X, chunk_size=self.chunk_size)
            lls.append(stats.log_likelihood / stats.n_frames)
            w, mu, var, rep = estimate(
                stats,
                var_floor=floor,
                min_count=float(self.min_count),
                min_weight=float(self.min_weight),
                split_epsilon=float(self.split_epsilon),
            )
            repairs += rep
            gmm = DiagGMM(w, mu, var, var_floor=floor)
            if tol is not None and len(lls) >= 2 and abs(lls[-1] - lls[-2]) < tol:
                return gmm, lls, repairs, True
        return gmm, lls, repairs, False

    def _initial(
        self,
        X: np.ndarray,
        floor: np.ndarray,
        mean: np.ndarray,
        var: np.ndarray,
        rng: np.random.RandomState,
    ) -> tuple[DiagGMM, int]:
        """The model EM starts from at full size, and the repairs made on the way."""
        k = int(self.n_components)
        n = X.shape[0]
        if self.init == "split":
            gmm = DiagGMM([1.0], mean[None, :], np.maximum(var, floor)[None, :], var_floor=floor)
            repairs = 0
            its = tuple(self.split_iterations)
            for j, size in enumerate(split_plan(k)[1:]):
                gmm = split_components(gmm, size - gmm.n_components, float(self.split_epsilon))
                if size < k:
                    n_it = its[min(j, len(its) - 1)]
                    gmm, _, rep, _ = self._em(gmm, X, floor, n_it, float(self.tol))
                    repairs += rep
            return gmm, repairs
        if self.init == "random":
            idx = rng.choice(n, size=k, replace=False)
            mu = X[idx].astype(np.float64)
            # narrower than the data (var / K), so that the components separate quickly
            v = np.broadcast_to(np.maximum(var / k, floor), (k, X.shape[1]))
            return DiagGMM(np.full(k, 1.0 / k), mu, v, var_floor=floor), 0
        from sklearn.cluster import KMeans

        m = self.init_max_samples
        m = max(10_000, 50 * k) if m is None else int(m)
        sub = X if n <= max(m, k) else X[np.sort(rng.choice(n, size=max(m, k), replace=False))]
        n = sub.shape[0]
        labels = KMeans(n_clusters=k, n_init=1, random_state=rng).fit(sub).labels_
        # hard responsibilities as sufficient statistics, then the toolkit's M-step
        z = sub.astype(np.float64) - mean
        onehot = sparse.csr_matrix((np.ones(n), (labels, np.arange(n))), shape=(k, n))
        stats = SufficientStats(
            np.asarray(onehot.sum(axis=1)).ravel(),
            np.asarray(onehot @ z),
            np.asarray(onehot @ (z * z)),
            mean.copy(),
            0.0,
            n,
        )
        w, mu, v, repairs = estimate(
            stats,
            var_floor=floor,
            min_count=float(self.min_count),
            min_weight=float(self.min_weight),
            split_epsilon=float(self.split_epsilon),
        )
        return DiagGMM(w, mu, v, var_floor=floor), repairs

    def fit(self, X: Any, y: Any = None) -> GaussianMixture:
        """Estimate the mixture by EM.

        Parameters
        ----------
        X : array-like, shape (n_samples, n_features)
        y : ignored

        Returns
        -------
        self
        """
        self._check_params()
        X = validate_data(self, X, dtype=np.float32, order="C", ensure_min_samples=2)
        n, d = X.shape
        k = int(self.n_components)
        if n < k:
            raise DataError(
                f"X: {n} samples are fewer than n_components={k}; use n_components <= {n}"
            )
        moments = shard_moments(ArraySource(X), int(self.chunk_size))
        stride = max(1, -(-n // _ROBUST_SAMPLE))
        scale, _ = floor_scale(moments.var, X[::stride])
        floor = variance_floor(scale, float(self.var_floor_ratio))
        rng = check_random_state(self.random_state)
        runs = 1 if self.init == "split" else int(self.n_init)
        best: tuple[DiagGMM, list[float], int, bool] | None = None
        for _ in range(runs):
            gmm, init_repairs = self._initial(X, floor, moments.mean, moments.var, rng)
            run = self._em(gmm, X, floor, int(self.max_iter), self.tol)
            if best is None or run[1][-1] > best[1][-1]:
                best = (run[0], run[1], run[2] + init_repairs, run[3])
        gmm, lls, repairs, converged = best  # type: ignore[misc]  # runs >= 1
        if not converged:
            warnings.warn(
                f"GaussianMixture: EM did not converge in max_iter={self.max_iter} iterations "
                f"(last change {lls[-1] - lls[-2] if len(lls) > 1 else float('nan'):.3g}, "
                f"tol={self.tol}); raise max_iter or tol",
                ConvergenceWarning,
                stacklevel=2,
            )
        self._set_model(gmm)
        self.converged_ = bool(converged)
        self.n_iter_ = len(lls)
        self.lower_bounds_ = lls
        self.lower_bound_ = float(lls[-1])
        self.n_repairs_ = int(repairs)
        return self

    def _set_model(self, gmm: DiagGMM) -> None:
        self.weights_ = gmm.weights.copy()
        self.means_ = gmm.means.copy()
        self.covariances_ = gmm.variances.copy()
        self.precisions_ = 1.0 / self.covariances_
        self.var_floor_ = None if gmm.var_floor is None else gmm.var_floor.copy()

    # ------------------------------------------------------------------ DiagGMM
    def to_diag_gmm(self) -> DiagGMM:
        """The fitted mixture as a :class:`~gmmspeech.DiagGMM` (a copy), e.g. to use as a UBM.

        Returns
        -------
        DiagGMM
            With ``var_floor`` set to the floor used in training.
        """
        check_fitted(self, "means_")
        return DiagGMM(self.weights_, self.means_, self.covariances_, var_floor=self.var_floor_)

    @classmethod
    def from_diag_gmm(cls, gmm: DiagGMM, **params: Any) -> GaussianMixture:
        """A fitted estimator holding ``gmm``'s parameters (copied).

        ``converged_`` is True and ``n_iter_`` 0 (the model is taken as it is);
        ``lower_bound_`` is the last entry of ``gmm.history_``, or -inf without history.

        Parameters
        ----------
        gmm : DiagGMM
        **params
            Other constructor parameters (``n_components`` is ``gmm.n_components``).
        """
        est = cls(n_components=gmm.n_components, **params)
        est._set_model(gmm)
        est.n_features_in_ = gmm.n_features
        hist = [float(h["log_likelihood"]) for h in gmm.history_ if "log_likelihood" in h]
        est.converged_ = True
        est.n_iter_ = 0
        est.lower_bounds_ = []
        est.lower_bound_ = hist[-1] if hist else -np.inf
        est.n_repairs_ = 0
        return est

    # ------------------------------------------------------------------ inference
    def _model_and_data(self, X: Any) -> tuple[DiagGMM, np.ndarray]:
        """The model to evaluate and the validated samples.

        A one-component model gets a zero-weight twin: numpy evaluates a (n, 2D) @ (2D, 1)
        product as a matrix-vector product whose summation order depends on a row's
        position, so reordering the samples changed results by 1 float32 ulp; the two-column
        GEMM does not, and the twin adds exactly nothing (its terms are exp(-80) or less).
        """
        gmm = self.to_diag_gmm()
        X = validate_data(self, X, dtype=np.float32, order="C", reset=False)
        if gmm.n_components == 1:
            gmm = DiagGMM(
                [1.0, 0.0],
                np.repeat(gmm.means, 2, axis=0),
                np.repeat(gmm.variances, 2, axis=0),
                var_floor=gmm.var_floor,
            )
        return gmm, X

    def score_samples(self, X: Any) -> np.ndarray:
        """Log-likelihood ``log p(x)`` of each sample.

        Parameters
        ----------
        X : array-like, shape (n_samples, n_features)

        Returns
        -------
        ndarray, shape (n_samples,), float64
        """
        gmm, X = self._model_and_data(X)
        return gmm.log_likelihood(X, chunk_size=int(self.chunk_size))

    def score(self, X: Any, y: Any = None) -> float:
        """Mean per-sample log-likelihood of ``X`` (shape (n_samples, n_features))."""
        return float(self.score_samples(X).mean())

    def predict_proba(self, X: Any) -> np.ndarray:
        """Component responsibilities ``p(k | x)``.

        Parameters
        ----------
        X : array-like, shape (n_samples, n_features)

        Returns
        -------
        ndarray, shape (n_samples, n_components); rows sum to 1
        """
        gmm, X = self._model_and_data(X)
        k = self.weights_.shape[0]
        return gmm.posteriors(X, chunk_size=int(self.chunk_size))[:, :k]

    def predict(self, X: Any) -> np.ndarray:
        """The most responsible component of each sample, shape (n_samples,), int64."""
        gmm, X = self._model_and_data(X)
        if self.weights_.shape[0] == 1:
            return np.zeros(X.shape[0], dtype=np.int64)
        return gmm.top_components(X, 1, chunk_size=int(self.chunk_size))[:, 0]

    def fit_predict(self, X: Any, y: Any = None) -> np.ndarray:
        """Fit, then :meth:`predict` the training samples, shape (n_samples,)."""
        return self.fit(X).predict(X)

    def sample(self, n_samples: int = 1) -> tuple[np.ndarray, np.ndarray]:
        """Draw samples from the fitted mixture (seeded by ``random_state``).

        Returns
        -------
        X : ndarray, shape (n_samples, n_features), float64
        labels : ndarray, shape (n_samples,), int64
            The component each sample was drawn from.
        """
        gmm = self.to_diag_gmm()
        if not isinstance(n_samples, (int, np.integer)) or n_samples < 1:
            raise DataError(f"n_samples: must be an int >= 1, got {n_samples!r}")
        seed = check_random_state(self.random_state).randint(np.iinfo(np.int32).max)
        return gmm.sample(int(n_samples), int(seed))

    def _n_parameters(self) -> int:
        k, d = self.means_.shape
        return int(2 * k * d + k - 1)

    def bic(self, X: Any) -> float:
        """Bayesian information criterion ``-2 log L + p log n`` on ``X`` (lower is better)."""
        n = np.shape(X)[0]
        return float(-2.0 * self.score(X) * n + self._n_parameters() * np.log(n))

    def aic(self, X: Any) -> float:
        """Akaike information criterion ``-2 log L + 2 p`` on ``X`` (lower is better)."""
        n = np.shape(X)[0]
        return float(-2.0 * self.score(X) * n + 2 * self._n_parameters())
