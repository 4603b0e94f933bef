"""``gmmspeech train-ubm``: train a UBM on the utterances of one or more feature stores."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from ..config.loader import ConfigSource
from ..config.sections import ComputeConfig, UBMConfig
from ..corpus.datadir import DataDir
from ..engine import make_engine
from ..errors import DataError
from ..features.store import FeatureStore
from ..mixture.gmm import DiagGMM
from ..mixture.ubm import train_ubm
from ..storage.atomic import new_folder_or_nothing
from ..storage.outputs import (
    UBM,
    UBM_CHECKPOINT,
    check_output,
    declare_folder,
    remove_outputs,
)
from .common import add_config_arguments, add_overwrite_argument, config_source

EXAMPLE = (
    "gmmspeech train-ubm feats/background.h5 ubm.h5 --config configs/speaker_verification.yaml "
    "--set ubm.n_components=256 --set compute.backend=processes [--datadir data/background]"
)

log = logging.getLogger(__name__)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("stores", metavar="FEATS.h5", nargs="+", help="feature stores to train on")
    p.add_argument("output", metavar="UBM.h5", help="model file to write")
    add_config_arguments(
        p, "'ubm:' and 'compute:'", "ubm.n_components=256 --set compute.backend=processes"
    )
    p.add_argument(
        "--datadir",
        default=None,
        help="use only the utterances of this data dir (wav.scp ids; default: all)",
    )
    p.add_argument(
        "--checkpoint-dir",
        default=None,
        help="checkpoint every split stage here; a rerun resumes (default: OUTPUT.ckpt)",
    )
    add_overwrite_argument(p)
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def load_sections(src: ConfigSource) -> tuple[UBMConfig, ComputeConfig]:
    """The ``ubm`` and ``compute`` sections."""
    return src.section("ubm", UBMConfig), src.section("compute", ComputeConfig)


def _train(
    args: argparse.Namespace,
    views: list[FeatureStore],
    ubm_cfg: UBMConfig,
    compute: ComputeConfig,
) -> DiagGMM:
    """Train on store views through the configured engine; save the model atomically."""
    engine = make_engine(compute)
    ckpt = Path(args.checkpoint_dir or f"{args.output}.ckpt")
    try:
        with new_folder_or_nothing(ckpt):  # a failure before the first checkpoint leaves none
            ubm = train_ubm(
                views,
                config=ubm_cfg,
                checkpoint_dir=ckpt,
                progress=not args.no_progress,
                engine=engine,
            )
    finally:
        engine.close()
    ubm.save(args.output)
    if args.checkpoint_dir is None:
        remove_outputs(ckpt, UBM_CHECKPOINT)
    return ubm


def run(args: argparse.Namespace) -> int:
    ubm_cfg, compute = load_sections(config_source(args))
    inputs = [*args.stores, args.datadir, args.checkpoint_dir]
    check_output(args.output, UBM, inputs=inputs, overwrite=args.overwrite)
    if args.checkpoint_dir is not None:  # its checkpoints are this command's to write
        declare_folder(args.checkpoint_dir)
    wanted = None
    if args.datadir:
        wanted = set(DataDir.read(args.datadir, check_audio=False).utt_ids)
    stores = [FeatureStore(path) for path in args.stores]
    try:
        views = []
        n_missing = 0
        found: set[str] = set()
        for store in stores:
            ids = [u for u in store if wanted is None or u in wanted]
            found.update(ids)
            if ids:
                views.append(store.select(ids))
        if wanted is not None:
            n_missing = len(wanted - found)
            if n_missing:
                log.warning(
                    "%d utterance(s) of %s have no features in the stores", n_missing, args.datadir
                )
        if not views:
            raise DataError(f"{', '.join(args.stores)}: no utterance to train on")
        ubm = _train(args, views, ubm_cfg, compute)
    finally:
        for store in stores:
            store.close()
    n_frames = int((ubm.config or {}).get("n_frames", 0))
    print(
        f"wrote {args.output}: {ubm.n_components} components, {len(ubm.history_)} EM "
        f"iterations; {len(found)} utterances ({n_frames} frames, streamed from disk) "
        f"processed, {n_missing} missing"
    )
    return 0
