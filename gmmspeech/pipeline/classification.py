"""The classification stages: one data set in folds, a UBM and class models per fold.

Fold ``k`` trains on the other folds and is tested on its own files; the class decisions go
through :func:`gmmspeech.decisions.classifier.predict_classes`, the same path as
:class:`~gmmspeech.decisions.classifier.GMMClassifier`. Every function takes the
:class:`~.workspace.Workspace` and returns the stage's outputs and record info.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from ..corpus.datadir import DataDir, read_predictions
from ..corpus.prepare import assign_folds
from ..decisions.classifier import predict_classes
from ..decisions.metrics import balanced_accuracy, confusion_matrix, per_class_recall
from ..errors import ConfigError, DataError
from ..mixture.gmm import DiagGMM
from ..mixture.speakermodels import SpeakerModels, enroll
from ..storage.outputs import UBM_CHECKPOINT, remove_outputs
from .artefacts import (
    CONFUSION_PLOT,
    DATA_DIR,
    FOLD_MODELS,
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
    """Stage 5: ``scores/predictions.txt``, lines ``<utt> <true> <predicted> <fold>``."""
    s = ws.cfg.scoring
    data = ws.datadir("all")
    utt2label = _labels(ws, data)
    folds = ws.read_folds()
    lines, n = [], 0
    with ws.store("all") as store:
        for k in ws.folds:
            ubm_ = DiagGMM.load(ws.path(FOLD_UBM, fold=k))
            models = SpeakerModels.load(ws.path(FOLD_MODELS, fold=k), ubm_)
            test = [u for u in data.utt_ids if folds[u] == k and u in store]
            pred = predict_classes(
                ubm_, models, store, test, method=s.method, top_c=s.top_c, progress=ws.progress
            )
            lines += [f"{u} {utt2label[u]} {p} {k}\n" for u, p in zip(test, pred, strict=True)]
            n += len(test)
    write_text(ws.output(PREDICTIONS), "".join(lines))
    return [PREDICTIONS.rel()], {"test_files_scored": n}


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
