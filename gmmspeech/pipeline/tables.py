"""The stage table of each system: what every stage hashes, reads and writes.

``--stage N`` counts from 1 in a table's order. A row's ``sections`` are its hash (chained
with the stage before it, so ``upstream`` keys are hashed by an earlier row); its ``reads``
and ``writes`` are the only artefacts the stage reaches (:mod:`.declarations`).
"""

from __future__ import annotations

from . import (
    classification,
    evaluation,
    fusion_stages,
    ivector_calibration,
    ivector_cohort,
    ivector_stages,
    verification,
)
from .artefacts import (
    BACKEND,
    CALIBRATED_SCORES,
    CALIBRATION,
    CALIBRATION_IVECTORS,
    CALIBRATION_SCORES,
    CALIBRATION_SUMMARY,
    CALIBRATION_TRIALS,
    CALIBRATION_TV,
    CONFUSION_PLOT,
    DATA_DIR,
    DET_PLOT,
    FEATURES,
    FEATURES_MARKER,
    FOLD_MODELS,
    FOLD_STATS,
    FOLD_UBM,
    FOLD_UBM_CHECKPOINTS,
    FOLDS,
    FUSED_SCORES,
    FUSION,
    FUSION_TRIALS,
    HELDOUT_UBM,
    IVECTORS,
    MODELS,
    PREDICTIONS,
    RAW_SCORES,
    RECORDS,
    REPORT,
    RESULTS,
    SCORES,
    STATS,
    SYSTEM_CALIBRATED,
    SYSTEM_CALIBRATION,
    SYSTEM_SCORES,
    TRIALS,
    TV,
    UBM,
    UBM_CHECKPOINTS,
)
from .declarations import ALL, Stage

SCORE_KEYS = ("scoring.method", "scoring.top_c")
NORM_KEYS = ("scoring.norm", "scoring.cohort_size", "scoring.top_n", "scoring.cohort_utts")
CALIBRATE_KEYS = (
    "scoring.calibrate",
    "scoring.calibration_trials",
    "scoring.p_target",
    # the fallback compares the actDCF of the calibration trials
    "scoring.c_miss",
    "scoring.c_fa",
)
EVALUATE_KEYS = ("scoring.p_target", "scoring.c_miss", "scoring.c_fa", "name")
#: The statistics' settings (which posteriors they keep).
STATS_KEYS = ("ivector.top_n", "ivector.min_post")
#: The total-variability model's settings (``STATS_KEYS`` belong to the statistics).
TV_KEYS = (
    "ivector.rank",
    "ivector.n_iter",
    "ivector.min_divergence",
    "ivector.batch_size",
    "ivector.random_state",
)
#: What the ``auto`` options of ``backend.*`` are chosen from, besides the data
#: (:func:`.feasibility.backend_choice`): the rank, and whether held-out groups fit back ends.
BACKEND_CHOICE_KEYS = (
    "ivector.rank",
    "scoring.norm",
    "scoring.calibrate",
    "scoring.calibration_trials",
)
#: Version 2 writes calibration/summary.json, which the evaluate stage reads.
CALIBRATE_VERSION = 2
CALIBRATION_OUT = (
    CALIBRATION,
    CALIBRATION_TRIALS,
    CALIBRATION_SCORES,
    CALIBRATION_SUMMARY,
    CALIBRATED_SCORES,
)

