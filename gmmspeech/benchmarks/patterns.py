"""``gmmspeech bench patterns``: layout patterns against long paths that defeat backtracking."""

from __future__ import annotations

import argparse
import random
import time

from ..corpus.layout import compile_pattern
from ..errors import ConfigError
from .common import add_output_arguments, write_figures

HELP = "time layout-pattern matching on long paths built to make a backtracking matcher hang"
EXAMPLE = "gmmspeech bench patterns --paths 10000 --length 200"

#: name -> (pattern, make one path of about ``length`` characters from ``rng``)
CASES = {
    "12 {x:.*} fields, no match": (
        "".join(f"{{f{i}:.*}}" for i in range(12)) + "x.wav",
        lambda rng, n: "".join(rng.choice("ab-") for _ in range(n - 4)) + ".wav",
    ),
    "14 plain fields, no match": (
        "-".join(f"{{f{i}}}" for i in range(14)) + ".wav",
        lambda rng, n: "".join(rng.choice("ab-") for _ in range(n - 4)) + ".wax",
    ),
    "14 plain fields, match": (
        "-".join(f"{{f{i}}}" for i in range(14)) + ".wav",
        lambda rng, n: "".join(rng.choice("ab-") for _ in range(n - 4)) + ".wav",
    ),
    "12 {x:.*} fields, '_' between, match": (
        "_".join(f"{{f{i}:.*}}" for i in range(12)) + ".wav",
        lambda rng, n: "_".join(["ab" * ((n - 4) // 24)] * 12) + ".wav",
    ),
    "LibriSpeech layout": (
        "{spk}/{chapter}/{spk}-{chapter}-{utt}.flac",
        lambda rng, n: (lambda s, c: f"{s}/{c}/{s}-{c}-{rng.randint(0, 99):04d}.flac")(
            "s" * (n // 4), rng.randint(1000, 9999)
        ),
    ),
}


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--paths", type=int, default=10_000, help="paths per case (default 10000)")
    p.add_argument("--length", type=int, default=200, help="characters per path (default 200)")
    add_output_arguments(p)


def run(args: argparse.Namespace) -> int:
    if args.paths < 1 or args.length < 24:
        raise ConfigError("--paths must be >= 1 and --length >= 24")
    rng = random.Random(args.seed)
    result: dict[str, object] = {"benchmark": "patterns", "paths": args.paths}
    rows = {}
    for name, (pattern, make) in CASES.items():
        matcher, _ = compile_pattern(pattern)
        paths = [make(rng, args.length) for _ in range(args.paths)]
        wall, cpu = time.perf_counter(), time.process_time()
        hits = sum(matcher.fullmatch(p) is not None for p in paths)
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        chars = sum(map(len, paths)) / len(paths)
        rows[name] = {"pattern": pattern, "seconds": wall, "cpu_seconds": cpu, "matched": hits}
        print(
            f"{name}: {args.paths} paths of {chars:.0f} chars in {wall:.3f} s "
            f"({cpu:.3f} s CPU), {hits} matched; pattern {pattern}"
        )
    result["cases"] = rows
    if args.json:
        write_figures(args.json, result)
    return 0
