"""Stages that both tasks run the same way: feature extraction and the report."""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..config.loader import dump_yaml
from ..engine import extraction_compute
from ..features.extraction import extract_to_store
from ..features.extraction_worker import keep_freed_memory
from ..features.store import FeatureStore
from ..storage.outputs import FEATURE_STORE, STAGE_MARKER, TEXT_LOG, remove_outputs
from .artefacts import DATA_DIR, FEATURES, FEATURES_MARKER, REPORT, RESULTS, Artefact
from .report import render_report, write_json, write_text
from .workspace import StageResult, Workspace

log = logging.getLogger(__name__)


def extract_stage(ws: Workspace, sets: Sequence[str]) -> StageResult:
    """Stage 2: the feature store ``features/<set>.h5`` of each prepared data dir ``sets``.

    Stores of another data preparation or feature config are removed (the stores of
    ``sets`` with their part files and logs, nothing else: the folder may hold the user's
    files); stores of an interrupted run of this same stage are completed
    (``extract_to_store`` resumes).
    """
    marker = ws.path(FEATURES_MARKER)
    folder = marker.parent
    try:
        same = json.loads(marker.read_text("utf-8")).get("hash") == ws.hash
    except (OSError, ValueError):
        same = False
    if (ws.force or not same) and folder.exists():
        why = "--force" if ws.force else "features of another config"
        log.info("%s: removing the features (%s)", folder, why)
        _remove_stores(folder, sets)
    folder.mkdir(parents=True, exist_ok=True)
    write_json(marker, {"hash": ws.hash})
    outputs, info = [], {}
    keep_freed_memory()  # freed memory kept for reuse: long utterances extract 30 % faster
    n_files = sum(len(ws.datadir(name).wav_scp) for name in sets)
    compute = extraction_compute(ws.cfg.compute, ws.cfg.extract.processes, n_files)
    with ws.engine(compute) as engine:
        reports = [
            extract_to_store(
                ws.path(DATA_DIR, set=name),
                ws.output(FEATURES, set=name),
                ws.cfg.features,
                engine=engine,
                max_failed_fraction=ws.cfg.extract.max_failed_fraction,
                batch_size=ws.cfg.extract.batch_size,
                progress=ws.progress,
            )
            for name in sets
        ]
    for name, rep in zip(sets, reports, strict=True):
        outputs.append(FEATURES.rel(set=name))
        with ws.store(name) as store:
            few = few_frame_utterances(store)
        if few:
            log.warning(
                "%s: %d utterance(s) keep fewer than %d frames after VAD (e.g. %s); their "
                "models and scores rest on little data: check features.vad / vad_threshold_db",
                name,
                len(few),
                FEW_FRAMES,
                ", ".join(f"{u} ({n})" for u, n in few[:5]),
            )
        info[name] = {
            "utterances": rep.n_utterances,
            "extracted": rep.n_extracted,
            "already_there": rep.n_existing,
            "failed": rep.n_failed,
            "failures": rep.failures[:20],
            "audio_seconds": round(rep.audio_seconds, 1),
            "frames": rep.frames,
            "few_frame_utterances": len(few),
        }
        log.debug(
            "extract %s: %d extracted, %d already there, %d failed (of %d)",
            name,
            rep.n_extracted,
            rep.n_existing,
            rep.n_failed,
            rep.n_utterances,
        )
    return outputs, info


def _remove_stores(folder: Path, sets: Sequence[str]) -> None:
    """Delete the stores ``<folder>/<set>.h5`` the extract stage writes, and their companions."""
    names = "|".join(re.escape(f"{name}.h5") for name in sets)
    for name in sets:
        remove_outputs(folder / f"{name}.h5.parts", FEATURE_STORE, r"^part-\d+\.h5$")
    remove_outputs(folder, FEATURE_STORE, f"^({names})$")
    remove_outputs(folder, TEXT_LOG, f"^({names})\\.log$")
    remove_outputs(folder, STAGE_MARKER, r"^stage\.json$")


#: Utterances with fewer frames than this after VAD are named in a warning (a fifth of a
#: second at a 10 ms shift carries little of a speaker or a sound).
FEW_FRAMES = 20


def few_frame_utterances(store: FeatureStore, limit: int = FEW_FRAMES) -> list[tuple[str, int]]:
    """``(utt_id, n_frames)`` of the utterances of ``store`` with fewer than ``limit`` frames,
    sorted by id."""
    return [(u, n) for u in sorted(store) if (n := store.num_frames(u)) < limit]


def report_stage(
    ws: Workspace, figure: Artefact, counts: dict[str, Any] | None = None
) -> StageResult:
    """Last stage: ``report.md`` from ``results.json``, the stage records and the config
    (and ``counts``, default :meth:`Workspace.data_counts`); it shows ``figure``."""
    results = json.loads(ws.path(RESULTS).read_text(encoding="utf-8"))
    stages = []
    chosen: dict[str, str] = {}
    for i, name in enumerate(ws.stage_names[:-1], 1):
        rec = ws.record(i) or {}
        # what a stage chose for an ``auto`` option: "<key>" -> "<value> (<why>)"
        chosen |= (rec.get("info") or {}).get("auto") or {}
        stages.append(
            {
                "index": i,
                "name": name,
                "seconds": rec.get("seconds"),
                "peak_rss_mib": rec.get("peak_rss_mib"),
                "used_mib": rec.get("used_mib"),
                "finished": rec.get("finished", "-"),
            }
        )
    text = render_report(
        name=ws.cfg.name,
        task=ws.cfg.task,
        config_yaml=dump_yaml(ws.cfg),
        config_hash=ws.config_hash,
        counts=ws.data_counts() if counts is None else counts,
        stages=stages,
        results=results,
        figure=figure.rel(),
        chosen=chosen,
    )
    write_text(ws.output(REPORT), text)
    return [REPORT.rel()], {}


def extraction_summary(info: dict[str, Any]) -> list[str]:
    """One line per feature store from the extract stage's record ``info``."""
    return [
        f"extract {name}: {rec['extracted']} extracted, {rec['already_there']} already there, "
        f"{rec['failed']} failed (of {rec['utterances']})"
        for name, rec in info.items()
    ]


def headline(results: dict[str, Any]) -> str:
    """One line with the main numbers of a results dict."""
    if results.get("task") == "classification":
        return (
            f"accuracy {100 * results['accuracy']:.2f}%, balanced accuracy "
            f"{100 * results['balanced_accuracy']:.2f}% ({results['n_test']} files, "
            f"{results['n_classes']} classes, {results['n_folds']} folds; mean fold accuracy "
            f"{100 * results['mean_fold_accuracy']:.2f}%)"
        )
    return (
        f"EER {100 * results['eer']:.2f}%, minDCF {results['min_dcf']:.4f} "
        f"(P_tar={results['p_target']:g}), Cllr {results['cllr']:.3f}; {results['n_trials']} "
        f"trials ({results['n_target']} target), {results['n_models']} models"
    )