_PREPARE = Stage("prepare", verification.prepare, ("task", "data"), writes=(DATA_DIR, TRIALS))
_EXTRACT = Stage(
    "extract",
    verification.extract,
    ("features",),
    reads=(DATA_DIR,),
    writes=(FEATURES, FEATURES_MARKER),
)
_UBM = Stage(
    "ubm",
    verification.ubm,
    ("ubm",),
    upstream=("features",),
    reads=(FEATURES, DATA_DIR),
    writes=(UBM, UBM_CHECKPOINTS, HELDOUT_UBM),
)
_NORMALIZE_READS = (RAW_SCORES, DATA_DIR, TRIALS, FEATURES)
_EVALUATE = Stage(
    "evaluate",
    evaluation.evaluate,
    EVALUATE_KEYS,
    upstream=("scoring.norm", "scoring.calibrate"),
    reads=(RAW_SCORES, SCORES, CALIBRATED_SCORES, CALIBRATION_SUMMARY, DATA_DIR, TRIALS),
    writes=(RESULTS, DET_PLOT),
)
_REPORT = Stage("report", evaluation.report, (ALL,), reads=(RESULTS, RECORDS), writes=(REPORT,))

VERIFICATION = (
    _PREPARE,
    _EXTRACT,
    _UBM,
    Stage(
        "enroll",
        verification.enroll_speakers,
        ("enroll",),
        reads=(UBM, DATA_DIR, FEATURES),
        writes=(MODELS,),
    ),
    Stage(
        "score",
        verification.score,
        SCORE_KEYS,
        reads=(UBM, MODELS, DATA_DIR, TRIALS, FEATURES),
        writes=(RAW_SCORES,),
    ),
    Stage(
        "normalize",
        verification.normalize,
        NORM_KEYS,
        # the cohort is scored like the trials, on held-out UBMs
        upstream=(*SCORE_KEYS, "enroll"),
        reads=(*_NORMALIZE_READS, UBM, HELDOUT_UBM),
        writes=(SCORES,),
    ),
    Stage(
        "calibrate",
        verification.calibrate,
        CALIBRATE_KEYS,
        upstream=(*NORM_KEYS, *SCORE_KEYS, "enroll"),
        reads=(UBM, HELDOUT_UBM, DATA_DIR, FEATURES, SCORES),
        writes=CALIBRATION_OUT,
        version=CALIBRATE_VERSION,
    ),
    _EVALUATE,
    _REPORT,
)

CLASSIFICATION = (
    Stage("prepare", classification.prepare, ("task", "data"), writes=(DATA_DIR, FOLDS)),
    Stage(
        "extract",
        classification.extract,
        ("features",),
        reads=(DATA_DIR,),
        writes=(FEATURES, FEATURES_MARKER),
    ),
    Stage(
        "ubm",
        classification.ubm,
        ("ubm",),
        upstream=("features",),
        reads=(FOLDS, FEATURES),
        writes=(FOLD_UBM, FOLD_UBM_CHECKPOINTS),
    ),
    Stage(
        "enroll",
        classification.enroll_classes,
        ("enroll",),
        reads=(FOLD_UBM, DATA_DIR, FOLDS, FEATURES),
        writes=(FOLD_MODELS,),
    ),
    Stage(
        "score",
        classification.score,
        (*SCORE_KEYS, "classification", "ivector", "backend.lda_dim"),
        upstream=("enroll.relevance_factor",),
        reads=(FOLD_UBM, FOLD_MODELS, DATA_DIR, FOLDS, FEATURES),
        writes=(PREDICTIONS, FOLD_STATS),
    ),
    Stage(
        "evaluate",
        classification.evaluate,
        ("name",),
        reads=(PREDICTIONS, FOLDS),
        writes=(RESULTS, CONFUSION_PLOT),
    ),
    Stage("report", classification.report, (ALL,), reads=(RESULTS, RECORDS), writes=(REPORT,)),
)

