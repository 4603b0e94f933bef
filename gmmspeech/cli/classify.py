"""``gmmspeech classify``: train a GMM classifier on one data dir's utt2label, test on another."""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path
from typing import Any

from ..config.sections import TASK_DEFAULTS, EnrollConfig, ScoringConfig, UBMConfig
from ..corpus.datadir import read_utt2label
from ..decisions.classifier import GMMClassifier
from ..decisions.metrics import confusion_matrix, identification_accuracy
from ..errors import ConfigError, DataError
from ..features.store import open_features
from ..storage.atomic import atomic_path
from ..storage.outputs import CLASSIFY_JSON, PREDICTIONS, check_output
from .common import add_config_arguments, add_map_arguments, add_overwrite_argument, config_source

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
    p.add_argument(
        "--mode",
        choices=["map", "ml"],
        default="map",
        help="map: a UBM and one MAP-adapted model per label; ml: one EM-trained GMM per label",
    )
    add_config_arguments(p, "'ubm:', 'enroll:' and 'scoring:'", "enroll.adapt=mw")
    p.add_argument(
        "--n-components",
        type=int,
        default=None,
        help=f"components of the UBM or of each GMM (default: ubm.n_components, "
        f"{UBMConfig().n_components})",
    )
    add_map_arguments(
        p,
        adapt_default=f"for classification {TASK_DEFAULTS['classification']['enroll']['adapt']}",
    )
    p.add_argument(
        "--method",
        choices=["exact", "topc"],
        default=None,
        help=f"map mode scoring (default: scoring.method, {ScoringConfig().method})",
    )
    p.add_argument(
        "--top-c", type=int, default=None, help=f"C of topc (default {ScoringConfig().top_c})"
    )
    p.add_argument("--label-file", default="utt2label", help="label file name (default utt2label)")
    p.add_argument("--json", default=None, metavar="PATH")
    p.add_argument("--predictions", default=None, metavar="PATH", help="'<utt> <label>' lines")
    p.add_argument(
        "--seed",
        type=int,
        default=None,
        help=f"seed of UBM training (default: ubm.random_state, {UBMConfig().random_state})",
    )
    add_overwrite_argument(p)


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


FLAGS = {
    "n_components": "ubm.n_components",
    "seed": "ubm.random_state",
    "relevance_factor": "enroll.relevance_factor",
    "adapt": "enroll.adapt",
    "method": "scoring.method",
    "top_c": "scoring.top_c",
}


def run(args: argparse.Namespace) -> int:
    src = config_source(args, FLAGS)
    ubm_cfg = src.section("ubm", UBMConfig)
    en = src.section("enroll", EnrollConfig, task="classification")
    sc = src.section("scoring", ScoringConfig)
    inputs = [args.features, args.test_features, args.config]
    inputs += [Path(d) / args.label_file for d in (args.train, args.test)]
    check_output(args.json, CLASSIFY_JSON, inputs=inputs, overwrite=args.overwrite)
    check_output(args.predictions, PREDICTIONS, inputs=inputs, overwrite=args.overwrite)
    if sc.method == "linear":
        raise ConfigError("scoring.method: classify scores with 'exact' or 'topc', not 'linear'")
    feats = open_features(args.features)
    test_feats = open_features(args.test_features) if args.test_features else feats
    _, xtr, ytr = _load(feats, args.train, args.label_file)
    utt_te, xte, yte = _load(test_feats, args.test, args.label_file)
    clf = GMMClassifier(
        ubm_cfg.n_components,
        mode=args.mode,
        relevance_factor=en.relevance_factor,
        adapt=en.adapt,
        top_c=sc.top_c if sc.method == "topc" else None,
        random_state=ubm_cfg.random_state,
        ubm_options={"config": ubm_cfg},
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
            "n_components": ubm_cfg.n_components,
            "labels": labels,
            "confusion_matrix": cm.tolist(),
        }
        with atomic_path(args.json) as tmp:
            Path(tmp).write_text(json.dumps(out, indent=2) + "\n", encoding="utf-8")
    return 0
