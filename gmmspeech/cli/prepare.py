"""``gmmspeech prepare``: build a Kaldi-style data dir from a folder of audio files."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from ..config.sections import DataConfig, SetConfig
from ..corpus.layout import scan_audio
from ..corpus.prepare import split_verification
from ..storage.atomic import new_folder_or_nothing
from ..storage.outputs import DATADIR, check_output
from .common import add_config_arguments, add_overwrite_argument, config_source

EXAMPLE = (
    "gmmspeech prepare ../shared/data/arabic_speech_commands/dataset data/asc "
    "--pattern '{label}/{spk}_NO_{round}.flac' --split --background 10"
)

log = logging.getLogger(__name__)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("root", metavar="AUDIO_DIR", help="folder searched recursively for audio")
    p.add_argument("output", metavar="OUT_DIR", help="data dir to write (created)")
    p.add_argument(
        "--pattern",
        required=True,
        help="path layout relative to AUDIO_DIR with named fields, e.g. "
        "'{label}/{spk}_NO_{round}.flac', '{digit}_{spk}_{idx}.wav', "
        "'{spk}/{spk}-{chapter}-{utt}.flac'; {name:[0-9]+} restricts a field (literal "
        "characters and character classes with ?, * or +; no groups), * and **/ are "
        "wildcards; the file extension matches in any case",
    )
    p.add_argument(
        "--utt-id",
        default=None,
        metavar="TEMPLATE",
        help="utterance id template, e.g. '{spk}-{label}-{round}' (default: speaker field, "
        "then the other fields, joined by '-')",
    )
    p.add_argument(
        "--spk-field",
        default=None,
        help=f"field naming the speaker ('' for none; default {SetConfig.spk_field})",
    )
    p.add_argument(
        "--label-field",
        default=None,
        help=f"field written to utt2label ('' for none; default {SetConfig.label_field})",
    )
    add_config_arguments(p, "a 'data:'", "data.seed=1")
    p.add_argument(
        "--split",
        action="store_true",
        help="write OUT_DIR/background, OUT_DIR/enroll and OUT_DIR/test (with trials) "
        "instead of one data dir",
    )
    p.add_argument(
        "--background",
        type=float,
        default=0.3,
        help="with --split: background speakers, a fraction (<1) or a count (>=1) of the "
        "speakers with 2+ utterances; 1-utterance speakers always go there (default 0.3)",
    )
    p.add_argument(
        "--enroll",
        type=float,
        default=None,
        help="with --split: fraction of each target speaker's utterances for enrolment "
        f"(default: data.enroll_fraction, {DataConfig().enroll_fraction:g})",
    )
    p.add_argument(
        "--enroll-per-speaker",
        type=int,
        default=None,
        metavar="N",
        help="with --split: enrol each target speaker on its first N utterances (sorted ids), "
        "test on the rest (default: data.enroll_per_speaker)",
    )
    p.add_argument(
        "--enroll-labels",
        default=None,
        metavar="L1,L2,...",
        help="with --split: enrol on utterances with these labels, test on the others "
        "(default: data.enroll_labels)",
    )
    p.add_argument(
        "--trials-by",
        choices=["spk", "label"],
        default="spk",
        help="with --split: trial models are enrolment speakers or labels (default spk)",
    )
    p.add_argument(
        "--seed", type=int, default=None, help=f"seed of the split (default {DataConfig().seed})"
    )
    add_overwrite_argument(p)


FLAGS = {
    "enroll": "data.enroll_fraction",
    "enroll_per_speaker": "data.enroll_per_speaker",
    "seed": "data.seed",
}


def _set_config(args: argparse.Namespace) -> SetConfig:
    """The scanned set: the pattern flags over the :class:`SetConfig` defaults."""
    given = {
        k: getattr(args, k) for k in ("spk_field", "label_field") if getattr(args, k) is not None
    }
    return SetConfig(pattern=args.pattern, utt_id=args.utt_id, **given)


def run(args: argparse.Namespace) -> int:
    with new_folder_or_nothing(args.output):
        return _run(args)


def _run(args: argparse.Namespace) -> int:
    dcfg = config_source(args, FLAGS).section("data", DataConfig)
    sc = _set_config(args)
    check_output(args.output, DATADIR, inputs=[args.root], overwrite=args.overwrite)
    data = scan_audio(
        args.root,
        sc.pattern,
        utt_id=sc.utt_id,
        spk_field=sc.spk_field or None,
        label_field=sc.label_field or None,
    )
    out = Path(args.output)
    if not args.split:
        data.write(out)
        print(f"{out}: {data!r}")
        return 0
    labels = list(dcfg.enroll_labels) or None
    if args.enroll_labels:
        labels = [x.strip() for x in args.enroll_labels.split(",") if x.strip()]
    background = args.background
    sets = split_verification(
        data,
        background=int(background) if background >= 1 else background,
        enroll=dcfg.enroll_fraction,
        enroll_labels=labels,
        enroll_per_speaker=dcfg.enroll_per_speaker,
        seed=dcfg.seed,
        trials_by=args.trials_by,
    )
    sets.write(out)
    for name, d in (("background", sets.background), ("enroll", sets.enroll), ("test", sets.test)):
        print(f"{out / name}: {d!r}")
    return 0
