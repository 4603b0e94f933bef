"""``gmmspeech demo``: a complete speaker-verification experiment on bundled recordings."""

from __future__ import annotations

import argparse
import logging

from ..demo.bundle import demo_config, demo_data_dir
from ..pipeline import Experiment
from .run import add_run_options, run_experiment

EXAMPLE = "gmmspeech demo [--out demo_exp] [--set ubm.n_components=32]"

log = logging.getLogger(__name__)


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_run_options(p)
    p.set_defaults(out="gmmspeech_demo")


def run(args: argparse.Namespace) -> int:
    cfg = demo_config(args.overrides)
    print(f"demo data: {demo_data_dir()} (LibriSpeech, CC BY 4.0)")
    exp = Experiment(cfg, args.out, config_path="demo.yaml", progress=not args.no_progress)
    return run_experiment(exp, args)
