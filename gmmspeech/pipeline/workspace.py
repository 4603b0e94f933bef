"""The experiment folder as a stage sees it: its artefacts, its part of the config, an engine.

A :class:`Workspace` made for one stage (``stage=``) lets the stage reach only the config
keys and artefacts its :class:`~.declarations.Stage` row declares; the runner's own
workspace (no stage) reaches everything.
"""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, cast

from ..config.sections import ComputeConfig, ExperimentConfig, SetConfig, config_hash, to_dict
from ..corpus.datadir import DataDir, read_utt2fold
from ..corpus.layout import scan_audio, select_listed
from ..corpus.prepare import limit_speakers
from ..engine import Engine, make_engine
from ..errors import ConfigError, DataError
from ..features.store import FeatureStore
from ..mixture.gmm import DiagGMM
from ..mixture.ubm import train_ubm
from ..storage.outputs import UBM_CHECKPOINT, remove_outputs
from .artefacts import DATA_DIR, FEATURES, FOLDS, RECORDS, UBM, Artefact
from .declarations import ALL, ConfigView, Stage, UndeclaredError

log = logging.getLogger(__name__)

#: Internal state of an experiment folder: the manifest and the resolved config.
STATE_DIR = ".gmmspeech"
MANIFEST = f"{STATE_DIR}/manifest.json"
RESOLVED_CONFIG = f"{STATE_DIR}/resolved-config.yaml"

#: What a stage function returns: the files it wrote (relative to the experiment folder)
#: and a JSON-serialisable ``info`` dict stored in its record.
StageResult = tuple[list[str], dict[str, Any]]


