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

from ..corpus.datadir import read_predictions
from ..corpus.prepare import assign_folds
from ..decisions.classifier import predict_classes
from ..decisions.metrics import balanced_accuracy, confusion_matrix, per_class_recall
from ..errors import DataError
from ..mixture.gmm import DiagGMM
from ..mixture.speakermodels import SpeakerModels, enroll
from ..storage.outputs import UBM_CHECKPOINT, remove_outputs
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
    assert d.dataset is not None
    data = ws._scan("dataset", d.dataset)
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
    data.write(ws.path("data/all"))
    write_text(ws.path("data/all/utt2fold"), "".join(f"{u} {folds[u]}\n" for u in folds))
    info = {
        "files": len(data),
        "classes": len(set(data.utt2label.values())),
        "speakers": len(data.spk2utt),
        "files_per_fold": counts.tolist(),
    }
    return ["data/all/wav.scp", "data/all/utt2label", "data/all/utt2fold"], info


def extract(ws: Workspace) -> StageResult:
    """Stage 2: features of ``data/all``."""
    return extract_stage(ws, SETS)


def ubm(ws: Workspace) -> StageResult:
    """Stage 3: one UBM per fold, ``ubm/fold<k>.h5``, on the files of the other folds."""
    ws.path("ubm").mkdir(parents=True, exist_ok=True)
    folds = ws.read_folds()
    outputs, info = [], {}
    with ws.store("all") as store:
        for k in ws.folds:
            out = f"ubm/fold{k}.h5"
            frames = store.select([u for u in store if folds.get(u, k) != k])
            log.info("fold %d: UBM on %d training files", k, len(frames))
            # checkpoints stay until every fold is done: a resumed run reloads the
            # finished folds' final checkpoints (keyed by data and config) at no cost
            info[f"fold{k}"] = ws.train_ubm(frames, out, f"ubm/checkpoints{k}", keep=True)
            outputs.append(out)
    for k in ws.folds:
        remove_outputs(ws.path(f"ubm/checkpoints{k}"), UBM_CHECKPOINT)
    return outputs, info


def enroll_classes(ws: Workspace) -> StageResult:
    """Stage 4: one MAP model per class and fold, ``models/fold<k>.h5``."""
    e = ws.cfg.enroll
    ws.path("models").mkdir(parents=True, exist_ok=True)
    data = ws.datadir("all")
    assert data.utt2label is not None
    folds = ws.read_folds()
    outputs: list[str] = []
    info: dict[str, Any] = {}
    with ws.store("all") as store:
        for k in ws.folds:
            ubm_ = DiagGMM.load(ws.path(f"ubm/fold{k}.h5"))
            label2utt: dict[str, list[str]] = {}
            for u, lab in data.utt2label.items():
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
            models.save(ws.path(f"models/fold{k}.h5"))
            outputs.append(f"models/fold{k}.h5")
            info[f"fold{k}"] = {"classes": len(models)}
    return outputs, info


def score(ws: Workspace) -> StageResult:
    """Stage 5: ``scores/predictions.txt``, lines ``<utt> <true> <predicted> <fold>``."""
    s = ws.cfg.scoring
    ws.path("scores").mkdir(parents=True, exist_ok=True)
    data = ws.datadir("all")
    assert data.utt2label is not None
    folds = ws.read_folds()
    lines, n = [], 0
    with ws.store("all") as store:
        for k in ws.folds:
            ubm_ = DiagGMM.load(ws.path(f"ubm/fold{k}.h5"))
            models = SpeakerModels.load(ws.path(f"models/fold{k}.h5"), ubm_)
            test = [u for u in data.utt_ids if folds[u] == k and u in store]
            pred = predict_classes(
                ubm_, models, store, test, method=s.method, top_c=s.top_c, progress=ws.progress
            )
            lines += [f"{u} {data.utt2label[u]} {p} {k}\n" for u, p in zip(test, pred, strict=True)]
            n += len(test)
    write_text(ws.path("scores/predictions.txt"), "".join(lines))
    return ["scores/predictions.txt"], {"test_files_scored": n}


def normalize(ws: Workspace) -> StageResult:
    """Stage 6: nothing to normalise for classification (a record only)."""
    return [], {"applies": False}


def calibrate(ws: Workspace) -> StageResult:
    """Stage 7: nothing to calibrate for classification (a record only)."""
    return [], {"calibrate": False}


def evaluate(ws: Workspace) -> StageResult:
    """Stage 8: ``results.json`` (accuracies, confusion matrix) and ``confusion.png``."""
    rows = read_predictions(ws.path("scores/predictions.txt"))
    true = [r.label for r in rows]
    pred = [r.predicted for r in rows]
    fold = np.array([r.fold for r in rows])
    correct = np.array([a == b for a, b in zip(true, pred, strict=True)])
    labels = sorted(set(true))
    per_class = per_class_recall(true, pred)
    fold_acc = [float(correct[fold == k].mean()) for k in ws.folds if (fold == k).any()]
    cm, order = confusion_matrix(true, pred, labels=sorted(set(true) | set(pred)))
    results = {
        "task": "classification",
        "name": ws.cfg.name,
        "config_hash": ws.config_hash,
        "accuracy": float(correct.mean()),
        "balanced_accuracy": balanced_accuracy(true, pred),
        "mean_fold_accuracy": float(np.mean(fold_acc)),
        "fold_accuracy": fold_acc,
        "per_class_recall": per_class,
        "n_test": len(rows),
        "n_classes": len(labels),
        "n_folds": ws.cfg.data.n_folds,
        "labels": order,
        "confusion_matrix": cm.tolist(),
    }
    plot_confusion(
        cm,
        [str(x) for x in order],
        ws.path("confusion.png"),
        title=f"{ws.cfg.name}: accuracy {100 * results['accuracy']:.1f}%",
    )
    write_json(ws.path("results.json"), results)
    return ["results.json", "confusion.png"], {"accuracy": results["accuracy"]}


def report(ws: Workspace) -> StageResult:
    """Stage 9: ``report.md`` with the confusion matrix."""
    return report_stage(ws, "confusion.png")
