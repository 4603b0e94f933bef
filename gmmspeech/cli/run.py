"""``gmmspeech run``: a whole experiment from a YAML config, resumable stage by stage."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from ..config.loader import load_config
from ..config.overrides import add_set_argument
from ..config.sections import ExperimentConfig
from ..pipeline import STAGES, Experiment, StageOutcome, extraction_summary, headline
from ..pipeline.artefacts import CONFUSION_PLOT, DET_PLOT, REPORT, RESULTS
from ..pipeline.runner import REGISTRY
from ..storage.gate import current_gate
from ..storage.scratch import remove_stale

IVECTOR_STAGES = tuple(st.name for st in REGISTRY["verification:ivector"])
FUSION_STAGES = tuple(st.name for st in REGISTRY["verification:fusion"])
CLASSIFICATION_STAGES = tuple(st.name for st in REGISTRY["classification"])

EXAMPLE = (
    "gmmspeech run recipes/speaker_verification/librispeech_samples/config.yaml "
    "--set ubm.n_components=256 [--stage 3 --stop-stage 5] [--force] [--out exp/ls256]"
)

log = logging.getLogger(__name__)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("config", metavar="CONFIG.yaml", help="experiment config (see configs/)")
    add_run_options(p)


def add_run_options(p: argparse.ArgumentParser) -> None:
    """Options shared by ``run`` and ``demo``."""
    add_set_argument(p, "ubm.n_components=256")
    p.add_argument(
        "--stage",
        type=int,
        default=1,
        metavar="N",
        help=f"first stage to run, 1..{len(STAGES)}: "
        + ", ".join(f"{i} {s}" for i, s in enumerate(STAGES, 1))
        + " (task classification: "
        + ", ".join(f"{i} {s}" for i, s in enumerate(CLASSIFICATION_STAGES, 1))
        + f"; system ivector: {', '.join(f'{i} {s}' for i, s in enumerate(IVECTOR_STAGES, 1))};"
        + f" fusion: {', '.join(f'{i} {s}' for i, s in enumerate(FUSION_STAGES, 1))})",
    )
    p.add_argument(
        "--stop-stage",
        type=int,
        default=None,
        metavar="M",
        help="last stage to run (default: the last)",
    )
    p.add_argument(
        "--force",
        action="store_true",
        help="rerun the selected stages; also use an --out folder that holds other files "
        "(they are listed in its manifest and never replaced nor deleted)",
    )
    p.add_argument(
        "--out", default=None, metavar="DIR", help="experiment folder (overrides out_dir)"
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bars")


def declare_experiment(cfg: ExperimentConfig, out: Path) -> None:
    """Declare the experiment folder ``out`` to the command's output gate, after the
    experiments and score files a fusion reads: ``out`` may be none of them, nor hold one.
    Then remove the temporaries that killed runs left in it."""
    gate = current_gate()
    if gate is None:
        return
    if cfg.system == "fusion":
        for i, s in enumerate(cfg.fusion.systems):
            if s.experiment is not None:
                gate.add_input_folder(s.experiment, f"fusion.systems[{i}].experiment")
            gate.add_inputs([s.scores, s.calibration_trials, s.calibration_scores])
        gate.add_inputs([cfg.fusion.trials])
    gate.declare_folder(out)
    n = remove_stale(out, recursive=True)
    if n:
        log.info("%s: removed %d temporary file(s)/folder(s) of interrupted runs", out, n)


def run_experiment(exp: Experiment, args: argparse.Namespace) -> int:
    """Run the selected stages, print one line per stage, the counts and the headline."""
    declare_experiment(exp.cfg, exp.out)

    def show(o: StageOutcome) -> None:
        if o.name == "extract" and o.status == "ran":
            for line in extraction_summary((exp.record(o.index) or {}).get("info", {})):
                print(line)
        secs = f"{o.seconds:.1f} s" if o.seconds is not None else "-"
        what = f"done; {o.reason}" if o.status == "ran" else "up to date, skipped"
        print(f"stage {o.index} {o.name}: {what} ({secs})", flush=True)

    print(f"experiment folder: {exp.out}")
    outcomes = exp.run(args.stage, args.stop_stage, force=args.force, on_stage=show)
    ran = sum(o.status == "ran" for o in outcomes)
    skipped = sum(o.status == "skipped" for o in outcomes)
    summary = f"stages: {ran} run, {skipped} skipped"
    if any(o.name == "extract" and o.status == "ran" for o in outcomes):
        ext = (exp.record(exp.stage_number("extract")) or {}).get("info", {})
        n_new = sum(v["extracted"] for v in ext.values())
        n_failed = sum(v["failed"] for v in ext.values())
        summary += f"; utterances: {n_new} extracted, {n_failed} failed"
    print(summary)
    if exp.is_done(exp.stage_number("evaluate")):
        res = exp.results()
        print(f"{exp.cfg.name}: {headline(res)}")
        fig = DET_PLOT if res.get("task") == "verification" else CONFUSION_PLOT
        print(f"results: {exp.path(RESULTS)}")
        print(f"plot:    {exp.path(fig)}")
    if exp.is_done(exp.stage_number("report")):
        print(f"report:  {exp.path(REPORT)}")
    return 0


def run(args: argparse.Namespace) -> int:
    cfg = load_config(args.config, args.overrides)
    exp = Experiment(cfg, args.out, config_path=args.config, progress=not args.no_progress)
    return run_experiment(exp, args)
