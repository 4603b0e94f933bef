"""``gmmspeech train-backend``: train the i-vector back end (LDA, WCCN, PLDA) on i-vectors."""

from __future__ import annotations

import argparse

import numpy as np

from ..config.sections import BackendConfig
from ..corpus.datadir import DataDir
from ..errors import DataError
from ..ivector.backend import Backend
from ..ivector.tv import IVectorSet
from ..storage.outputs import BACKEND, check_output
from .common import add_config_arguments, add_overwrite_argument, config_source

EXAMPLE = (
    "gmmspeech train-backend ivectors/background.h5 data/background backend.h5 "
    "--set backend.lda_dim=150 --set backend.scorer=plda"
)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("ivectors", metavar="IVECTORS.h5", help="training i-vectors")
    p.add_argument("datadir", metavar="DATADIR", help="data dir whose utt2spk labels them")
    p.add_argument("output", metavar="BACKEND.h5", help="back end file to write")
    add_config_arguments(p, "a 'backend:'", "backend.scorer=cosine")
    add_overwrite_argument(p)


def run(args: argparse.Namespace) -> int:
    cfg = config_source(args).section("backend", BackendConfig)
    inputs = [args.ivectors, args.datadir, args.config]
    check_output(args.output, BACKEND, inputs=inputs, overwrite=args.overwrite)
    iv = IVectorSet.load(args.ivectors)
    utt2spk = DataDir.read(args.datadir, check_audio=False).utt2spk
    keep = [i for i, u in enumerate(iv.utt_ids) if u in utt2spk]
    if not keep:
        raise DataError(f"{args.ivectors}: no utterance of {args.datadir} has an i-vector")
    labels = [utt2spk[iv.utt_ids[i]] for i in keep]
    try:
        be = Backend(cfg).fit(iv.vectors[np.array(keep)], labels)
    except DataError as exc:
        raise DataError(f"{args.datadir}: {exc}") from None
    be.tv_fingerprint_ = iv.tv
    be.save(args.output)
    for key, why in be.choices_.items():
        print(f"backend.{key}: auto -> {why}")
    print(
        f"wrote {args.output}: {be.config.scorer} on {len(keep)} i-vectors of "
        f"{len(set(labels))} speakers (dimension {be.mean_.size})"
    )
    return 0
