"""The classification stages: one data set in folds, a UBM and class models per fold.

Fold ``k`` trains on the other folds and is tested on its own files; the class decisions go
through :func:`gmmspeech.decisions.class_scores.class_llrs`, the same path as
:class:`~gmmspeech.decisions.classifier.GMMClassifier`. Every function takes the
:class:`~.workspace.Workspace` and returns the stage's outputs and record info.
"""

from __future__ import annotations

import logging
from typing import Any, cast

import numpy as np

from ..config.ivector import stats_options
from ..corpus.datadir import DataDir, read_predictions
from ..corpus.prepare import assign_folds
from ..decisions.class_scores import best_classes, class_llrs
from ..decisions.ivector_classifier import classify_ivectors
from ..decisions.metrics import balanced_accuracy, confusion_matrix, per_class_recall
from ..decisions.supervector import fit_linear, span_coordinates, store_supervectors
from ..errors import ConfigError, DataError
from ..ivector.stats import StatsFile, compute_stats
from ..ivector.tv import TotalVariability
from ..mixture.gmm import DiagGMM
from ..mixture.speakermodels import SpeakerModels, enroll
from ..storage.outputs import UBM_CHECKPOINT, remove_outputs
from .artefacts import (
    CONFUSION_PLOT,
    DATA_DIR,
    FEATURES,
    FOLD_MODELS,
    FOLD_STATS,
    FOLD_UBM,
    FOLD_UBM_CHECKPOINTS,
    FOLDS,
    PREDICTIONS,
    RESULTS,
)
from .common import extract_stage, report_stage
from .report import plot_confusion, write_json, write_text
from .workspace import StageResult, Workspace

log = logging.getLogger(__name__)

SETS = ("all",)


def prepare(ws: Workspace) -> StageResult:
    """Stage 1: ``data/all`` with ``utt2label`` and the folds ``utt2fold``."""
    return _prepare_classification(ws)


def _prepare_classification(ws: Workspace) -> StageResult:
    d = ws.cfg.data
    if d.dataset is None:  # checked by ExperimentConfig
        raise ConfigError(f"{ws.where}: data.dataset: required for classification")
    data = ws.scan_set("dataset", d.dataset)
    if data.utt2label is None:
        raise DataError(
            f"{ws.where}: data.dataset.pattern: {d.dataset.pattern!r} has no "
            f"{{{d.dataset.label_field}}} field; classification needs a class label"
        )
    folds = assign_folds(data, d.n_folds, d.fold_by)
    counts = np.bincount(list(folds.values()), minlength=d.n_folds)
    if (counts == 0).any():
        raise DataError(
            f"{ws.where}: data.n_folds: fold(s) {np.flatnonzero(counts == 0).tolist()} "
            f"get no file ({len(data)} files, fold_by={d.fold_by}); use fewer folds"
        )
    data.write(ws.output(DATA_DIR, set="all"))
    write_text(ws.output(FOLDS), "".join(f"{u} {folds[u]}\n" for u in folds))
    info = {
        "files": len(data),
        "classes": len(set(data.utt2label.values())),
        "speakers": len(data.spk2utt),
        "files_per_fold": counts.tolist(),
    }
    folder = DATA_DIR.rel(set="all")
    return [f"{folder}/wav.scp", f"{folder}/utt2label", FOLDS.rel()], info


def extract(ws: Workspace) -> StageResult:
    """Stage 2: features of ``data/all``."""
    return extract_stage(ws, SETS)


def ubm(ws: Workspace) -> StageResult:
    """Stage 3: one UBM per fold, ``ubm/fold<k>.h5``, on the files of the other folds."""
    folds = ws.read_folds()
    outputs, info = [], {}
    with ws.store("all") as store:
        for k in ws.folds:
            frames = store.select([u for u in store if folds.get(u, k) != k])
            log.info("fold %d: UBM on %d training files", k, len(frames))
            # checkpoints stay until every fold is done: a resumed run reloads the
            # finished folds' final checkpoints (keyed by data and config) at no cost
            ckpt = ws.path(FOLD_UBM_CHECKPOINTS, fold=k)
            info[f"fold{k}"] = ws.train_ubm(frames, ws.output(FOLD_UBM, fold=k), ckpt, keep=True)
            outputs.append(FOLD_UBM.rel(fold=k))
    for k in ws.folds:
        remove_outputs(ws.path(FOLD_UBM_CHECKPOINTS, fold=k), UBM_CHECKPOINT)
    return outputs, info


