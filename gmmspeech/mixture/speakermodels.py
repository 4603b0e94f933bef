"""Many MAP-adapted speaker (or class) models in one HDF5 file.

A speaker model adapted from a UBM differs from it only in the parameters named by ``adapt``
(usually only the means), so a :class:`SpeakerModels` file stores the model ids, the adapted
parameters (``means`` (S, K, D), ``weights`` (S, K), ``variances`` (S, K, D), each only when
adapted) and the UBM's identity: its SHA-256 fingerprint, K and D. Loading needs the same UBM;
another UBM is refused with a :class:`~gmmspeech.errors.ModelMismatchError`.

File layout (format ``gmmspeech.SpeakerModels``, version 1)::

    attrs:  format, format_version, gmmspeech_version, config (JSON), ubm_sha256,
            n_components, n_features, adapt, feature_config (JSON, the UBM's)
    ids        (S,) UTF-8 strings
    means      (S, K, D) float64   if "m" in adapt
    weights    (S, K)    float64   if "w" in adapt
    variances  (S, K, D) float64   if "v" in adapt
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any, Protocol, cast

import h5py
import numpy as np
from numpy.typing import ArrayLike
from tqdm.auto import tqdm

from ..engine import blas_threads
from ..errors import DataError, ModelFormatError, ModelMismatchError
from ..storage.atomic import atomic_path
from ..storage.h5io import from_json, open_checked, read_array, to_json, write_header
from ..storage.provenance import check_feature_config, check_features
from .gmm import DiagGMM, unusable_components
from .map import check_adapt, map_parameters
from .stats import SufficientStats, accumulate

log = logging.getLogger(__name__)

FORMAT = "gmmspeech.SpeakerModels"
FORMAT_VERSION = 1


class HasSpk2Utt(Protocol):
    """Something that knows each speaker's utterances, e.g. a :class:`~gmmspeech.DataDir`."""

    @property
    def spk2utt(self) -> Mapping[str, Sequence[str]] | Callable[[], Mapping[str, Sequence[str]]]:
        """spk_id -> utt_ids, or a method returning that mapping."""
        ...


def ubm_fingerprint(ubm: DiagGMM) -> str:
    """SHA-256 hex digest of the UBM's float64 weights, means and variances (and shapes)."""
    h = hashlib.sha256()
    h.update(f"K={ubm.n_components};D={ubm.n_features};".encode())
    for arr in (ubm.weights, ubm.means, ubm.variances):
        h.update(np.ascontiguousarray(arr, dtype="<f8").tobytes())
    return h.hexdigest()


