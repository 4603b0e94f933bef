"""``gmmspeech train-ubm``: train a UBM on the utterances of one or more feature stores."""

from __future__ import annotations

import argparse
import logging
import shutil
from pathlib import Path
from typing import Any

from ..config import ComputeConfig, UBMConfig
from ..config import load_sections as config_sections
from ..errors import DataError

NAME = "train-ubm"
HELP = "train a UBM (binary splitting + EM) on the frames of feature stores"
EXAMPLE = (
    "gmmspeech train-ubm feats/background.h5 ubm.h5 --config configs/speaker_verification.yaml "
    "--set ubm.n_components=256 --set compute.backend=processes [--datadir data/background]"
)

log = logging.getLogger(__name__)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("stores", metavar="FEATS.h5", nargs="+", help="feature stores to train on")
    p.add_argument("output", metavar="UBM.h5", help="model file to write")
    p.add_argument(
        "--config",
        metavar="YAML",
        default=None,
        help="a config with 'ubm:' (and 'compute:') sections, e.g. an experiment config",
    )
    p.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="e.g. --set ubm.n_components=256 --set compute.backend=processes (repeatable)",
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
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def load_sections(path: str | None, overrides: list[str]) -> tuple[UBMConfig, ComputeConfig]:
    """The ``ubm`` and ``compute`` sections of a config file plus ``--set`` overrides."""
    got = config_sections(path, overrides, {"ubm": UBMConfig, "compute": ComputeConfig})
    return got["ubm"], got["compute"]


def _train(args: argparse.Namespace, views: list[Any], ubm_cfg: Any, compute: Any) -> Any:
    """Train on store views through the configured engine; save the model atomically."""
    from ..engine import make_engine
    from ..ubm import train_ubm

    engine = make_engine(compute)
    ckpt = Path(args.checkpoint_dir or f"{args.output}.ckpt")
    try:
        ubm = train_ubm(
            views, config=ubm_cfg, checkpoint_dir=ckpt, progress=not args.no_progress, engine=engine
        )
    finally:
        engine.close()
    ubm.save(args.output)
    if args.checkpoint_dir is None:
        shutil.rmtree(ckpt, ignore_errors=True)
    return ubm


def run(args: argparse.Namespace) -> int:
    from ..datadir import DataDir
    from ..featstore import FeatureStore

    ubm_cfg, compute = load_sections(args.config, args.overrides)
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