def enroll_classes(ws: Workspace) -> StageResult:
    """Stage 4: one MAP model per class and fold, ``models/fold<k>.h5``."""
    e = ws.cfg.enroll
    data = ws.datadir("all")
    utt2label = _labels(ws, data)
    folds = ws.read_folds()
    outputs: list[str] = []
    info: dict[str, Any] = {}
    with ws.store("all") as store:
        for k in ws.folds:
            ubm_ = DiagGMM.load(ws.path(FOLD_UBM, fold=k))
            label2utt: dict[str, list[str]] = {}
            for u, lab in utt2label.items():
                if folds[u] != k and u in store:
                    label2utt.setdefault(lab, []).append(u)
            models = enroll(
                ubm_,
                store,
                dict(sorted(label2utt.items())),
                relevance_factor=e.relevance_factor,
                adapt=e.adapt,
            )
            log.info("fold %d: %d class model(s)", k, len(models))
            models.save(ws.output(FOLD_MODELS, fold=k))
            outputs.append(FOLD_MODELS.rel(fold=k))
            info[f"fold{k}"] = {"classes": len(models)}
    return outputs, info


def score(ws: Workspace) -> StageResult:
    """Stage 5: ``scores/predictions.txt``, lines ``<utt> <true> <predicted> <fold>``, by the
    back end of ``classification.method``."""
    method = ws.cfg.classification.method
    data = ws.datadir("all")
    utt2label = _labels(ws, data)
    folds = ws.read_folds()
    lines: list[str] = []
    info: dict[str, Any] = {"method": method}
    with ws.store("all") as store:
        present = [u for u in data.utt_ids if u in store]
    for k in ws.folds:
        ubm_ = DiagGMM.load(ws.path(FOLD_UBM, fold=k))
        test = [u for u in present if folds[u] == k]
        if method == "llr":
            pred, info[f"fold{k}"] = _llr_fold(ws, ubm_, k, test), {}
        else:
            train = [u for u in present if folds[u] != k]
            pred, info[f"fold{k}"] = _vector_fold(ws, ubm_, k, train, test, utt2label, folds)
        lines += [f"{u} {utt2label[u]} {p} {k}\n" for u, p in zip(test, pred, strict=True)]
    write_text(ws.output(PREDICTIONS), "".join(lines))
    info["test_files_scored"] = len(lines)
    return [PREDICTIONS.rel()], info


def _llr_fold(ws: Workspace, ubm_: DiagGMM, k: int, test: list[str]) -> list[str]:
    """``method: llr``: the class model of highest frame-averaged LLR."""
    s = ws.cfg.scoring
    models = SpeakerModels.load(ws.path(FOLD_MODELS, fold=k), ubm_)
    with ws.store("all") as store:
        llrs = class_llrs(
            ubm_, models, store, test, method=s.method, top_c=s.top_c, progress=ws.progress
        )
    return best_classes(llrs, models.ids)


def _vector_fold(
    ws: Workspace,
    ubm_: DiagGMM,
    k: int,
    train: list[str],
    test: list[str],
    utt2label: dict[str, str],
    folds: dict[str, int],
) -> tuple[list[str], dict[str, Any]]:
    """``method: supervector`` or ``ivector``: one vector per file on fold ``k``'s UBM, a
    back end trained on the training files (their folds group the choice of ``C``)."""
    c = ws.cfg.classification
    lda = ws.cfg.backend.lda_dim
    y = [utt2label[u] for u in train]
    groups = [folds[u] for u in train]
    store_path = str(ws.path(FEATURES, set="all"))
    with ws.engine() as engine:
        if c.method == "supervector":
            x = store_supervectors(
                ubm_, store_path, train + test, ws.cfg.enroll.relevance_factor, engine=engine
            )
            a, b = span_coordinates(x[: len(train)], x[len(train) :])
            model, best_c, inner = fit_linear(
                a, y, groups, classifier=c.classifier, c_grid=c.c_grid, random_state=c.random_state
            )
            log.info("fold %d: C = %g (inner accuracies %s)", k, best_c, inner)
            return [str(p) for p in model.predict(b)], {"C": best_c, "inner_accuracy": inner}
        w = _ivectors(ws, ubm_, k, train, test, engine)
    pred, info = classify_ivectors(
        w[: len(train)],
        y,
        groups,
        w[len(train) :],
        scorer=c.ivector_scorer,
        # auto: as many directions as the classes allow (lda_projection's None)
        lda_dim=lda if isinstance(lda, int) else None,
        classifier=c.classifier,
        c_grid=c.c_grid,
        random_state=c.random_state,
    )
    log.info("fold %d: i-vector back end %s", k, info)
    return [str(p) for p in pred], info


