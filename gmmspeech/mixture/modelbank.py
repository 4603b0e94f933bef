"""Many speaker models of one UBM's layout as float32 corrections to the UBM.

The layout :mod:`gmmspeech.decisions.scoring` scores with (exact, top-C and linear scoring).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..errors import ModelMismatchError
from ..features.frames import COMPUTE_DTYPE
from .gmm import DiagGMM
from .speakermodels import SpeakerModels


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


__all__ = ["ModelBank"]
