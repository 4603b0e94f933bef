"""Train and save a UBM from the sections of a gmmspeech YAML config, with library calls only.

    python recipes/train_ubm_from_yaml.py CONFIG.yaml OUT_DIR [--set ubm.n_components=64]
    python recipes/train_ubm_from_yaml.py CONFIG.yaml OUT_DIR --store feats.h5

What it reads from the config (an experiment config such as ``configs/*.yaml`` works as it is):

* ``data.root`` and ``data.background`` (``data.dataset`` for classification): the audio the
  UBM is trained on, found by the set's ``path`` and ``pattern``;
* ``features`` and ``extract``: how the features are computed into ``OUT_DIR/features.h5``
  (skipped with ``--store``, an existing feature store; a rerun resumes the extraction);
* ``ubm`` and ``compute``: how the UBM is trained, and where.

It writes ``OUT_DIR/ubm.h5``. The same steps are stages 1-3 of ``gmmspeech run``, which adds
the enrolment/test split, the resumable stage records and the report; this script shows the
calls for a training script of your own.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from gmmspeech import (
    DiagGMM,
    FeatureStore,
    extract_to_store,
    load_config,
    make_engine,
    scan_audio,
    train_ubm,
)
from gmmspeech.config.sections import ExperimentConfig
from gmmspeech.engine import Engine


def extract(cfg: ExperimentConfig, store: Path, engine: Engine) -> None:
    """Features of the UBM's audio (``data.background`` or ``data.dataset``) into ``store``."""
    audio = cfg.data.background or cfg.data.dataset
    if audio is None:
        sys.exit("the config has no data.background (or data.dataset) section")
    data = scan_audio(
        Path(cfg.data.root) / audio.path,
        audio.pattern,
        utt_id=audio.utt_id,
        spk_field=audio.spk_field,
        label_field=audio.label_field,
    )
    report = extract_to_store(
        data,
        store,
        cfg.features,
        engine=engine,
        max_failed_fraction=cfg.extract.max_failed_fraction,
        batch_size=cfg.extract.batch_size,
    )
    print(f"{store}: {report.n_extracted} extracted, {report.n_failed} failed")


def train(cfg: ExperimentConfig, store: Path, out: Path, engine: Engine) -> DiagGMM:
    """Train on every utterance of ``store`` with ``cfg.ubm`` and save it to ``out``."""
    with FeatureStore(store) as feats:
        ubm = train_ubm(feats, config=cfg.ubm, engine=engine)
    ubm.save(out)
    return ubm


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("config", help="YAML config (see configs/)")
    p.add_argument("out", help="output folder (features.h5, ubm.h5)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--store", default=None, help="train on this feature store (no extraction)")
    args = p.parse_args(argv)

    cfg = load_config(args.config, args.overrides)  # typed; errors name file:line
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    store = Path(args.store) if args.store else out / "features.h5"
    with make_engine(cfg.compute) as engine:  # compute.*: this process, processes or Dask
        if args.store is None:
            extract(cfg, store, engine)
        ubm = train(cfg, store, out / "ubm.h5", engine)
    print(f"{out / 'ubm.h5'}: {ubm.n_components} components, {ubm.n_features} features")
    return 0


if __name__ == "__main__":
    sys.exit(main())