def _ivectors(
    ws: Workspace, ubm_: DiagGMM, k: int, train: list[str], test: list[str], engine: Any
) -> np.ndarray:
    """i-vectors of ``train + test`` from a TV model trained on ``train`` (statistics in a
    scratch file of the stage, removed afterwards)."""
    iv = ws.cfg.ivector
    tmp = ws.output(FOLD_STATS, fold=k)
    tmp.unlink(missing_ok=True)  # a killed run's leftover: this stage's own scratch file
    store_path = ws.path(FEATURES, set="all")
    try:
        stats = compute_stats(
            ubm_,
            store_path,
            engine=engine,
            batch_size=iv.batch_size,
            out=tmp,
            **stats_options(iv),
        )
        tv = TotalVariability(iv.rank, iv.n_iter, iv.min_divergence, iv.random_state)
        tv.fit(cast(StatsFile, stats).select(train), engine=engine)
        w = tv.transform(stats, engine=engine)  # every file of the store, in its order
        with ws.store("all") as store:
            row = {u: i for i, u in enumerate(store)}
        return w[[row[u] for u in train + test]]
    finally:
        tmp.unlink(missing_ok=True)


def evaluate(ws: Workspace) -> StageResult:
    """Stage 6: ``results.json`` (accuracies, confusion matrix) and ``confusion.png``."""
    rows = read_predictions(ws.path(PREDICTIONS))
    folds = ws.folds
    true = [r.label for r in rows]
    pred = [r.predicted for r in rows]
    fold = np.array([r.fold for r in rows])
    correct = np.array([a == b for a, b in zip(true, pred, strict=True)])
    labels = sorted(set(true))
    per_class = per_class_recall(true, pred)
    fold_acc = [float(correct[fold == k].mean()) for k in folds if (fold == k).any()]
    cm, order = confusion_matrix(true, pred, labels=sorted(set(true) | set(pred)))
    results = {
        "task": "classification",
        "name": ws.cfg.name,
        # the hash of every config key these results depend on
        "config_hash": ws.hash,
        "accuracy": float(correct.mean()),
        "balanced_accuracy": balanced_accuracy(true, pred),
        "mean_fold_accuracy": float(np.mean(fold_acc)),
        "fold_accuracy": fold_acc,
        "per_class_recall": per_class,
        "n_test": len(rows),
        "n_classes": len(labels),
        "n_folds": len(folds),
        "labels": order,
        "confusion_matrix": cm.tolist(),
    }
    plot_confusion(
        cm,
        [str(x) for x in order],
        ws.output(CONFUSION_PLOT),
        title=f"{ws.cfg.name}: accuracy {100 * results['accuracy']:.1f}%",
    )
    write_json(ws.output(RESULTS), results)
    return [RESULTS.rel(), CONFUSION_PLOT.rel()], {"accuracy": results["accuracy"]}


def report(ws: Workspace) -> StageResult:
    """Stage 7: ``report.md`` with the confusion matrix."""
    return report_stage(ws, CONFUSION_PLOT)


def _labels(ws: Workspace, data: DataDir) -> dict[str, str]:
    """``utt2label`` of the prepared data dir (written by stage 1)."""
    if data.utt2label is None:
        raise DataError(f"{ws.path(DATA_DIR, set='all')}: no utt2label; rerun stage 1")
    return data.utt2label