IVECTOR = (
    _PREPARE,
    _EXTRACT,
    _UBM,
    Stage(
        "stats",
        ivector_stages.stats,
        STATS_KEYS,
        reads=(UBM, FEATURES),
        # min_post came after i-vector folders existed: unset, their hashes stay
        hashed_when_set=("ivector.min_post",),
        writes=(STATS,),
    ),
    # with ivector.min_post the stats files hold posteriors, read with the features' frames
    Stage("tv", ivector_stages.tv, TV_KEYS, reads=(UBM, STATS, FEATURES), writes=(TV,)),
    Stage(
        "caltv",
        ivector_calibration.caltv,
        # the held-out extractors serve the calibration and the cohort: changing p_target
        # does not retrain them, turning either on does
        ("scoring.calibrate", "scoring.calibration_trials", "scoring.norm"),
        upstream=(*STATS_KEYS, *TV_KEYS),
        reads=(UBM, HELDOUT_UBM, DATA_DIR, FEATURES),
        writes=(CALIBRATION_TV, CALIBRATION_IVECTORS),
    ),
    Stage(
        "ivectors",
        ivector_stages.ivectors,
        reads=(UBM, TV, STATS, FEATURES),
        writes=(IVECTORS,),
    ),
    Stage(
        "backend",
        ivector_stages.backend,
        ("backend",),
        # backend.*: auto is chosen for every back end, the held-out groups' too
        upstream=BACKEND_CHOICE_KEYS,
        reads=(IVECTORS, DATA_DIR),
        writes=(BACKEND,),
    ),
    Stage(
        "score",
        ivector_stages.score,
        reads=(BACKEND, IVECTORS, DATA_DIR, TRIALS),
        writes=(RAW_SCORES,),
    ),
    Stage(
        "normalize",
        ivector_cohort.normalize_stage,
        NORM_KEYS,
        # each part of the cohort: a held-out extractor and a back end of the others
        upstream=("backend", *BACKEND_CHOICE_KEYS),
        reads=(*_NORMALIZE_READS, UBM, HELDOUT_UBM, CALIBRATION_IVECTORS, IVECTORS),
        writes=(SCORES,),
    ),
    Stage(
        "calibrate",
        ivector_calibration.calibrate,
        CALIBRATE_KEYS,
        upstream=(*NORM_KEYS, "backend", *STATS_KEYS, *BACKEND_CHOICE_KEYS),
        reads=(
            UBM,
            HELDOUT_UBM,
            DATA_DIR,
            FEATURES,
            CALIBRATION_IVECTORS,
            CALIBRATION_TV,
            IVECTORS,
            BACKEND,
            SCORES,
        ),
        writes=CALIBRATION_OUT,
        version=CALIBRATE_VERSION,
    ),
    _EVALUATE,
    _REPORT,
)

FUSION_TABLE = (
    Stage(
        "gather",
        fusion_stages.gather,
        ("fusion.systems", "fusion.trials"),
        writes=(FUSION_TRIALS, CALIBRATION_TRIALS, SYSTEM_SCORES, SYSTEM_CALIBRATION),
    ),
    Stage(
        "fuse",
        fusion_stages.fuse,
        ("fusion.guard", "fusion.cv_folds", "scoring.p_target"),
        upstream=("fusion.systems",),
        reads=(FUSION_TRIALS, CALIBRATION_TRIALS, SYSTEM_SCORES, SYSTEM_CALIBRATION),
        writes=(FUSION, CALIBRATED_SCORES, FUSED_SCORES, SYSTEM_CALIBRATED),
    ),
    Stage(
        "evaluate",
        fusion_stages.evaluate,
        EVALUATE_KEYS,
        upstream=("fusion.systems",),
        reads=(
            FUSION_TRIALS,
            SYSTEM_SCORES,
            SYSTEM_CALIBRATED,
            FUSED_SCORES,
            CALIBRATED_SCORES,
            FUSION,
        ),
        writes=(RESULTS, DET_PLOT),
    ),
    Stage("report", fusion_stages.report, (ALL,), reads=(RESULTS, RECORDS), writes=(REPORT,)),
)

#: Task (``task:system`` for a system other than gmm-ubm) -> its stages in order.
REGISTRY: dict[str, tuple[Stage, ...]] = {
    "verification": VERIFICATION,
    "classification": CLASSIFICATION,
    "verification:ivector": IVECTOR,
    "verification:fusion": FUSION_TABLE,
}

__all__ = ["REGISTRY"]
