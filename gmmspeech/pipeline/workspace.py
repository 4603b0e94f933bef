"""The experiment folder as the stages see it: paths, stage records, stores, engine, data.

A :class:`Workspace` is what every stage function receives. It knows the config, the folder
and the names of the stages (for the records), and opens what a stage needs: feature stores,
data dirs, the engine of ``compute.*``. The stage functions themselves live in
:mod:`.verification`, :mod:`.classification` and :mod:`.common`; the order, hashes and
skip logic in :mod:`.runner`.
"""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from ..config.sections import ComputeConfig, ExperimentConfig, SetConfig, config_hash, to_dict
from ..corpus.datadir import DataDir, read_utt2fold
from ..corpus.layout import scan_audio, select_listed
from ..corpus.prepare import limit_speakers
from ..engine import Engine, make_engine
from ..errors import ConfigError, DataError
from ..features.store import FeatureStore
from ..mixture.ubm import train_ubm
from ..storage.outputs import UBM_CHECKPOINT, remove_outputs

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
    ) -> None:
        self.cfg = config
        self.out = Path(out_dir or config.out_dir or Path("exp") / config.name)
        self.where = config_path or "config"
        self.progress = progress
        self.stage_names = tuple(stage_names)
        self.hashes = dict(hashes)
        self.config_hash = config_hash(to_dict(config))
        #: True while a stage runs because ``--force`` asked for it: work an interrupted run
        #: left behind (feature parts, UBM checkpoints) is then redone, not resumed.
        self.force = False

    # ------------------------------------------------------------------ records
    def path(self, rel: str) -> Path:
        """A path inside the experiment folder."""
        return self.out / rel

    def record_path(self, index: int) -> Path:
        """The record file of stage ``index`` (1-based)."""
        return self.out / "stages" / f"{index:02d}_{self.stage_names[index - 1]}.json"

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
        """Fold numbers (classification)."""
        return list(range(self.cfg.data.n_folds))

    @contextlib.contextmanager
    def store(self, name: str) -> Iterator[FeatureStore]:
        """The feature store ``features/<name>.h5`` (closed when the block ends)."""
        store = FeatureStore(self.path(f"features/{name}.h5"))
        try:
            yield store
        finally:
            store.close()

    def datadir(self, name: str) -> DataDir:
        """The prepared data dir ``data/<name>``."""
        return DataDir.read(self.path(f"data/{name}"), check_audio=False)

    def read_folds(self) -> dict[str, int]:
        """``data/all/utt2fold``: utterance id -> fold."""
        return read_utt2fold(self.path("data/all/utt2fold"))

    @contextlib.contextmanager
    def engine(self, compute: ComputeConfig | None = None) -> Iterator[Engine]:
        """The engine of ``compute`` (default ``compute.*``; closed when the block ends)."""
        engine = make_engine(self.cfg.compute if compute is None else compute)
        try:
            yield engine
        finally:
            engine.close()

    def train_ubm(
        self, frames: FeatureStore, out: str, ckpt: str, keep: bool = False
    ) -> dict[str, Any]:
        """Train and save a UBM on ``frames`` (a store or a view, streamed from disk).

        Returns the stage info of the model: frames, components, iterations, final
        log-likelihood. The checkpoints under ``ckpt`` are removed unless ``keep``.
        """
        if self.force:
            remove_outputs(self.path(ckpt), UBM_CHECKPOINT)
        with self.engine() as engine:
            ubm = train_ubm(
                frames,
                config=self.cfg.ubm,
                checkpoint_dir=self.path(ckpt),
                progress=self.progress,
                feature_config=to_dict(self.cfg.features),
                engine=engine,
            )
        ubm.save(self.path(out))
        if not keep:
            remove_outputs(self.path(ckpt), UBM_CHECKPOINT)
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

    def _read_kaldi_dir(self, key: str, s: SetConfig) -> DataDir:
        assert s.kaldi_dir is not None
        folder = self._under_root(s.kaldi_dir)
        audio_root = None if s.audio_root is None else self._under_root(s.audio_root)
        try:
            data = DataDir.read(folder, check_audio=True, audio_root=audio_root)
        except DataError as exc:
            raise DataError(f"{self.where}: data.{key}.kaldi_dir: {exc}") from None
        return data.with_absolute_paths()

    def _scan(self, key: str, s: SetConfig) -> DataDir:
        """The set ``data.<key>``: an existing data dir, or the files matching a pattern."""
        root = self._root()
        if s.kaldi_dir is not None:
            data = self._read_kaldi_dir(key, s)
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
