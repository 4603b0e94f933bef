"""Every kind of artefact gmmspeech writes, what it records of its parents, and who checks it.

One table (:data:`KINDS`), in the order of the flow: each derived file records the
fingerprints of what it was made from, and each consumer compares them with the parents it is
given and refuses a mismatch with one line naming the file, the field, and both values.
``tests/test_lineage.py`` holds, for every kind listed here, a case that makes a small
artefact, gives its consumer a parent of another origin, and expects that refusal: a kind
added here without such a case fails that test, and so does a check that is switched off.

The writers and checkers are named by dotted path (this module is in the base layer and must
not import the layers that hold them); the test resolves each name, so the table cannot name
code that does not exist.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ArtefactKind:
    """One kind of artefact and its provenance.

    Attributes
    ----------
    name : str
        The kind, e.g. ``"models"``.
    formats : tuple of str
        The ``format`` values of its files (HDF5 attribute or JSON key); a scores file is
        recognised by its header line instead.
    files : str
        The files of this kind (format, where the pipeline and the CLI write them).
    parents : tuple of str
        What it is made from: other kinds, or inputs (``"audio"``, ``"trials"``).
    records : str
        What it records of its parents, and where in the file.
    writers : tuple of str
        Dotted paths of the code that writes that record.
    checkers : tuple of str
        Dotted paths of the code that compares it with the parents a consumer is given and
        refuses a mismatch (at least one).
    consumers : tuple of str
        Commands (and pipeline stages) that run those checks.
    """

    name: str
    formats: tuple[str, ...]
    files: str
    parents: tuple[str, ...]
    records: str
    writers: tuple[str, ...]
    checkers: tuple[str, ...]
    consumers: tuple[str, ...]


KINDS: tuple[ArtefactKind, ...] = (
    ArtefactKind(
        "features",
        ("gmmspeech.FeatureStore",),
        "feature store, HDF5 format gmmspeech.FeatureStore (extract; features/<set>.h5)",
        ("audio",),
        "attrs config (the feature config) and config_hash; each utterance's source_fp "
        "(size and mtime of its audio: changed audio is extracted again)",
        ("gmmspeech.features.store.write_store",),
        ("gmmspeech.storage.provenance.check_features",),
        ("train-ubm", "enroll", "score", "train-tv", "extract-ivectors"),
    ),
    ArtefactKind(
        "ubm",
        ("gmmspeech.DiagGMM",),
        "GMM, HDF5 format gmmspeech.DiagGMM (train-ubm; ubm/ubm.h5)",
        ("features",),
        "attrs feature_config: the feature config of its training frames; its own "
        "fingerprint is gmmspeech.mixture.speakermodels.ubm_fingerprint",
        ("gmmspeech.mixture.gmm.DiagGMM.save",),
        (
            "gmmspeech.storage.provenance.check_features",
            "gmmspeech.storage.provenance.check_feature_config",
        ),
        ("enroll", "score", "train-tv", "extract-ivectors"),
    ),
    ArtefactKind(
        "heldout-ubm",
        ("gmmspeech.DiagGMM",),
        "GMM re-estimated without a group of speakers, gmmspeech.DiagGMM (ubm/heldout_<g>.h5)",
        ("ubm",),
        "attrs parent_ubm (the UBM's fingerprint) and held_out_speakers",
        ("gmmspeech.decisions.heldout.save_heldout",),
        ("gmmspeech.decisions.heldout.load_heldout",),
        ("score --heldout-ubm", "normalize and calibrate stages"),
    ),
    ArtefactKind(
        "models",
        ("gmmspeech.SpeakerModels",),
        "MAP-adapted models, HDF5 format gmmspeech.SpeakerModels (enroll; models/models.h5)",
        ("ubm", "features"),
        "attrs ubm_sha256 (the UBM's fingerprint), n_components, n_features, feature_config",
        ("gmmspeech.mixture.speakermodels.SpeakerModels.save",),
        ("gmmspeech.mixture.speakermodels.SpeakerModels.load",),
        ("score", "score stage"),
    ),
    ArtefactKind(
        "statistics",
        ("gmmspeech.UtteranceStats",),
        "Baum-Welch statistics, HDF5 format gmmspeech.UtteranceStats (ivectors/stats_<set>.h5)",
        ("ubm", "features"),
        "attrs ubm_sha256 and the UBM itself (group ubm), feature_config; dataset utt_ids",
        ("gmmspeech.ivector.stats.write_ubm_record",),
        (
            "gmmspeech.ivector.stats.read_ubm_record",
            "gmmspeech.ivector.stats.StatsFile.check_utterances",
        ),
        ("tv and ivectors stages", "train-tv", "extract-ivectors"),
    ),
    ArtefactKind(
        "tv",
        ("gmmspeech.TotalVariability",),
        "total-variability model, HDF5 format gmmspeech.TotalVariability (train-tv; "
        "ivectors/tv.h5)",
        ("ubm", "statistics"),
        "attrs ubm_sha256 and the UBM (group ubm), feature_config; its own fingerprint is "
        "TotalVariability.fingerprint (T and the UBM's fingerprint)",
        ("gmmspeech.ivector.stats.write_ubm_record",),
        (
            "gmmspeech.ivector.stats.read_ubm_record",
            "gmmspeech.ivector.tv.TotalVariability.transform",
        ),
        ("extract-ivectors", "ivectors stage"),
    ),
    ArtefactKind(
        "ivectors",
        ("gmmspeech.IVectors",),
        "i-vectors, HDF5 format gmmspeech.IVectors (extract-ivectors; ivectors/<set>.h5)",
        ("tv", "statistics"),
        "attrs tv_fingerprint; dataset utt_ids (each row's own utterance)",
        ("gmmspeech.ivector.tv.IVectorSet.save",),
        ("gmmspeech.ivector.tv.check_same_tv",),
        ("score-ivectors", "score stage"),
    ),
    ArtefactKind(
        "backend",
        ("gmmspeech.Backend",),
        "i-vector back end, HDF5 format gmmspeech.Backend (train-backend; backend/backend.h5)",
        ("ivectors",),
        "attrs tv_fingerprint: the TV model of its training i-vectors",
        ("gmmspeech.ivector.backend.Backend.save",),
        ("gmmspeech.ivector.tv.check_same_tv",),
        ("score-ivectors", "score stage"),
    ),
    ArtefactKind(
        "scores",
        (),
        "'<model> <test> <score>' lines after a '# gmmspeech scores k=v ...' header "
        "(score, score-ivectors, calibrate, fuse; scores/*.txt, calibration/scores.txt)",
        ("ubm", "features", "models", "tv", "backend", "trials"),
        "header: the system (gmmspeech.corpus.scorefiles.SYSTEM_FIELDS: UBM or TV "
        "fingerprint, feature config hash, method or scorer, norm, fused systems), kind "
        "(scores or llr), the models' or back end's SHA-256; the trial keys of every line",
        ("gmmspeech.corpus.scorefiles.system_header", "gmmspeech.corpus.scorefiles.llr_header"),
        (
            "gmmspeech.corpus.scorefiles.check_same_system",
            "gmmspeech.corpus.scorefiles.align_scores",
        ),
        ("evaluate", "calibrate", "fuse", "gather stage of a fusion"),
    ),
    ArtefactKind(
        "calibration",
        ("gmmspeech.LogisticCalibration",),
        "calibration JSON, format gmmspeech.LogisticCalibration (calibrate --save; "
        "calibration/calibration.json)",
        ("scores",),
        "key fitted_on: the system of the scores it was fitted on, its fingerprint, the file",
        ("gmmspeech.decisions.calibration.LogisticCalibration.record_scores",),
        ("gmmspeech.decisions.calibration.LogisticCalibration.check_scores",),
        ("calibrate --load", "evaluate --calibrate-on"),
    ),
    ArtefactKind(
        "fusion",
        ("gmmspeech.Fusion",),
        "fusion JSON, format gmmspeech.Fusion (fuse --save; fusion/fusion.json)",
        ("scores",),
        "key inputs: per system, in the order of the score columns, its name, system and "
        "fingerprint",
        ("gmmspeech.decisions.fusionfile.input_record",),
        ("gmmspeech.decisions.fusionfile.match_inputs",),
        ("fuse --load", "fuse --train ... --apply"),
    ),
)


#: ``format`` values of files that are not artefacts of the flow, and why.
NOT_ARTEFACTS = {
    "gmmspeech.Experiment": "an experiment folder's manifest: the runner's bookkeeping of "
    "which files it wrote (the stage records hold the fingerprints of their inputs)",
}


def kind(name: str) -> ArtefactKind:
    """The entry of :data:`KINDS` called ``name`` (KeyError if none)."""
    for k in KINDS:
        if k.name == name:
            return k
    raise KeyError(name)


__all__ = ["KINDS", "NOT_ARTEFACTS", "ArtefactKind", "kind"]
