"""``gmmspeech bench project``: hours per stage for a corpus larger than this machine's runs.

Measures each stage's per-unit time on synthetic data of the corpus's shape with the
stages' own code (:mod:`.throughput`, about a minute), then multiplies out the corpus's
work and spreads it over 1, 2 and N local workers and a Dask cluster of W
(:mod:`.projection`). The printed assumptions say what the figures rest on.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import time
from typing import Any

from ..errors import ConfigError
from .common import add_json_argument, write_figures
from .projection import (
    PRESETS,
    Machine,
    Shape,
    calibration_counts,
    columns,
    generic_shape,
    project,
    ubm_iterations,
)
from .throughput import DEFAULT_FRAMES, measure

HELP = "project hours per stage (extract ... back end) for a corpus, from throughput measured here"
EXAMPLE = (
    "gmmspeech bench project --corpus voxceleb1 --workers 8 --dask-workers 32\n"
    "  gmmspeech bench project --hours 500 --speakers 2000 --json project.json"
)
#: Assumed when Dask is not measured (``--dask-task-overhead``): cluster start-up, seconds.
ASSUMED_DASK_START = 5.0


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--corpus", choices=sorted(PRESETS), default=None, help="a known corpus")
    p.add_argument("--hours", type=float, default=None, help="or: hours of audio of a corpus")
    p.add_argument("--speakers", type=int, default=None, help="and its speakers")
    p.add_argument("--utterances", type=int, default=None, help="and its utterances (8 s each)")
    p.add_argument(
        "--target-speakers",
        type=int,
        default=None,
        help="speakers enrolled and tested (S/3, <= 40)",
    )
    p.add_argument("--enroll-fraction", type=float, default=0.5, help="of a target's utterances")
    p.add_argument("--k", type=int, default=None, help="GMM-UBM components (recipe's)")
    p.add_argument("--ivector-k", type=int, default=None, help="i-vector UBM components")
    p.add_argument("--rank", type=int, default=None, help="i-vector dimension")
    p.add_argument("--tv-iterations", type=int, default=None, help="TV EM iterations")
    p.add_argument(
        "--lda-dim", type=int, default=None, help="LDA dimensions of the back end (0: none)"
    )
    p.add_argument("--scorer", choices=["plda", "cosine"], default=None, help="back-end scorer")
    p.add_argument("--vad-keep", type=float, default=None, help="fraction of frames VAD keeps")
    p.add_argument(
        "--final-iterations",
        type=int,
        default=None,
        help="UBM EM iterations at K after the planned ones (default 10; the cap is 20)",
    )
    p.add_argument("--system", choices=["both", "gmm-ubm", "ivector"], default="both")
    p.add_argument("--workers", type=int, default=8, help="N local workers (default 8)")
    p.add_argument("--dask-workers", type=int, default=32, help="W Dask workers (default 32)")
    p.add_argument(
        "--network-gbps", type=float, default=10.0, help="Dask network (Gbit/s, default 10)"
    )
    p.add_argument(
        "--dask-task-overhead",
        type=float,
        default=None,
        metavar="SECONDS",
        help="assume this Dask overhead per task instead of measuring it",
    )
    p.add_argument(
        "--audio-format", choices=["wav", "flac"], default=None, help="of the corpus's files"
    )
    p.add_argument(
        "--parallel-fraction",
        type=float,
        default=None,
        metavar="P",
        help="assume this parallel fraction for every stage instead of the measured ones "
        "(for a busy machine, whose 1 -> 2 scaling says little)",
    )
    p.add_argument(
        "--frames", type=int, default=DEFAULT_FRAMES, help="frames of the synthetic store"
    )
    p.add_argument(
        "--repeat", type=int, default=1, help="timed runs of each measurement (median; 1)"
    )
    add_json_argument(p)


def shape_of(args: argparse.Namespace) -> Shape:
    """The corpus of ``--corpus`` or ``--hours/--speakers``, with the overrides applied."""
    if args.corpus is not None:
        if args.hours is not None or args.speakers is not None:
            raise ConfigError("--corpus: give a known corpus or --hours and --speakers, not both")
        s = PRESETS[args.corpus]
    else:
        if args.hours is None or args.speakers is None:
            raise ConfigError("bench project: give --corpus NAME, or --hours H and --speakers S")
        if args.hours <= 0 or args.speakers < 2:
            raise ConfigError("--hours: must be > 0, and --speakers >= 2")
        if args.target_speakers is not None and not 1 <= args.target_speakers < args.speakers:
            raise ConfigError("--target-speakers: must be >= 1 and below --speakers")
        s = generic_shape(
            args.hours, args.speakers, args.utterances, args.target_speakers, args.enroll_fraction
        )
    overrides = {
        "k": args.k,
        "ivector_k": args.ivector_k,
        "rank": args.rank,
        "tv_iterations": args.tv_iterations,
        "lda_dim": args.lda_dim,
        "scorer": args.scorer,
        "vad_keep": args.vad_keep,
        "final_iterations": args.final_iterations,
        "audio_format": args.audio_format,
    }
    s = dataclasses.replace(s, **{k: v for k, v in overrides.items() if v is not None})
    if s.lda_dim is not None and s.lda_dim < 1:
        s = dataclasses.replace(s, lda_dim=None)
    for name in ("k", "ivector_k", "rank", "tv_iterations"):
        if getattr(s, name) < 1:
            raise ConfigError(f"--{name.replace('_', '-')}: must be >= 1")
    if not 0 < s.vad_keep <= 1:
        raise ConfigError(f"--vad-keep: must be in (0, 1], got {s.vad_keep}")
    if s.final_iterations < 0:
        raise ConfigError("--final-iterations: must be >= 0")
    return s


def hours(seconds: float) -> str:
    h = seconds / 3600.0
    if h >= 100:
        return f"{h:,.0f}"
    return f"{h:.1f}" if h >= 10 else (f"{h:.2f}" if h >= 1 else f"{h:.3g}")


def _print_shape(s: Shape) -> None:
    print(f"Corpus {s.name}: {s.description}.")
    print(
        f"  {s.audio_hours:,.1f} h extracted ({s.utts:,} utterances); background "
        f"{s.bg_utts:,} utterances of {s.bg_seconds:.1f} s from {s.bg_speakers:,} speakers "
        f"({s.bg_frames / 1e6:,.1f} M frames after VAD); {s.models:,} models on "
        f"{s.enroll_utts:,} utterances; {s.test_utts:,} test utterances of "
        f"{s.target_seconds:.1f} s; {s.trials:,} trials"
    )


def _print_measured(m: dict[str, Any], elapsed: float, load: tuple[float, float]) -> None:
    u, p, sp = m["units"], m["parallel_fraction"], m["speedup_2_vs_1"]

    def line(stage: str, text: str, key: str | None) -> None:
        scale = f"{sp[key]:5.2f}x   {p[key]:4.2f}" if key in sp else "    -       -"
        print(f"  {stage:<11s} {text:<58s} {scale}")

    print(
        f"Measured on this machine ({os.cpu_count()} CPUs, load average {load[0]:.1f} -> "
        f"{load[1]:.1f}), synthetic data of this shape, in {elapsed:.0f} s:"
    )
    print(f"  {'stage':<11s} {'time per unit at one worker':<58s} 1 -> 2  parallel")
    line("extract", f"{u['extract_s_per_audio_s'] * 1e3:.2f} ms per second of audio", "extract")
    em = f"{u['em_s_per_frame_component'] * 1e9:.2f} ns per frame x component"
    line("UBM E-step", em + f" + {u['em_s_per_frame'] * 1e9:.0f} ns per frame", "em")
    if "enroll_s_per_frame" in u:
        line("enrol", f"{u['enroll_s_per_frame'] * 1e6:.1f} us per frame (one thread)", None)
        score = f"{u['score_s_per_frame'] * 1e6:.1f} us per test frame"
        line("score", score + f" + {u['score_s_per_trial'] * 1e6:.0f} us per trial", "score")
    if "stats_s_per_frame" in u:
        line("statistics", f"{u['stats_s_per_frame'] * 1e6:.1f} us per frame", "stats")
        tv = f"{u['tv_fixed_s']:.2f} s per iteration (driver threads)"
        line("TV", tv, "tv_driver")
        tv = f"  + {u['tv_s_per_utt'] * 1e3:.1f} ms per utterance (E-step; as statistics)"
        line("", tv, None)
        line("i-vectors", f"{u['ivector_s_per_utt'] * 1e3:.1f} ms per utterance", None)
        be = f"{u['backend_s_per_utt'] * 1e3:.2f} ms per training utterance"
        be += f" + {u['backend_s_per_pair'] * 1e9:.0f} ns per pair"
        line("back end", be + " (driver)", "backend")
    print(
        f"  pipe to the workers {m['pipe_small_bytes_per_s'] / 2**20:.0f} MiB/s (1 MiB messages), "
        f"{m['pipe_bytes_per_s'] / 2**20:.0f} MiB/s (64 MiB)",
        end="",
    )
    if m.get("dask_task_overhead_s") is not None:
        how = "assumed" if m.get("dask_assumed") else "measured, 2-worker LocalCluster"
        print(
            f"; Dask {m['dask_task_overhead_s'] * 1e3:.1f} ms per task, start-up "
            f"{m['dask_start_s']:.1f} s ({how})",
            end="",
        )
    print()
    if max(load) >= (os.cpu_count() or 1):
        m["notes"].append(
            f"the machine was busy (load average {max(load):.1f} on {os.cpu_count()} CPUs): "
            "other work slowed these runs and their 1 -> 2 scaling; rerun when it is idle"
        )
    for note in m["notes"]:
        print(f"  note: {note}")


def _print_tables(result: dict[str, Any], s: Shape) -> None:
    its = sum(n for _, n in ubm_iterations(s.k, s.final_iterations))
    its_iv = sum(n for _, n in ubm_iterations(s.ivector_k, s.final_iterations))
    lda = f"LDA {s.lda_dim}, " if s.lda_dim else ""
    titles = {
        "gmm-ubm": f"GMM-UBM: K={s.k} ({its} EM iterations), MAP means, top-{s.top_c}",
        "ivector": (
            f"i-vector: K={s.ivector_k} ({its_iv} EM iterations), R={s.rank} "
            f"({s.tv_iterations} TV iterations), {lda}{s.scorer.upper()}"
        ),
    }
    cols = list(next(iter(result.values()))["total"])
    print(f"{'Projected hours':<40s}" + "".join(f"{c:>12s}" for c in cols))
    for name, sys_ in result.items():
        print(f"  {titles[name]}")
        for stage, row in [*sys_["stages"].items(), ("total", {"seconds": sys_["total"]})]:
            print(f"    {stage:<36s}" + "".join(f"{hours(row['seconds'][c]):>12s}" for c in cols))


def assumptions(
    s: Shape, machine: Machine, dask_measured: bool, parallel: float | None = None
) -> list[str]:
    """What the projection assumes, a few lines."""
    how = (
        "the parallel fraction measured 1 -> 2 workers"
        if parallel is None
        else f"a parallel fraction of {parallel:g} (--parallel-fraction; not the measured one)"
    )
    c = calibration_counts(s)
    ov = "measured" if dask_measured else "assumed"
    return [
        f"Frames: {s.frames_per_second:g} per second; VAD keeps {100 * s.vad_keep:.0f} % of "
        f"them (--vad-keep); D = {s.n_features}. Synthetic frames cost what speech frames do.",
        "UBM: the library's split schedule (1, 1, 2, 2, 4, 4, 4, 4, 8, ... EM iterations), "
        f"{s.final_iterations} more at K before the final stage converges (--final-iterations; "
        "cap 20), one data pass before EM, held-out re-estimates = one pass at K; dense E-step "
        "(ubm.selection: dense).",
        f"Trials: {s.trials:,} scored, {int(c['trials']):,} calibration trials of "
        f"{int(c['models'])} background models (GMM-UBM); i-vector back end: trained on the "
        "background and on each half of it, scored for every (model, test) pair.",
        "N local workers = compute.backend processes with N workers on N cores: engine stages "
        f"by Amdahl with {how}, in whole waves of tasks (UBM shards of 262,144 frames; 32 "
        "utterances per scoring or statistics task; 2 TV tasks per worker); the driver's "
        "BLAS threads = N; MAP enrolment one thread. The TV E-step scales as the statistics.",
        "Transfers overlap the work (a stage takes the longer of the two, plus one task's "
        "transfers): what the pool pickles with every task (the UBM; a model bank or TV "
        "precomputation over 1 MiB once per call, through a file) and back (TV accumulators, "
        "statistics, features) at the pipe rates "
        "measured here (messages under 8 MiB at the 1 MiB rate); on Dask, shared data once "
        "per worker and call, results and inputs (features, statistics, on shared storage) "
        f"at {machine.network_bytes_per_s * 8 / 1e9:g} Gbit/s, plus "
        f"{machine.dask_task_overhead_s * 1e3:.1f} ms per task ({ov}); the driver is a "
        f"machine like this one ({machine.driver_cores} cores).",
        "caltv: two held-out extractors (background statistics, TV on half of it, its "
        "i-vectors), as with scoring.calibrate: true. Not projected: prepare, evaluate, "
        "report (seconds each) and score normalisation: with scoring.norm: auto (the recipes' "
        "now) the normalize stage, and calibrate for its trials, enrol and score a cohort "
        "of background speakers under each held-out UBM; --set scoring.norm=none is what "
        "the figures cover.",
    ]


def run(args: argparse.Namespace) -> int:
    s = shape_of(args)
    if args.workers < 1 or args.dask_workers < 1:
        raise ConfigError("--workers and --dask-workers: must be >= 1")
    if args.network_gbps <= 0 or args.frames < 1 or args.repeat < 1:
        raise ConfigError("--network-gbps, --frames and --repeat: must be > 0")
    if args.dask_task_overhead is not None and args.dask_task_overhead < 0:
        raise ConfigError("--dask-task-overhead: must be >= 0")
    if args.parallel_fraction is not None and not 0 <= args.parallel_fraction <= 1:
        raise ConfigError(f"--parallel-fraction: must be in [0, 1], got {args.parallel_fraction}")
    systems = ("gmm-ubm", "ivector") if args.system == "both" else (args.system,)
    _print_shape(s)
    load0, t0 = os.getloadavg()[0], time.perf_counter()
    measured, dk = measure(s, args.frames, args.repeat, args.dask_task_overhead is None, systems)
    elapsed = time.perf_counter() - t0
    m = measured.as_dict()
    if dk is None:
        over = 0.005 if args.dask_task_overhead is None else args.dask_task_overhead
        dk = (ASSUMED_DASK_START, over)
        m["dask_assumed"] = True
    m["dask_start_s"], m["dask_task_overhead_s"] = dk
    _print_measured(m, elapsed, (load0, os.getloadavg()[0]))
    machine = Machine(
        pipe_bytes_per_s=measured.pipe_bytes_per_s,
        pipe_small_bytes_per_s=measured.pipe_small_bytes_per_s,
        network_bytes_per_s=args.network_gbps * 1e9 / 8,
        dask_task_overhead_s=dk[1],
        driver_cores=os.cpu_count() or 1,
        startup_s={"local": measured.seconds["pool_first_start"], "dask": dk[0]},
    )
    parallel = dict(measured.parallel)
    if args.parallel_fraction is not None:
        parallel = dict.fromkeys(parallel, args.parallel_fraction)
    result = project(s, measured.units, parallel, machine, args.workers, args.dask_workers, systems)
    _print_tables(result, s)
    lines = assumptions(s, machine, not m.get("dask_assumed", False), args.parallel_fraction)
    print("Assumes:")
    for text in lines:
        print(f"  - {text}")
    if args.json:
        write_figures(
            args.json,
            {
                "benchmark": "project",
                "shape": dataclasses.asdict(s),
                "workers": args.workers,
                "dask_workers": args.dask_workers,
                "columns": [c for c, _, _ in columns(args.workers)] + [f"Dask {args.dask_workers}"],
                "machine": dataclasses.asdict(machine),
                "parallel_fraction_used": parallel,
                "measured": m,
                "measuring_seconds": elapsed,
                "systems": result,
                "assumptions": lines,
            },
        )
    return 0
