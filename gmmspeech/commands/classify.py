"""``gmmspeech classify``: train a GMM classifier on one data dir's utt2label, test on another."""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path
from typing import Any

from ..atomic import atomic_path
from ..classifier import GMMClassifier
from ..errors import DataError
from ..featstore import open_features
from ..metrics import confusion_matrix, identification_accuracy
from ..speakermodels import read_utt2label

NAME = "classify"
HELP = "closed-set classification with one GMM per label (utt2label): accuracy, confusions"
EXAMPLE = (
    "gmmspeech classify feats.h5 data/train data/test --mode map --n-components 64 "
    "--json result.json --predictions pred.txt"
)

log = logging.getLogger(__name__)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("features", metavar="FEATS.h5", help="features of train and test utterances")
    p.add_argument("train", metavar="TRAIN_DIR", help="data dir with utt2label (training)")
    p.add_argument("test", metavar="TEST_DIR", help="data dir with utt2label (evaluation)")
    p.add_argument("--test-features", default=None, help="feature archive of TEST (default: FEATS)")
    p.add_argument("--mode", choices=["map", "ml"], default="map")
    p.add_argument("--n-components", type=int, default=64)
    p.add_argument("--relevance-factor", type=float, default=16.0)
    p.add_argument("--adapt", default="mw", help="MAP parameters (map mode, default mw)")
    p.add_argument("--top-c", type=int, default=None, help="top-C scoring (map mode)")
    p.add_argument("--label-file", default="utt2label", help="label file name (default utt2label)")
    p.add_argument("--json", default=None, metavar="PATH")
    p.add_argument("--predictions", default=None, metavar="PATH", help="'<utt> <label>' lines")
    p.add_argument("--seed", type=int, default=0)


def _load(feats: Any, datadir: str, label_file: str) -> tuple[list[str], list[Any], list[str]]:
    labels = read_utt2label(datadir, label_file)
    utts = list(labels)
    xs = []
    for u in utts:
        try:
            xs.append(feats[u])
        except KeyError:
            raise DataError(
                f"{Path(datadir) / label_file}: utterance {u!r} is not in the feature archive"
            ) from None
    return utts, xs, [labels[u] for u in utts]


def run(args: argparse.Namespace) -> int:
    feats = open_features(args.features)
    test_feats = open_features(args.test_features) if args.test_features else feats
    _, xtr, ytr = _load(feats, args.train, args.label_file)
    utt_te, xte, yte = _load(test_feats, args.test, args.label_file)
    clf = GMMClassifier(
        args.n_components,
        mode=args.mode,
        relevance_factor=args.relevance_factor,
        adapt=args.adapt,
        top_c=args.top_c,
        random_state=args.seed,
        progress=True,
    ).fit(xtr, ytr)
    unseen = sorted(set(yte) - set(clf.classes_.tolist()))
    if unseen:
        log.warning("test labels never seen in training (always wrong): %s", ", ".join(unseen))
    pred = [str(p) for p in clf.predict(xte)]
    acc = identification_accuracy(yte, pred)
    cm, labels = confusion_matrix(yte, pred)
    print(
        f"{len(yte)} test utterances, {len(clf.classes_)} classes, mode={args.mode}: "
        f"accuracy {100 * acc:.2f}%"
    )
    if args.predictions:
        with atomic_path(args.predictions) as tmp, open(tmp, "w", encoding="utf-8") as f:
            for u, p in zip(utt_te, pred, strict=True):
                f.write(f"{u} {p}\n")
    if args.json:
        out = {
            "accuracy": acc,
            "n_test": len(yte),
            "mode": args.mode,
            "n_components": args.n_components,
            "labels": labels,
            "confusion_matrix": cm.tolist(),
        }
        with atomic_path(args.json) as tmp:
            Path(tmp).write_text(json.dumps(out, indent=2) + "\n", encoding="utf-8")
    return 0
