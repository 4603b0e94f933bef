"""``gmmspeech bench classify``: a classification config against two simple baselines.

The baselines are what a user would otherwise write in ten lines: per file the mean and the
standard deviation of 20 librosa MFCCs (``librosa.feature.mfcc`` at its defaults, on the
audio at the config's ``features.sample_rate``), fed to scikit-learn's ``LogisticRegression``
(after ``StandardScaler``) and ``RandomForestClassifier(n_estimators=500)``. They run on
exactly the files and folds of the config's prepare stage; then the toolkit's experiment runs
(resuming stages already done in ``--out``) and both are printed side by side.
"""

from __future__ import annotations

import argparse
import time
import warnings
from collections.abc import Sequence
from typing import Any

import librosa
import numpy as np

from ..config.loader import load_config
from ..config.overrides import add_set_argument
from ..corpus.datadir import DataDir, read_utt2fold
from ..decisions.metrics import balanced_accuracy
from ..errors import DataError
from ..features.audio import load_audio
from ..pipeline import Experiment
from ..pipeline.artefacts import DATA_DIR, FOLDS
from .common import add_output_arguments, write_figures

HELP = "compare a classification config with MFCC mean+std + scikit-learn baselines"
EXAMPLE = (
    "gmmspeech bench classify recipes/audio_classification/environmental_sounds/config.yaml "
    "--out exp/bench_env"
)

#: The baselines: name -> what is fitted on the (n, 40) MFCC mean+std vectors.
BASELINES = ("mfcc+logistic", "mfcc+random_forest")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("config", metavar="CONFIG.yaml", help="a classification experiment config")
    add_set_argument(p, "ubm.n_components=64")
    p.add_argument("--out", default=None, metavar="DIR", help="experiment folder of the toolkit")
    add_output_arguments(p, "seed of the random forest")


def mfcc_mean_std(path: str, sample_rate: int) -> np.ndarray:
    """The baseline's vector of one file: mean and std of 20 librosa MFCCs, shape (40,)."""
    y, sr = load_audio(path, sample_rate)
    with warnings.catch_warnings():  # librosa's n_fft warning on clips under 2048 samples
        warnings.simplefilter("ignore", UserWarning)
        m = librosa.feature.mfcc(y=y, sr=sr, n_mfcc=20)
    return np.concatenate([m.mean(axis=1), m.std(axis=1)])


def make_baseline(name: str, seed: int = 0) -> Any:
    """An unfitted baseline estimator (:data:`BASELINES`)."""
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    if name == "mfcc+logistic":
        return make_pipeline(StandardScaler(), LogisticRegression(max_iter=5000))
    if name == "mfcc+random_forest":
        return RandomForestClassifier(n_estimators=500, random_state=seed)
    raise DataError(f"baseline: one of {BASELINES}, got {name!r}")


def cross_validate(
    X: np.ndarray, y: Sequence[str], folds: Sequence[int], name: str, seed: int = 0
) -> np.ndarray:
    """Out-of-fold predictions of baseline ``name``: fold ``k`` is predicted by a model
    fitted on the other folds."""
    yv, fv = np.asarray(y), np.asarray(folds)
    pred = np.empty(len(yv), dtype=object)
    for k in np.unique(fv):
        model = make_baseline(name, seed).fit(X[fv != k], yv[fv != k])
        pred[fv == k] = model.predict(X[fv == k])
    return pred


def summary(true: Sequence[str], pred: Sequence[str], folds: Sequence[int]) -> dict[str, Any]:
    """Accuracy, balanced accuracy and mean of the fold accuracies."""
    t, p, f = np.asarray(true), np.asarray(pred), np.asarray(folds)
    correct = t == p
    return {
        "accuracy": float(correct.mean()),
        "balanced_accuracy": balanced_accuracy(list(t), list(p)),
        "mean_fold_accuracy": float(np.mean([correct[f == k].mean() for k in np.unique(f)])),
    }


def run(args: argparse.Namespace) -> int:
    cfg = load_config(args.config, args.overrides)
    if cfg.task != "classification":
        raise DataError(f"{args.config}: task is {cfg.task!r}; bench classify needs classification")
    exp = Experiment(cfg, args.out, config_path=args.config, progress=False)
    exp.run(1, 1)  # prepare: the files, labels and folds both sides use
    data_dir = exp.path(DATA_DIR, set="all")
    data = DataDir.read(data_dir, check_audio=False)
    folds = read_utt2fold(exp.path(FOLDS))
    if data.utt2label is None:
        raise DataError(f"{data_dir}: no utt2label")
    ids = data.utt_ids
    y = [data.utt2label[u] for u in ids]
    f = [folds[u] for u in ids]
    rows: dict[str, dict[str, Any]] = {}
    t0 = time.perf_counter()
    X = np.stack([mfcc_mean_std(str(data.audio_path(u)), cfg.features.sample_rate) for u in ids])
    t_feat = time.perf_counter() - t0
    for name in BASELINES:
        t1 = time.perf_counter()
        pred = cross_validate(X, y, f, name, args.seed)
        rows[name] = {**summary(y, list(pred), f), "seconds": t_feat + time.perf_counter() - t1}
    t2 = time.perf_counter()
    exp.run(1, None)
    res = exp.results()
    method = cfg.classification.method
    rows[f"gmmspeech ({method})"] = {
        "accuracy": res["accuracy"],
        "balanced_accuracy": res["balanced_accuracy"],
        "mean_fold_accuracy": res["mean_fold_accuracy"],
        "seconds": time.perf_counter() - t2,
    }
    best = max(rows[b]["accuracy"] for b in BASELINES)
    print(
        f"{cfg.name}: {len(ids)} files, {len(set(y))} classes, {len(set(f))} folds "
        f"(experiment folder {exp.out})"
    )
    print(f"{'system':<28} {'accuracy':>9} {'balanced':>9} {'fold mean':>10} {'seconds':>8}")
    for name, r in rows.items():
        print(
            f"{name:<28} {100 * r['accuracy']:8.2f}% {100 * r['balanced_accuracy']:8.2f}% "
            f"{100 * r['mean_fold_accuracy']:9.2f}% {r['seconds']:8.1f}"
        )
    gain = 100 * (res["accuracy"] - best)
    print(f"gmmspeech - best baseline: {gain:+.2f} points of accuracy")
    if args.json:
        result = {"benchmark": "classify", "config": str(args.config), "systems": rows}
        write_figures(args.json, result)
    return 0
