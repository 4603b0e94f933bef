"""The data sections of an experiment config: where the audio is and how it is split.

:class:`SetConfig` is one set of audio (a folder scanned with a pattern, or an existing
Kaldi data dir); :class:`DataConfig` is the ``data:`` section (sets, enrolment protocol,
trial list, folds). Both are re-exported by :mod:`gmmspeech.config.sections`, where the other
sections live.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import ConfigError
from .base import check as _check
from .base import check_choice, check_in, check_min, normalise

#: Formats of trial list files (``data.trials_format``), read by :func:`gmmspeech.read_trials`.
TRIAL_FORMATS = ("kaldi", "voxceleb")
_FOLD_BY = ("rank", "spk")


@dataclass(frozen=True)
class SetConfig:
    """A set of audio files: found under ``data.root`` by a path pattern, or an existing
    Kaldi data dir.

    Parameters
    ----------
    path : str
        Folder searched recursively, relative to ``data.root`` (or absolute).
    pattern : str
        Layout of the file paths under ``path`` with named fields, e.g.
        ``{spk}/{spk}-{chapter}-{utt}.flac`` (see :func:`gmmspeech.corpus.layout.compile_pattern`).
        Not used with ``kaldi_dir``.
    kaldi_dir : str or None
        An existing data dir (``wav.scp``, ``utt2spk``, optionally ``utt2label``), relative
        to ``data.root`` (or absolute), used instead of scanning ``path``.
    audio_root : str or None
        With ``kaldi_dir``: the folder relative ``wav.scp`` paths are relative to, relative
        to ``data.root`` (or absolute); default: the data dir itself.
    utt_id : str or None
        Utterance id template over the fields (default: speaker, then the other fields).
    spk_field, label_field : str or None
        Fields naming the speaker (each file is its own speaker when the pattern lacks it)
        and the class label (``utt2label``).
    include : tuple of str
        List files (relative to ``data.root``): only audio whose path relative to
        ``data.root`` is listed in one is kept. A list is a plain list (path first on each
        line), a CSV (its ``file`` column) or a ``wav.scp``-style ``<id> <path>`` list; see
        :func:`gmmspeech.corpus.layout.read_list` for the detection rule.
    max_speakers, max_per_speaker : int or None
        Keep only the first this many speakers, and utterances per speaker (sorted ids).
    """

    path: str = "."
    pattern: str = ""
    kaldi_dir: str | None = None
    audio_root: str | None = None
    utt_id: str | None = None
    spk_field: str | None = "spk"
    label_field: str | None = "label"
    include: tuple[str, ...] = ()
    max_speakers: int | None = None
    max_per_speaker: int | None = None

    def __post_init__(self) -> None:
        normalise(self)
        if self.kaldi_dir is None:
            _check(
                bool(self.pattern),
                "pattern",
                "a non-empty path pattern with fields (or give kaldi_dir)",
                self.pattern,
            )
            if self.audio_root is not None:
                raise ConfigError(
                    "audio_root: only used with kaldi_dir (relative wav.scp paths); "
                    "a scanned set uses path"
                )
        elif self.pattern:
            raise ConfigError(
                "pattern: a set is either scanned (path, pattern) or an existing data dir "
                "(kaldi_dir), not both; remove one"
            )
        check_min(self, "max_speakers", 1, optional=True)
        check_min(self, "max_per_speaker", 1, optional=True)


@dataclass(frozen=True)
class DataConfig:
    """Where the audio is and how it is split (:mod:`gmmspeech.pipeline`, stage ``prepare``).

    Parameters
    ----------
    root : str
        Corpus folder, relative to the YAML file's folder (to the current directory in a
        ``--set data.root=...``).
    background : SetConfig or None
        Verification: the speakers the UBM is trained on (also the normalisation cohort).
    targets : SetConfig or None
        Verification: the speakers enrolled and tested.
    enroll_fraction : float
        Verification: fraction of each target speaker's utterances used for enrolment
        (seeded draw; at least one each side). Used when no other enrolment rule is given.
    enroll_labels : tuple of str
        Verification: enrol on the utterances with these labels, test on the others.
    enroll_per_speaker : int or None
        Verification: enrol each target speaker on its first N utterances in sorted id
        order, test on the others.
    enroll_list : str or None
        Verification: the enrolment as given, a file (relative to the YAML file's folder) of
        utterance ids (each speaker a model) or ``<model> <utt>`` lines (multi-session
        models, models named differently from speakers); see
        :func:`gmmspeech.corpus.prepare.read_enroll_list`.
    trials : str or None
        Verification: a labelled trial list used as given, relative to the YAML file's
        folder (default: the ``trials`` file of a ``kaldi_dir`` targets set, else every model
        against every test utterance).
    trials_format : {"kaldi", "voxceleb"}
        ``kaldi``: ``<model> <test-utt> target|nontarget``; ``voxceleb``: ``<1|0>
        <enrol-path> <test-path>`` as in VoxCeleb1's ``veri_test2.txt``, whose enrolment
        utterances are single-utterance models unless ``enroll_list`` is given (see
        :func:`gmmspeech.corpus.trials.read_trials`).
    dataset : SetConfig or None
        Classification: the labelled files.
    n_folds : int
        Classification: cross-validation folds.
    fold_by : {"rank", "spk"}
        Classification: fold of a file = its rank within its class modulo ``n_folds``
        (``rank``), or whole speakers, in sorted order dealt round-robin (``spk``).
    seed : int
        Seed of the enrolment/test draw.
    """

    root: str = "."
    background: SetConfig | None = None
    targets: SetConfig | None = None
    enroll_fraction: float = 0.5
    enroll_labels: tuple[str, ...] = ()
    enroll_per_speaker: int | None = None
    enroll_list: str | None = None
    trials: str | None = None
    trials_format: str = "kaldi"
    dataset: SetConfig | None = None
    n_folds: int = 5
    fold_by: str = "rank"
    seed: int = 0

    def __post_init__(self) -> None:
        normalise(self)
        check_in(self, "enroll_fraction", "(0, 1)")
        check_min(self, "enroll_per_speaker", 1, optional=True)
        check_min(self, "n_folds", 2)
        check_choice(self, "fold_by", _FOLD_BY)
        check_choice(self, "trials_format", TRIAL_FORMATS)
        rules = [
            k
            for k, on in (
                ("enroll_labels", bool(self.enroll_labels)),
                ("enroll_per_speaker", self.enroll_per_speaker is not None),
                ("enroll_list", self.enroll_list is not None),
            )
            if on
        ]
        if len(rules) > 1:
            raise ConfigError(
                f"{rules[1]}: only one enrolment rule may be given, and {rules[0]} is set too"
            )


__all__ = ["DataConfig", "SetConfig"]
