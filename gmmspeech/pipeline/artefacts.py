"""The files of an experiment folder, each named once.

A stage reaches a file only through its :class:`Artefact` (``ws.path(RAW_SCORES)``), and
declares in its table row the artefacts it reads and writes: the runner then refuses any
other (:mod:`.workspace`), and a test checks that each artefact a stage reads is written by
an earlier stage of its table.
"""

from __future__ import annotations

import string
from dataclasses import dataclass


@dataclass(frozen=True)
class Artefact:
    """One kind of file (or folder) of an experiment, relative to the folder.

    Attributes
    ----------
    key : str
        Its name in declarations and error messages.
    template : str
        The relative path, with ``{field}`` placeholders (e.g. ``features/{set}.h5``).
    """

    key: str
    template: str

    @property
    def fields(self) -> tuple[str, ...]:
        """The placeholders of :attr:`template`, in order."""
        return tuple(f for _, f, _, _ in string.Formatter().parse(self.template) if f)

    def rel(self, **fields: object) -> str:
        """The relative path with ``fields`` filled in; a :class:`KeyError` names a missing one."""
        return self.template.format(**fields)

    def __repr__(self) -> str:
        return f"Artefact({self.key!r}, {self.template!r})"


# ----------------------------------------------------------------------------- corpus
DATA_DIR = Artefact("data dir", "data/{set}")
TRIALS = Artefact("trials", "data/test/trials")
FOLDS = Artefact("folds", "data/all/utt2fold")
FEATURES = Artefact("features", "features/{set}.h5")
FEATURES_MARKER = Artefact("features marker", "features/stage.json")

# ---------------------------------------------------------------------------- models
UBM = Artefact("ubm", "ubm/ubm.h5")
UBM_CHECKPOINTS = Artefact("ubm checkpoints", "ubm/checkpoints")
#: A UBM re-estimated without a group of background speakers (decisions.heldout).
HELDOUT_UBM = Artefact("heldout ubm", "ubm/heldout_{group}.h5")
FOLD_UBM = Artefact("fold ubm", "ubm/fold{fold}.h5")
FOLD_UBM_CHECKPOINTS = Artefact("fold ubm checkpoints", "ubm/checkpoints{fold}")
MODELS = Artefact("models", "models/models.h5")
FOLD_MODELS = Artefact("fold models", "models/fold{fold}.h5")
#: Scratch statistics of classification.method ivector (removed when the fold is done).
FOLD_STATS = Artefact("fold statistics", "scores/stats_fold{fold}.h5")

# --------------------------------------------------------------------------- i-vectors
STATS = Artefact("stats", "ivectors/stats_{set}.h5")
TV = Artefact("tv", "ivectors/tv.h5")
CALIBRATION_TV = Artefact("calibration tv", "ivectors/tv_calibration_{group}.h5")
CALIBRATION_IVECTORS = Artefact("calibration ivectors", "ivectors/calibration_{group}.h5")
IVECTORS = Artefact("ivectors", "ivectors/{set}.h5")
BACKEND = Artefact("backend", "backend/backend.h5")

# ------------------------------------------------------------------------------ scores
RAW_SCORES = Artefact("raw scores", "scores/raw.txt")
SCORES = Artefact("scores", "scores/scores.txt")
CALIBRATED_SCORES = Artefact("calibrated scores", "scores/calibrated.txt")
PREDICTIONS = Artefact("predictions", "scores/predictions.txt")
CALIBRATION = Artefact("calibration", "calibration/calibration.json")
CALIBRATION_TRIALS = Artefact("calibration trials", "calibration/trials")
CALIBRATION_SCORES = Artefact("calibration scores", "calibration/scores.txt")
#: The calibrate stage's facts (fit, fallback, trials) for results.json.
CALIBRATION_SUMMARY = Artefact("calibration summary", "calibration/summary.json")

# ------------------------------------------------------------------------------ fusion
FUSION_TRIALS = Artefact("fusion trials", "data/trials")
SYSTEM_SCORES = Artefact("system scores", "systems/{system}/scores.txt")
SYSTEM_CALIBRATION = Artefact("system calibration scores", "systems/{system}/calibration.txt")
SYSTEM_CALIBRATED = Artefact("system calibrated scores", "systems/{system}/calibrated.txt")
FUSION = Artefact("fusion", "fusion/fusion.json")
FUSED_SCORES = Artefact("fused scores", "scores/fused.txt")

# ----------------------------------------------------------------------------- results
RESULTS = Artefact("results", "results.json")
DET_PLOT = Artefact("det plot", "det.png")
CONFUSION_PLOT = Artefact("confusion plot", "confusion.png")
REPORT = Artefact("report", "report.md")
#: The runner's records of the stages before (times, memory, counts): the report's input.
RECORDS = Artefact("stage records", "stages")

#: Every artefact, by key.
ARTEFACTS: dict[str, Artefact] = {
    a.key: a for a in list(globals().values()) if isinstance(a, Artefact)
}
