"""Validation and conversion of feature frames.

Every public function that takes frames calls :func:`as_frames`, so all of them accept the
same inputs (any real dtype, 1-D for one feature) and give the same clear errors.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import DataError, ModelMismatchError

COMPUTE_DTYPE = np.float32


def as_frames(
    X: Any,
    n_features: int | None = None,
    *,
    name: str = "X",
    copy: bool = False,
) -> np.ndarray:
    """Return ``X`` as a C-contiguous float32 array of shape (n_frames, n_features).

    Parameters
    ----------
    X : array-like, shape (n_frames, n_features) or (n_frames,)
        Frames. A 1-D array is read as ``n_frames`` frames of one feature. Integer and
        float64 input is converted to float32.
    n_features : int, optional
        The feature dimension the caller expects (a model's ``n_features``).
    name : str
        What to call the input in error messages (a parameter or utterance id).
    copy : bool
        Always return a new array.

    Returns
    -------
    ndarray, shape (n_frames, n_features), float32

    Raises
    ------
    DataError
        Non-numeric, more than 2-D, or non-finite values (the message counts the rows).
    ModelMismatchError
        ``n_features`` is given and differs from the data's.
    """
    try:
        arr = np.asarray(X)
    except (TypeError, ValueError) as exc:
        raise DataError(f"{name}: cannot be read as a numeric array ({exc})") from None
    if arr.dtype.kind not in "biuf":
        raise DataError(
            f"{name}: expected real numbers, got dtype {arr.dtype}; convert with np.asarray(..., float)"
        )
    if arr.ndim == 1:
        arr = arr[:, None]
    elif arr.ndim != 2:
        raise DataError(
            f"{name}: expected a 2-D array (n_frames, n_features) or a 1-D array of one "
            f"feature, got shape {arr.shape}"
        )
    out = np.array(arr, dtype=COMPUTE_DTYPE, order="C", copy=True if copy else None)
    if n_features is not None and out.shape[1] != n_features:
        hint = ""
        if out.shape[1] == 1 and np.asarray(X).ndim == 1:
            hint = (
                "; a 1-D array is read as frames of one feature: pass one frame as X.reshape(1, -1)"
            )
        raise ModelMismatchError(
            f"{name}: frames have {out.shape[1]} features but the model expects "
            f"{n_features}{hint}; use features extracted with the model's feature config"
        )
    check_finite(out, name)
    return out


def check_finite(arr: np.ndarray, name: str = "X") -> None:
    """Raise :class:`DataError` if any element of a 2-D array is NaN or infinite."""
    if arr.size and not np.isfinite(arr.sum(dtype=np.float64)):
        bad_rows = ~np.isfinite(arr).all(axis=1)
        if bad_rows.any():
            idx = np.flatnonzero(bad_rows)
            first = ", ".join(str(i) for i in idx[:5])
            more = ", ..." if idx.size > 5 else ""
            raise DataError(
                f"{name}: {idx.size} of {arr.shape[0]} rows contain NaN or inf values "
                f"(rows {first}{more}); remove or repair those frames"
            )
        raise DataError(f"{name}: values too large to sum in float64; rescale the features")