class SpeakerModels:
    """A set of models MAP-adapted from one UBM, indexed by id.

    Parameters
    ----------
    ubm : DiagGMM
        The UBM the models were adapted from.
    ids : sequence of str, length S
        Unique model ids (speaker or class ids).
    means : array-like, shape (S, K, D), optional
        Adapted means (omit when means were not adapted).
    weights : array-like, shape (S, K), optional
        Adapted weights.
    variances : array-like, shape (S, K, D), optional
        Adapted variances.
    config : dict, optional
        How the models were made (relevance factor, adapt, ...), stored in the file.

    Examples
    --------
    >>> ubm = DiagGMM([0.5, 0.5], [[-1.0], [1.0]], [[1.0], [1.0]])
    >>> models = SpeakerModels(ubm, ["a"], means=[[[-0.5], [1.5]]])
    >>> models["a"].means.ravel().tolist()
    [-0.5, 1.5]
    """

    def __init__(
        self,
        ubm: DiagGMM,
        ids: Sequence[str],
        *,
        means: ArrayLike | None = None,
        weights: ArrayLike | None = None,
        variances: ArrayLike | None = None,
        config: dict[str, Any] | None = None,
    ) -> None:
        self.ubm = ubm
        self.ids: list[str] = [str(i) for i in ids]
        seen: dict[str, int] = {}
        for i, name in enumerate(self.ids):
            if name in seen:
                raise DataError(
                    f"ids: model id {name!r} appears twice (positions {seen[name]} and {i}); "
                    f"model ids must be unique"
                )
            seen[name] = i
        self._index = seen
        s, k, d = len(self.ids), ubm.n_components, ubm.n_features
        self.means = None if means is None else np.asarray(means, dtype=np.float64)
        self.weights = None if weights is None else np.asarray(weights, dtype=np.float64)
        self.variances = None if variances is None else np.asarray(variances, dtype=np.float64)
        for name, arr, shape in (
            ("means", self.means, (s, k, d)),
            ("weights", self.weights, (s, k)),
            ("variances", self.variances, (s, k, d)),
        ):
            if arr is not None and arr.shape != shape:
                got_d = arr.shape[-1] if arr.ndim == 3 else None
                exc = ModelMismatchError if name != "weights" and got_d != d else DataError
                raise exc(
                    f"{name}: expected shape {shape} (S={s} models, K={k}, D={d} of the UBM), "
                    f"got {arr.shape}"
                )
        if self.means is None and self.weights is None and self.variances is None and s:
            raise DataError("SpeakerModels: give at least one of means, weights, variances")
        self._check_usable()
        self.config = dict(config) if config else {}

    def _check_usable(self, block: int = 64) -> None:
        """Refuse NaN, inf, or variances whose precisions overflow float32, naming the model.

        Checked a block of models at a time, so the temporaries stay small for large files.
        """
        center = self.ubm.center.astype(np.float64)
        for start in range(0, len(self.ids), block):
            sl = slice(start, start + block)
            for name in ("means", "weights", "variances"):
                arr = getattr(self, name)
                if arr is None:
                    continue
                bad = ~np.isfinite(arr[sl].reshape(arr[sl].shape[0], -1)).all(axis=1)
                if bad.any():
                    model = self.ids[start + int(np.flatnonzero(bad)[0])]
                    raise DataError(
                        f"{name}: model {model!r} holds NaN or infinite values; enroll it again"
                    )
            mu = self.ubm.means if self.means is None else self.means[sl]
            var = self.ubm.variances if self.variances is None else self.variances[sl]
            bad = unusable_components(mu, var, center)
            if bad.ndim == 2 and bad.any():
                i = int(np.flatnonzero(bad.any(axis=1))[0])
                raise DataError(
                    f"variances: model {self.ids[start + i]!r} has a variance whose precision "
                    f"overflows float32 (smallest {var[i].min():.6g}); enroll it again"
                )
            if self.weights is not None and (self.weights[sl] < 0).any():
                i = int(np.flatnonzero((self.weights[sl] < 0).any(axis=1))[0])
                raise DataError(f"weights: model {self.ids[start + i]!r} has a negative weight")

    # ------------------------------------------------------------------ access
    @property
    def adapt(self) -> str:
        """Which parameters differ from the UBM, e.g. ``"m"`` or ``"mwv"``."""
        return "".join(
            ch
            for ch, arr in (("m", self.means), ("w", self.weights), ("v", self.variances))
            if arr is not None
        )

    @property
    def n_features(self) -> int:
        return self.ubm.n_features

    @property
    def n_components(self) -> int:
        return self.ubm.n_components

    def __len__(self) -> int:
        return len(self.ids)

    def __contains__(self, model_id: object) -> bool:
        return model_id in self._index

    def __iter__(self) -> Iterator[str]:
        return iter(self.ids)

    def index(self, model_id: str) -> int:
        """Position of ``model_id``; :class:`DataError` naming it when unknown."""
        try:
            return self._index[model_id]
        except KeyError:
            raise DataError(
                f"model {model_id!r} is not in the models file ({len(self.ids)} models, e.g. "
                f"{', '.join(repr(i) for i in self.ids[:3])}); enroll it first"
            ) from None

    def parameters(self, i: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(weights (K,), means (K, D), variances (K, D))`` of the model at position ``i``."""
        u = self.ubm
        w = u.weights if self.weights is None else self.weights[i]
        mu = u.means if self.means is None else self.means[i]
        var = u.variances if self.variances is None else self.variances[i]
        return w, mu, var

    def __getitem__(self, model_id: str) -> DiagGMM:
        w, mu, var = self.parameters(self.index(model_id))
        return DiagGMM(w, mu, var, feature_config=self.ubm.feature_config)

    def subset(self, ids: Iterable[str]) -> SpeakerModels:
        """The models named by ``ids``, in that order."""
        pos = [self.index(i) for i in ids]

        def take(a: np.ndarray | None) -> np.ndarray | None:
            return None if a is None else a[pos]

        return SpeakerModels(
            self.ubm,
            [self.ids[p] for p in pos],
            means=take(self.means),
            weights=take(self.weights),
            variances=take(self.variances),
            config=self.config,
        )

    # ------------------------------------------------------------------ storage
    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the models atomically (only what differs from the UBM, plus its fingerprint)."""
        with atomic_path(path) as tmp, h5py.File(tmp, "w") as f:
            write_header(f, FORMAT, FORMAT_VERSION, self.config)
            f.attrs["ubm_sha256"] = ubm_fingerprint(self.ubm)
            f.attrs["n_components"] = self.n_components
            f.attrs["n_features"] = self.n_features
            f.attrs["adapt"] = self.adapt
            if self.ubm.feature_config is not None:
                f.attrs["feature_config"] = to_json(self.ubm.feature_config)
            f.create_dataset(
                "ids", data=np.array(self.ids, dtype=object), dtype=h5py.string_dtype()
            )
            for name in ("means", "weights", "variances"):
                arr = getattr(self, name)
                if arr is not None:
                    f.create_dataset(name, data=arr, chunks=True if arr.ndim == 3 else None)

    @classmethod
    def load(cls, path: str | os.PathLike[str], ubm: DiagGMM) -> SpeakerModels:
        """Read a models file written by :meth:`save`; ``ubm`` must be the one it was made with.

        Raises
        ------
        ModelFormatError
            Missing, truncated or foreign file.
        ModelMismatchError
            ``ubm`` is not the UBM the models were adapted from.
        """
        f = open_checked(path, FORMAT, FORMAT_VERSION)
        try:
            want = ubm_fingerprint(ubm)
            got = f.attrs.get("ubm_sha256")
            got = got.decode() if isinstance(got, bytes) else got
            if got != want:
                k, d = f.attrs.get("n_components"), f.attrs.get("n_features")
                raise ModelMismatchError(
                    f"{path}: the models were adapted from another UBM (K={k}, D={d}, sha256 "
                    f"{str(got)[:12]}...) than the one given (K={ubm.n_components}, "
                    f"D={ubm.n_features}, sha256 {want[:12]}...); use the UBM they were "
                    f"enrolled with, or enroll again"
                )
            check_feature_config(
                from_json(f.attrs.get("feature_config")),
                ubm.feature_config,
                what=f"{path}: the models",
                expected_by="the UBM",
            )
            # every shape checked against the UBM and the ids before anything is read
            ids_raw = read_array(f, "ids", (None,), where=path, kinds="O")
            ids = [x.decode() if isinstance(x, bytes) else str(x) for x in ids_raw]
            k, d = ubm.n_components, ubm.n_features
            shapes = {
                "means": (len(ids), k, d),
                "weights": (len(ids), k),
                "variances": (len(ids), k, d),
            }
            arrays = {
                n: (read_array(f, n, shapes[n], where=path, kinds="f") if n in f else None)
                for n in shapes
            }
            try:
                config = from_json(f.attrs.get("config"), {})
            except (OSError, ValueError, KeyError) as exc:
                raise ModelFormatError(f"{path}: cannot read models ({exc})") from None
        finally:
            f.close()
        try:
            return cls(ubm, ids, config=config, **arrays)
        except DataError as exc:
            raise ModelFormatError(f"{path}: invalid models: {exc}") from None

    # ------------------------------------------------------------------ building
    @classmethod
    def from_stats(
        cls,
        ubm: DiagGMM,
        stats: Mapping[str, SufficientStats],
        *,
        relevance_factor: float = 16.0,
        adapt: str = "m",
        variance_floor: ArrayLike | None = None,
    ) -> SpeakerModels:
        """MAP-adapt one model per entry of ``stats``.

        Parameters
        ----------
        ubm : DiagGMM
            The UBM (K components, D features) the statistics were accumulated under.
        stats : mapping model_id -> SufficientStats
            Statistics of each model's frames, zeroth (K,), first and second (K, D).
        relevance_factor, adapt, variance_floor
            See :func:`gmmspeech.map_adapt`; ``variance_floor`` is a float or shape (D,).

        Returns
        -------
        SpeakerModels
            S = ``len(stats)`` models in the order of ``stats``, storing only the adapted
            parameters: means (S, K, D), weights (S, K), variances (S, K, D).
        """
        adapt = check_adapt(adapt)
        ids = list(stats)
        s, k, d = len(ids), ubm.n_components, ubm.n_features
        means = np.empty((s, k, d)) if "m" in adapt else None
        weights = np.empty((s, k)) if "w" in adapt else None
        variances = np.empty((s, k, d)) if "v" in adapt else None
        for i, sid in enumerate(ids):
            w, mu, var = map_parameters(
                ubm,
                stats[sid],
                relevance_factor=relevance_factor,
                adapt=adapt,
                variance_floor=variance_floor,
            )
            if means is not None:
                means[i] = mu
            if weights is not None:
                weights[i] = w
            if variances is not None:
                variances[i] = var
        r = float(relevance_factor)
        cfg = {"relevance_factor": r if np.isfinite(r) else "inf", "adapt": adapt}
        return cls(ubm, ids, means=means, weights=weights, variances=variances, config=cfg)


def enroll(
    ubm: DiagGMM,
    features: Mapping[str, ArrayLike],
    spk2utt: Mapping[str, Sequence[str]] | HasSpk2Utt,
    *,
    relevance_factor: float = 16.0,
    adapt: str = "m",
    chunk_size: int | None = None,
    progress: bool = False,
) -> SpeakerModels:
    """Enrol one model per speaker from all of that speaker's utterances.

    Parameters
    ----------
    ubm : DiagGMM
        The UBM to adapt.
    features : mapping utt_id -> array of shape (n_frames, D)
        E.g. a :class:`gmmspeech.FeatureStore` or a dict of arrays.
    spk2utt : mapping spk_id -> list of utt_id, or an object with a ``spk2utt`` attribute
        Which utterances belong to which speaker (a data dir works; ``spk2utt`` may be a
        mapping or a method returning one).
    relevance_factor, adapt
        See :func:`gmmspeech.map_adapt`.
    chunk_size : int, optional
        Frames per block when accumulating statistics.
    progress : bool
        Show a progress bar.

    Returns
    -------
    SpeakerModels
        Models in the order of ``spk2utt``.

    Raises
    ------
    DataError
        An utterance is missing from ``features`` (named with its speaker), or a speaker has
        no utterances.
    ModelMismatchError
        Features of another dimension than the UBM's (the utterance is named), or a store
        extracted with another feature config than the UBM's (the differences are listed).
    """
    check_features(features, ubm.feature_config, "the UBM")
    mapping = getattr(spk2utt, "spk2utt", spk2utt)
    if callable(mapping):
        mapping = mapping()
    mapping = cast("Mapping[str, Sequence[str]]", mapping)
    stats: dict[str, SufficientStats] = {}
    with blas_threads(1):  # per-utterance matrices are small: see engine.blas_threads
        for spk in tqdm(list(mapping), desc="enroll", unit="spk", disable=not progress):
            utts = list(mapping[spk])
            if not utts:
                raise DataError(f"speaker {spk!r} has no utterances; remove it from spk2utt")
            total = SufficientStats.zeros(ubm.n_components, ubm.n_features, ubm.center)
            for utt in utts:
                x = _get_features(features, utt, f"speaker {spk!r}")
                try:
                    total = total + accumulate(ubm, x, chunk_size=chunk_size)
                except (ModelMismatchError, DataError) as exc:
                    raise type(exc)(f"utterance {utt!r} (speaker {spk!r}): {exc}") from None
            stats[str(spk)] = total
    log.info("enrolled %d model(s) (adapt=%s, r=%g)", len(stats), adapt, relevance_factor)
    return SpeakerModels.from_stats(ubm, stats, relevance_factor=relevance_factor, adapt=adapt)


def _get_features(features: Mapping[str, ArrayLike], utt: str, context: str) -> np.ndarray:
    try:
        return np.asarray(features[utt])
    except KeyError:
        raise DataError(
            f"utterance {utt!r} ({context}) is not in the feature archive; extract its "
            f"features or remove it from the data dir"
        ) from None


# ---------------------------------------------------------------------------- CLI inputs