class Workspace:
    """One experiment folder and its config, as handed to the stage functions.

    Parameters
    ----------
    config : ExperimentConfig
    out_dir : path-like, optional
        The experiment folder (default ``config.out_dir`` or ``exp/<name>``).
    stage_names : sequence of str
        The stage names in order (stage ``i`` has record ``stages/{i:02d}_{name}.json``).
    hashes : mapping of str to str
        Stage name -> hash of the config sections the stage and the stages before it read.
    config_path : str, optional
        The YAML file the config came from (named in error messages).
    progress : bool
        Show progress bars.
    stage : Stage, optional
        The stage this workspace is for: it then reaches only what the stage declares.
    """

    def __init__(
        self,
        config: ExperimentConfig,
        out_dir: str | Path | None,
        *,
        stage_names: Sequence[str],
        hashes: Mapping[str, str],
        config_path: str | None = None,
        progress: bool = False,
        stage: Stage | None = None,
    ) -> None:
        self._config = config
        self._stage = stage
        self.cfg = config
        if stage is not None and ALL not in stage.sections:
            self.cfg = cast(ExperimentConfig, ConfigView(config, stage.config_keys, stage.name))
        self.out = Path(out_dir or config.out_dir or Path("exp") / config.name)
        self.where = config_path or "config"
        self.progress = progress
        self._stage_names = tuple(stage_names)
        self.hashes = dict(hashes) if stage is None else {stage.name: hashes[stage.name]}
        #: True while a stage runs because ``--force`` asked for it: work an interrupted run
        #: left behind (feature parts, UBM checkpoints) is then redone, not resumed.
        self.force = False

    # -------------------------------------------------------------- declarations
    def _refuse(self, what: str) -> UndeclaredError:
        name = "?" if self._stage is None else self._stage.name
        return UndeclaredError(
            f"stage {name}: {what}, which its declaration does not name; declare it in its "
            f"row of gmmspeech.pipeline.tables"
        )

    def _check(self, art: Artefact, write: bool = False) -> None:
        st = self._stage
        if st is None or art in st.writes or (not write and art in st.reads):
            return
        raise self._refuse(f"{'writes' if write else 'reads'} {art.key!r} ({art.template})")

    @property
    def hash(self) -> str:
        """The hash of this workspace's stage (its sections chained with those before)."""
        if self._stage is None:
            raise self._refuse("asks for its stage's hash outside a stage")
        return self.hashes[self._stage.name]

    @property
    def config_hash(self) -> str:
        """The hash of the whole config (a stage that reads it declares ``sections=(ALL,)``)."""
        if self._stage is not None and ALL not in self._stage.sections:
            raise self._refuse("reads the whole config's hash")
        return config_hash(to_dict(self._config))

    @property
    def stage_names(self) -> tuple[str, ...]:
        """The names of the stages of the table, in order (with the records)."""
        if self._stage is not None:
            self._check(RECORDS)
        return self._stage_names

    # ------------------------------------------------------------------ records
    def path(self, art: Artefact, **fields: object) -> Path:
        """The path of the artefact ``art`` (its placeholders filled by ``fields``)."""
        self._check(art)
        return self.out / art.rel(**fields)

    def ubm(self) -> DiagGMM:
        """The experiment's UBM (``ubm/ubm.h5``), for the stages that declare reading it."""
        return DiagGMM.load(self.path(UBM))

    def output(self, art: Artefact, **fields: object) -> Path:
        """The path of the artefact ``art`` that the stage writes, its folder made."""
        self._check(art, write=True)
        p = self.out / art.rel(**fields)
        p.parent.mkdir(parents=True, exist_ok=True)
        return p

    def record_path(self, index: int) -> Path:
        """The record file of stage ``index`` (1-based)."""
        self._check(RECORDS)
        return self.out / RECORDS.template / f"{index:02d}_{self._stage_names[index - 1]}.json"

    def record(self, index: int) -> dict[str, Any] | None:
        """The stage record of stage ``index`` (1-based), or None."""
        p = self.record_path(index)
        if not p.is_file():
            return None
        try:
            data = json.loads(p.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            log.warning("%s: unreadable stage record; the stage will run again", p)
            return None
        return data if isinstance(data, dict) else None

    def data_counts(self) -> dict[str, Any]:
        """Counts of the prepared data and extraction from the stage records."""
        out: dict[str, Any] = {}
        prep = (self.record(1) or {}).get("info", {})
        out.update(prep)
        ext = (self.record(2) or {}).get("info", {})
        for name, rec in ext.items():
            out[f"{name}: utterances with features"] = rec["utterances"] - rec["failed"]
            out[f"{name}: extraction failures"] = rec["failed"]
            out[f"{name}: audio seconds (this run)"] = rec["audio_seconds"]
        return out

    # ------------------------------------------------------------- resources
    @property
    def folds(self) -> list[int]:
        """Fold numbers of ``data/all/utt2fold`` (classification; every fold has files)."""
        return sorted(set(self.read_folds().values()))

    @contextlib.contextmanager
    def store(self, name: str) -> Iterator[FeatureStore]:
        """The feature store ``features/<name>.h5`` (closed when the block ends)."""
        store = FeatureStore(self.path(FEATURES, set=name))
        try:
            yield store
        finally:
            store.close()

    def datadir(self, name: str) -> DataDir:
        """The prepared data dir ``data/<name>``."""
        return DataDir.read(self.path(DATA_DIR, set=name), check_audio=False)

    def read_folds(self) -> dict[str, int]:
        """``data/all/utt2fold``: utterance id -> fold."""
        return read_utt2fold(self.path(FOLDS))

    @contextlib.contextmanager
    def engine(self, compute: ComputeConfig | None = None) -> Iterator[Engine]:
        """The engine of ``compute`` (default ``compute.*``; closed when the block ends)."""
        engine = make_engine(self.cfg.compute if compute is None else compute)
        try:
            yield engine
        finally:
            engine.close()

    def train_ubm(
        self, frames: FeatureStore, out: Path, ckpt: Path, keep: bool = False
    ) -> dict[str, Any]:
        """Train and save a UBM on ``frames`` (a store or a view, streamed from disk).

        Returns the stage info of the model: frames, components, iterations, final
        log-likelihood. The checkpoints under ``ckpt`` are removed unless ``keep``.
        """
        if self.force:
            remove_outputs(ckpt, UBM_CHECKPOINT)
        with self.engine() as engine:
            ubm = train_ubm(
                frames,
                config=self.cfg.ubm,
                checkpoint_dir=ckpt,
                progress=self.progress,
                feature_config=to_dict(self.cfg.features),
                engine=engine,
            )
        ubm.save(out)
        if not keep:
            remove_outputs(ckpt, UBM_CHECKPOINT)
        hist = ubm.history_
        return {
            "frames": int((ubm.config or {}).get("n_frames", 0)),
            "n_components": ubm.n_components,
            "iterations": len(hist),
            "final_log_likelihood": hist[-1]["log_likelihood"] if hist else None,
        }

    # ------------------------------------------------------------------ corpus
    def _root(self) -> Path:
        root = Path(self.cfg.data.root)
        if not root.is_dir():
            raise DataError(
                f"{self.where}: data.root: folder {str(root)!r} does not exist; point it at the "
                f"corpus, e.g. --set data.root=/path/to/corpus"
            )
        return root

    def _under_root(self, value: str) -> Path:
        p = Path(value).expanduser()
        return p if p.is_absolute() else self._root() / p

    def _read_kaldi_dir(self, key: str, s: SetConfig, kaldi_dir: str) -> DataDir:
        folder = self._under_root(kaldi_dir)
        audio_root = None if s.audio_root is None else self._under_root(s.audio_root)
        try:
            data = DataDir.read(folder, check_audio=True, audio_root=audio_root)
        except DataError as exc:
            raise DataError(f"{self.where}: data.{key}.kaldi_dir: {exc}") from None
        return data.with_absolute_paths()

    def scan_set(self, key: str, s: SetConfig) -> DataDir:
        """The set ``data.<key>``: an existing data dir, or the files matching a pattern."""
        root = self._root()
        if s.kaldi_dir is not None:
            data = self._read_kaldi_dir(key, s, s.kaldi_dir)
            if s.include:
                data = select_listed(data, root, s.include, f"{self.where}: data.{key}.include")
            return limit_speakers(data, s.max_speakers, s.max_per_speaker)
        folder = Path(s.path) if Path(s.path).is_absolute() else root / s.path
        if not folder.is_dir():
            raise DataError(
                f"{self.where}: data.{key}.path: folder {str(folder)!r} does not exist (under "
                f"data.root {str(root)!r}); fix the path or data.root"
            )
        try:
            data = scan_audio(
                folder,
                s.pattern,
                utt_id=s.utt_id,
                spk_field=s.spk_field,
                label_field=s.label_field,
            )
        except (DataError, ConfigError) as exc:
            raise type(exc)(f"{self.where}: data.{key}: {exc}") from None
        if s.include:
            data = select_listed(data, root, s.include, f"{self.where}: data.{key}.include")
        return limit_speakers(data, s.max_speakers, s.max_per_speaker)


def _present(
    spk2utt: Mapping[str, list[str]], store: FeatureStore
) -> tuple[dict[str, list[str]], int]:
    """Keep utterances that have features; drop speakers left with none."""
    out: dict[str, list[str]] = {}
    dropped = 0
    for spk, utts in spk2utt.items():
        have = [u for u in utts if u in store]
        dropped += len(utts) - len(have)
        if have:
            out[spk] = have
    if dropped:
        log.warning("%d utterance(s) without features (extraction failed) are left out", dropped)
    return out, dropped


__all__ = ["MANIFEST", "RESOLVED_CONFIG", "STATE_DIR", "StageResult", "Workspace"]
